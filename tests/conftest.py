"""Shared fixtures: one real ZenML server per test session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import executing_server
from support.action import SECRETS, ActionRunner
from support.executing_server import ExecutingDeployment
from support.fault_proxy import Recorder
from support.server import Deployment, ZenMLServer
from support.tls import https_recorder

__all__ = ["Deployment"]  # the tests' type of the `zenml` fixture


@pytest.fixture(scope="session")
def zenml(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    server = ZenMLServer(tmp_path_factory.mktemp("zenml-server"))
    server.start()
    try:
        server.activate()
        SECRETS.add(server.api_key)
        snapshots = server.seed()
        template = server.admin(
            "POST",
            "/api/v1/run_templates",
            json={
                "name": "legacy-trainer",
                "source_snapshot_id": snapshots["trainer_v2"],
                "project": server.admin("GET", "/api/v1/projects")["items"][0]["id"],
            },
        )
        snapshots["legacy_template"] = template["id"]
        yield Deployment(server, snapshots)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def zenml_without_runner(zenml: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A second server on the same database with no workload manager: it
    holds the same snapshots but answers 405 to every run request."""
    server = ZenMLServer(
        tmp_path_factory.mktemp("zenml-server-405"),
        workload_manager=None,
        jwt_secret=zenml.server.jwt_secret,
        extra_env={"ZENML_STORE_URL": f"sqlite:///{zenml.server.root / 'zenml.db'}"},
    )
    server.api_key = zenml.server.api_key
    server.admin_token = zenml.server.admin_token
    server.start()
    try:
        yield Deployment(server, zenml.snapshots)
    finally:
        server.stop()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def https_server(workspace: Path) -> Iterator[tuple[Recorder, Path]]:
    """An HTTPS recorder on loopback answering 401, its certificate signed by
    a private CA whose PEM is `certs/ca.pem` in the workspace."""
    with https_recorder(workspace / "certs") as (server, ca):
        yield server, ca


@pytest.fixture
def action(zenml: Deployment, workspace: Path) -> ActionRunner:
    """The action pointed at the test server, as a workflow step would be."""
    return ActionRunner(
        workspace,
        base_inputs={"workspace-url": zenml.url, "api-key": zenml.api_key, "poll-interval": "1s"},
    )


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    import uuid

    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")


@pytest.fixture(scope="session")
def executing() -> ExecutingDeployment:
    """A server that really executes runs (tests/support/executing_server.py),
    set up in the background since collection ended."""
    return executing_server.tier().deployment


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The executing tier's tests last: their runs go on in the background
    while the rest of the suite runs (`executing_server.Tier`)."""
    items.sort(key=lambda item: item.get_closest_marker("executing") is not None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start setting up what the selected tests need and takes minutes, in
    the background, beside the tests that run before them: the old ZenML
    versions' servers (tests/test_versions.py) and the executing tier with
    its runs (tests/test_executed_runs.py)."""
    from support import version_servers

    if session.config.option.collectonly:
        return  # nothing will run
    version_servers.start(
        item.callspec.params["versioned"]
        for item in session.items
        if hasattr(item, "callspec") and "versioned" in item.callspec.params
    )
    executing = [item for item in session.items if item.get_closest_marker("executing")]
    if executing:
        # The tier's module says which actions its tests read.
        executing_server.start_tier(executing[0].module.started_actions)  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session) -> None:
    from support import version_servers

    version_servers.close()
    executing_server.close_tier()
