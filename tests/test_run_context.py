"""Where a run came from (the GitHub context as run metadata) and finding a
baseline again: the pure rules by tables, then what the server decides (the
attach call, the metadata filter, model stages) against the real test server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import Deployment
from support.orchestrator import complete_run

from zenml_action import api, judge, provenance
from zenml_action.http import Request, Transport, send

RUNNER_ENV = {
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "octo/repo",
    "GITHUB_SHA": "a" * 40,
    "GITHUB_ACTOR": "mona",
    "GITHUB_RUN_ID": "123456",
}

# -- the GitHub context -------------------------------------------------------


@pytest.mark.offline
@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {**RUNNER_ENV, "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main", "GITHUB_EVENT_NAME": "push"},
            {
                "github.repository": "octo/repo",
                "github.sha": "a" * 40,
                "github.ref": "refs/heads/main",
                "github.branch": "main",
                "github.event": "push",
                "github.actor": "mona",
                "github.workflow_run_url": "https://github.com/octo/repo/actions/runs/123456",
            },
        ),
        # A pull request: its number, and its own branch (not `7/merge`).
        (
            {
                **RUNNER_ENV,
                "GITHUB_REF": "refs/pull/7/merge",
                "GITHUB_REF_NAME": "7/merge",
                "GITHUB_HEAD_REF": "feature/x",
                "GITHUB_EVENT_NAME": "pull_request",
            },
            {
                "github.repository": "octo/repo",
                "github.sha": "a" * 40,
                "github.ref": "refs/pull/7/merge",
                "github.branch": "feature/x",
                "github.event": "pull_request",
                "github.pull_request": "7",
                "github.actor": "mona",
                "github.workflow_run_url": "https://github.com/octo/repo/actions/runs/123456",
            },
        ),
        # A tag: no branch.
        (
            {"GITHUB_REF": "refs/tags/v1.0", "GITHUB_REF_NAME": "v1.0", "GITHUB_EVENT_NAME": "push"},
            {"github.ref": "refs/tags/v1.0", "github.event": "push"},
        ),
        # GitHub Enterprise Server: its own address.
        (
            {"GITHUB_SERVER_URL": "https://ghe.example.com/", "GITHUB_REPOSITORY": "a/b", "GITHUB_RUN_ID": "9"},
            {"github.repository": "a/b", "github.workflow_run_url": "https://ghe.example.com/a/b/actions/runs/9"},
        ),
        # Not a usable address or run ID: no link.
        (
            {"GITHUB_SERVER_URL": "javascript:alert(1)", "GITHUB_REPOSITORY": "a/b", "GITHUB_RUN_ID": "9"},
            {"github.repository": "a/b"},
        ),
        ({"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "a/b", "GITHUB_RUN_ID": "x"}, {"github.repository": "a/b"}),
        # Outside GitHub Actions (`make demo`): nothing.
        ({}, {}),
        ({"GITHUB_REF": "  ", "HOME": "/root"}, {}),
    ],
    ids=["push", "pull-request", "tag", "enterprise", "bad-server-url", "bad-run-id", "nothing", "blank"],
)
def test_github_context(environ: dict[str, str], expected: dict[str, str]) -> None:
    context = provenance.github_context(environ)
    # Which runs may be a baseline: test_baseline_trust.py.
    assert context.pop(provenance.BASELINE_KEY, "-") in ("-", f"{environ.get('GITHUB_REPOSITORY')}@{environ.get('GITHUB_REF')}")
    assert context == expected
    assert all(":" not in key and key.startswith("github.") for key in context)


@pytest.mark.offline
@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("github.ref", "refs/heads/main", "github.ref:refs/heads/main"),
        ("github.repository", "octo/repo", "github.repository:octo/repo"),
        # A value with a colon is not read as `OP:value` by the server.
        ("github.workflow_run_url", "https://x/runs/1", "github.workflow_run_url:equals:https://x/runs/1"),
        ("k", "contains:x", "k:equals:contains:x"),
    ],
)
def test_metadata_filter(key: str, value: str, expected: str) -> None:
    assert provenance.metadata_filter(key, value) == expected


@pytest.mark.offline
def test_metadata_filter_refuses_a_key_with_a_colon() -> None:
    with pytest.raises(ValueError, match="cannot contain ':'"):
        provenance.metadata_filter("a:b", "c")


@pytest.mark.offline
@pytest.mark.parametrize(
    ("entity", "expected"),
    [
        ({"body": {"created": "2026-11-29T09:00:00.123456"}}, datetime(2026, 11, 29, 9, 0, 0, 123456, tzinfo=UTC)),
        ({"body": {"created": "2026-11-29T09:00:00+01:00"}}, datetime(2026, 11, 29, 8, 0, tzinfo=UTC)),
        ({"body": {"created": "yesterday"}}, None),
        ({"body": {}}, None),
        (None, None),
    ],
)
def test_created_at(entity: Any, expected: datetime | None) -> None:
    assert api.created_at(entity) == expected


# -- against the real server --------------------------------------------------


def test_context_attached_and_found_again_on_the_server(zenml: Deployment) -> None:
    """The attach call and the metadata filter as the server decides them:
    a branch baseline (the completed run on the branch, not the pull
    request's, not one still running), `previous` (same repository), a
    value with colons, and a model version in a stage with its metrics."""
    transport = Transport(zenml.url)
    token = api.decode_token(send(transport, api.login(zenml.api_key), None).json())
    assert token

    def call(request: Request) -> Any:
        response = send(transport, request, token)
        assert response.ok, (response.status, response.body[:500])
        return response.json()

    # Unique per test run: the session's server is shared with other tests.
    repo = f"octo/repo-{uuid.uuid4().hex[:8]}"
    branch = f"main-{uuid.uuid4().hex[:8]}"

    def triggered(name: str, environ: dict[str, str], complete: bool, **configuration: Any) -> dict[str, Any]:
        run = dict(
            zenml.server.admin(
                "POST",
                f"/api/v1/pipeline_snapshots/{zenml.snapshots['trainer']}/runs",
                json={"run_configuration": {"run_name": f"{name}-{uuid.uuid4().hex[:8]}", **configuration}},
            )
        )
        context = provenance.github_context({**RUNNER_ENV, "GITHUB_REPOSITORY": repo, **environ})
        assert call(provenance.attach_run_metadata(run["body"]["project_id"], run["id"], context)) is None
        if complete:
            complete_run(zenml.server, run)
        return run

    on_branch = {"GITHUB_REF": f"refs/heads/{branch}", "GITHUB_REF_NAME": branch, "GITHUB_EVENT_NAME": "push"}
    base = triggered("base", on_branch, complete=True)
    zenml.server.admin(
        "POST",
        "/api/v1/run-metadata",
        json={
            "project": base["body"]["project_id"],
            "resources": [{"id": base["id"], "type": "pipeline_run"}],
            "values": {"accuracy": 0.93, "scores": {"f1": 0.9}},
            "types": {"accuracy": "float", "scores": "dict"},
        },
    )
    triggered("running", on_branch, complete=False)  # not completed: never a baseline
    pull_request = triggered(
        "pr",
        {
            "GITHUB_REF": "refs/pull/7/merge",
            "GITHUB_REF_NAME": "7/merge",
            "GITHUB_HEAD_REF": branch,  # a pull request from a branch of the same name
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_RUN_ID": "999",
        },
        complete=True,
        steps={"train_model": {"parameters": {"model_type": "gradient_boosting"}}},
    )
    pipeline_id = base["body"].get("pipeline_id") or base["resources"]["pipeline"]["id"]

    # compare-to: BRANCH, judging the pull request's run.
    wanted = judge.parse_compare_to(branch)
    assert wanted is not None
    baseline_of = f"{repo}@{wanted.value}"
    page = call(provenance.list_baseline_runs(baseline_of, pipeline_id))
    assert [r["id"] for r in api.items(page)] == [base["id"]]  # not running, not the pull request's
    found, refused = provenance.decode_baseline_run(page, baseline_of, exclude_run_id=pull_request["id"])
    assert found is not None and found["id"] == base["id"] and refused == 0
    assert api.run_metadata(found)["accuracy"] == 0.93  # hydrated: the metrics came along
    assert api.run_metadata(found)["scores"] == {"f1": 0.9}
    created = api.created_at(found)
    assert created is not None and abs(datetime.now(UTC) - created) < timedelta(minutes=5)
    # ... and judging the base run itself: no other completed run on the branch.
    assert provenance.decode_baseline_run(page, baseline_of, exclude_run_id=base["id"]) == (None, 0)

    # The parameters where the two runs differ, as a reader must see them.
    def parameters(run: dict[str, Any]) -> dict[str, Any]:
        hydrated = call(api.get_run(run["id"], hydrate=True))
        return api.run_parameters(hydrated, call(api.get_snapshot(hydrated["resources"]["snapshot"]["id"])))

    assert judge.differing_parameters(parameters(pull_request), parameters(base)) == [
        judge.ParameterDiff("steps.train_model.model_type", "gradient_boosting", "random_forest")
    ]

    # compare-to: previous (same repository, any branch, never a pull
    # request's run): the newest first.
    page = call(provenance.list_baseline_runs(f"{repo}@", pipeline_id, any_branch=True))
    assert [r["id"] for r in api.items(page)] == [base["id"]]

    # compare-to: model:NAME@production, with the metrics logged on the version.
    project = base["body"]["project_id"]
    model_name = f"classifier-{uuid.uuid4().hex[:8]}"
    model = zenml.server.admin("POST", "/api/v1/models", json={"name": model_name, "project": project})
    versions = [
        zenml.server.admin(
            "POST", "/api/v1/model_versions", json={"model": model["id"], "project": project, "name": f"v{n}"}
        )
        for n in (1, 2)
    ]
    zenml.server.admin("PUT", f"/api/v1/model_versions/{versions[0]['id']}", json={"stage": "production", "force": True})
    zenml.server.admin(
        "POST",
        "/api/v1/run-metadata",
        json={
            "project": project,
            "resources": [{"id": versions[0]["id"], "type": "model_version"}],
            "values": {"accuracy": 0.91},
            "types": {"accuracy": "float"},
        },
    )
    version = api.decode_model_version(call(api.model_version_in_stage(model_name, "production")))
    assert version is not None and version["id"] == versions[0]["id"]  # not the newer version 2
    assert api.run_metadata(version) == {"accuracy": 0.91}
    assert api.decode_model_version(call(api.model_version_in_stage(model_name, "staging"))) is None
    assert api.decode_model_version(call(api.model_version_in_stage("no-such-model", "production"))) is None


@pytest.mark.offline
@pytest.mark.parametrize(
    ("run", "snapshot", "expected"),
    [
        ({"metadata": {"config": {"parameters": {"model_type": "rf"}}}}, None, {"model_type": "rf"}),
        (
            {"metadata": {"config": {"parameters": None}}},
            {
                "metadata": {
                    "step_configurations": {
                        "train": {"config": {"parameters": {"depth": 3}}},
                        "load": {"config": {"parameters": {}}},
                        "odd": {"config": {}},
                    }
                }
            },
            {"steps": {"train": {"depth": 3}}},
        ),
        ({}, {}, {}),
        (None, None, {}),
    ],
)
def test_run_parameters(run: Any, snapshot: Any, expected: dict[str, Any]) -> None:
    assert api.run_parameters(run, snapshot) == expected
