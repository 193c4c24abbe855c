"""The action under load and through a long wait, against a busy server.

A second real server shares the session server's database (same sqlite
file, JWT secret and API key, so the snapshots exist), with a workload
manager that holds each dispatch (`SlowWorkloadManager`) and the stock
bounded executor, which runs two dispatches at a time
(`ZENML_SERVER_MAX_CONCURRENT_SNAPSHOT_RUNS`): when it is full the server
answers 429 and deletes the run it had prepared. Its access tokens expire
after a minute (`ZENML_SERVER_JWT_TOKEN_EXPIRE_MINUTES`, no leeway), which
applies to tokens from API-key logins too.

A `FaultProxy` without faults sits in front of it to see what the server
answered (429s, 401s) and what the action sent.

The long wait needs a minute for its token to expire: its action starts
(and the server restarts under it) in a fixture before the load test, so
that the minute passes while the load test runs.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Deployment
from support.action import ActionRunner, RunningAction
from support.fault_proxy import FaultProxy
from support.orchestrator import complete_run, find_run
from support.server import ZenMLServer

TRIGGER = r"^/api/v1/pipeline_snapshots/[^/]+/runs$"
CONCURRENT_ACTIONS = 20
# The stock limit, set explicitly: at most two dispatches at once.
MAX_DISPATCHES = 2
TOKEN_MINUTES = 1


@pytest.fixture(scope="module")
def busy(zenml: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZenMLServer]:
    server = ZenMLServer(
        tmp_path_factory.mktemp("zenml-server-busy"),
        workload_manager="support.workload_managers.SlowWorkloadManager",
        jwt_secret=zenml.server.jwt_secret,
        extra_env={
            "ZENML_STORE_URL": f"sqlite:///{zenml.server.root / 'zenml.db'}",
            "ZENML_SERVER_MAX_CONCURRENT_SNAPSHOT_RUNS": str(MAX_DISPATCHES),
            "ZENML_SERVER_JWT_TOKEN_EXPIRE_MINUTES": str(TOKEN_MINUTES),
            "ZENML_SERVER_JWT_TOKEN_LEEWAY_SECONDS": "0",
        },
    )
    server.api_key = zenml.server.api_key
    server.admin_token = zenml.server.admin_token
    server.start()
    try:
        yield server
    finally:
        server.stop()


def record_figures(section: str, numbers: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(numbers, indent=2, sort_keys=True)
    with capsys.disabled():
        print(f"\nLoad figures ({section}):\n{text}")
    path = os.environ.get("RELIABILITY_FIGURES")
    if path:
        target = Path(path)
        existing = json.loads(target.read_text()) if target.exists() and target.read_text().strip() else {}
        existing[section] = numbers
        target.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


@dataclass
class LongWait:
    """An action waiting on a run, started before the load test so that its
    token's minute runs out while the load test runs."""

    proxy: FaultProxy
    running: RunningAction
    run: dict[str, Any]
    started: float
    restarted: bool


@pytest.fixture(scope="module")
def long_wait(busy: ZenMLServer, zenml: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LongWait]:
    workspace = tmp_path_factory.mktemp("long-wait")
    name = f"long-wait-{uuid.uuid4().hex[:8]}"
    with FaultProxy(busy.url) as proxy:
        runner = ActionRunner(
            workspace, base_inputs={"workspace-url": proxy.url, "api-key": busy.api_key, "poll-interval": "2s"}
        )
        started = time.monotonic()
        running = runner.start({"template": "trainer-prod", "run-name": name, "timeout": "10m"})
        try:
            run = find_run(zenml.server, name)
            # The server goes away for a while in the middle of the wait.
            time.sleep(2)
            busy.restart()
            yield LongWait(proxy, running, run, started, restarted=running.process.poll() is None)
        finally:
            if running.process.poll() is None:
                running.process.kill()
                running.process.wait()


def test_twenty_actions_at_once_each_get_their_own_run(
    busy: ZenMLServer, zenml: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str], long_wait: LongWait
) -> None:
    names = [f"load-{i:02d}-{uuid.uuid4().hex[:8]}" for i in range(CONCURRENT_ACTIONS)]
    with FaultProxy(busy.url) as proxy:
        runners = []
        for name in names:
            workspace = tmp_path / name
            workspace.mkdir()
            runners.append(ActionRunner(workspace, base_inputs={"workspace-url": proxy.url, "api-key": busy.api_key}))
        started = time.monotonic()
        running = [
            runner.start({"template": "trainer-prod", "wait": "false", "run-name": name})
            for runner, name in zip(runners, names, strict=True)
        ]
        results = [action.finish(timeout=300) for action in running]
        wall = time.monotonic() - started
        triggers = proxy.requests("POST", TRIGGER)

    busy_answers = sum(1 for r in triggers if r.upstream_status == 429)
    failed = {name: r.errors or r.stdout[-500:] for name, r in zip(names, results, strict=True) if r.returncode != 0}
    record_figures(
        "load",
        {
            "actions": CONCURRENT_ACTIONS,
            "max_concurrent_dispatches": MAX_DISPATCHES,
            "wall_seconds": round(wall, 1),
            "succeeded": CONCURRENT_ACTIONS - len(failed),
            "trigger_requests": len(triggers),
            "answered_429_by_the_server": busy_answers,
        },
        capsys,
    )

    # The server was really full: its executor refused some dispatches.
    assert busy_answers >= 1, [f"{r.path} {r.upstream_status}" for r in triggers]
    assert failed == {}
    run_ids = [r.outputs["run-id"] for r in results]
    assert len(set(run_ids)) == CONCURRENT_ACTIONS
    for name, result in zip(names, results, strict=True):
        assert result.outputs["run-name"] == name
        page = zenml.server.admin("GET", "/api/v1/runs", params={"name": name})
        assert [item["id"] for item in page["items"]] == [result.outputs["run-id"]]


def test_a_long_wait_survives_token_expiry_and_a_server_restart(
    long_wait: LongWait, zenml: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, running = long_wait.proxy, long_wait.running
    assert long_wait.restarted, "the action gave up while the server restarted"

    # The token expires a minute after the login: the action logs in again.
    logged_in = proxy.requests("POST", r"/api/v1/login$")[0].at
    deadline = logged_in + TOKEN_MINUTES * 60 + 90
    while len(proxy.requests("POST", r"/api/v1/login$")) < 2 and time.monotonic() < deadline:
        assert running.process.poll() is None, "the action ended before its token expired"
        time.sleep(1)

    complete_run(zenml.server, long_wait.run)
    result = running.finish(timeout=90)
    waited = time.monotonic() - long_wait.started
    records = list(proxy.records)

    statuses = [r.status for r in records if re.search(r"^/api/v1/runs/[^/]+$", r.path) and "hydrate=false" in r.query]
    record_figures(
        "long_wait",
        {
            "wall_seconds": round(waited, 1),
            "logins": sum(1 for r in records if r.path == "/api/v1/login"),
            "status_reads": len(statuses),
            "status_reads_refused_401": statuses.count(401),
            "status_reads_while_down_502": statuses.count(502),
        },
        capsys,
    )

    assert result.returncode == 0, result.stdout
    assert result.outputs["conclusion"] == "success"
    assert result.outputs["status"] == "completed"
    assert result.outputs["run-id"] == long_wait.run["id"]
    # It really went through both: answers from a server that was down,
    # an expired token refused, and a second login.
    assert 502 in statuses
    assert 401 in statuses
    assert sum(1 for r in records if r.path == "/api/v1/login") >= 2
    assert "Traceback" not in result.stdout + result.stderr
