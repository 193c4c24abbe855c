"""The server-side path against real servers of the older ZenML release
series users run: 0.85 (run templates only) and 0.93 (snapshots, parameter
names without types). The newest, 0.98 (typed parameter specs), is the main
suite's server: test_server_side.py runs the same checks against it.

Each version's server is installed once per session in its own environment
(`support/zenml_versions.py`) and shared by every test here. The seeded
names are the same on all versions (`support/seed_snapshots.py`):
`trainer-prod` and `trainer-staging` are runnable snapshots, or run
templates before 0.90.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Deployment
from support import version_servers
from support.action import ActionResult, ActionRunner
from support.github_env import github_env
from support.orchestrator import complete_run, find_run, log_run_metadata, run_details
from support.server import ZenMLServer
from support.streaming import expected_lines, relayed, watched_step_run
from support.zenml_versions import MAIN_VERSION, OLD_VERSIONS

OLDEST = OLD_VERSIONS[0]


@dataclass
class Versioned:
    version: str
    zenml: Deployment
    # Started beside the first server's set-up, waited for when needed.
    without_runner: ZenMLServer

    @property
    def server(self) -> ZenMLServer:
        return self.zenml.server

    @property
    def has_snapshots(self) -> bool:
        return self.version >= "0.90"

    def runner(self, workspace: Path, deployment: Deployment | None = None) -> ActionRunner:
        target = deployment or self.zenml
        return ActionRunner(
            workspace, base_inputs={"workspace-url": target.url, "api-key": target.api_key, "poll-interval": "1s"}
        )


@pytest.fixture(scope="session", params=OLD_VERSIONS)
def versioned(request: pytest.FixtureRequest) -> Iterator[Versioned]:
    version = str(request.param)
    # Set up in the background since collection (support/version_servers.py).
    servers = version_servers.start([version])
    prepared = servers.get(version)
    try:
        yield Versioned(version, Deployment(prepared.server, prepared.snapshots), prepared.without_runner)
    finally:
        servers.stop(version)


@pytest.fixture
def versioned_without_runner(versioned: Versioned) -> Deployment:
    versioned.without_runner.wait_healthy()
    return Deployment(versioned.without_runner, versioned.zenml.snapshots)


@pytest.fixture
def action(versioned: Versioned, workspace: Path) -> ActionRunner:
    return versioned.runner(workspace)


def run_count(server: ZenMLServer) -> int:
    return int(server.admin("GET", "/api/v1/runs", params={"size": "1"})["total"])


def run_source(versioned: Versioned, run_id: str) -> str:
    """The snapshot (0.90+) or run template (0.85) a run was started from."""
    run = run_details(versioned.server, run_id)
    if versioned.has_snapshots:
        return str(run["resources"]["source_snapshot"]["id"])
    deployment = versioned.server.admin("GET", f"/api/v1/pipeline_deployments/{run['body']['deployment_id']}")
    return str(deployment["metadata"]["template_id"])


def recorded_step_parameters(versioned: Versioned, run_id: str) -> dict[str, dict[str, Any]]:
    """The step parameters the server recorded for the run (in the snapshot,
    or before 0.90 the deployment, it made for the run)."""
    run = run_details(versioned.server, run_id)
    if versioned.has_snapshots:
        path = f"/api/v1/pipeline_snapshots/{run['resources']['snapshot']['id']}"
    else:
        path = f"/api/v1/pipeline_deployments/{run['body']['deployment_id']}"
    configurations = versioned.server.admin("GET", path)["metadata"]["step_configurations"]
    return {name: step["config"]["parameters"] for name, step in configurations.items()}


# -- finding what to run ----------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"template": "trainer-prod"}, "trainer"),
        ({"template": "{trainer}"}, "trainer"),
        # `pipeline` alone: its newest runnable named snapshot (run template).
        ({"pipeline": "trainer"}, "trainer_v2"),
    ],
    ids=["by-name", "by-uuid", "pipeline-only"],
)
def test_triggers_what_the_user_named(
    versioned: Versioned, action: ActionRunner, inputs: dict[str, str], expected: str
) -> None:
    inputs = {k: v.format(**versioned.zenml.snapshots) for k, v in inputs.items()}
    result = action.run({**inputs, "wait": "false"})

    assert result.returncode == 0, result.stdout
    assert result.errors == []
    assert result.outputs["conclusion"] == "triggered"
    run_id = result.outputs["run-id"]
    assert run_source(versioned, run_id) == versioned.zenml.snapshots[expected]
    # The bundled dashboard's run route is the same on every version.
    assert result.outputs["run-url"] == f"{versioned.zenml.url}/projects/default/runs/{run_id}"
    assert result.outputs["snapshot-id"] == (versioned.zenml.snapshots[expected] if versioned.has_snapshots else "")


def test_unknown_template_name_lists_what_exists(versioned: Versioned, action: ActionRunner) -> None:
    before = run_count(versioned.server)
    result = action.run({"template": "trainer-prd"})

    assert result.returncode == 1
    assert len(result.errors) == 1
    assert "`trainer-prd`" in result.errors[0]
    assert "`trainer-prod`" in result.errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert run_count(versioned.server) == before


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"template": str(uuid.UUID(int=7))}, f"has the ID {uuid.UUID(int=7)}"),
        ({"pipeline": "no_such_pipeline"}, "Pipeline `no_such_pipeline` has no runnable"),
    ],
    ids=["unknown-uuid", "unknown-pipeline"],
)
def test_what_cannot_be_found_is_explained(
    versioned: Versioned, action: ActionRunner, inputs: dict[str, str], message: str
) -> None:
    result = action.run(inputs)

    assert result.returncode == 1
    assert len(result.errors) == 1
    assert "title=Not found on the ZenML server" in result.errors[0]
    assert message in result.errors[0]
    assert "Traceback" not in result.stdout + result.stderr


# -- parameters -------------------------------------------------------------

FLAT = "data_url: s3://bucket/latest.csv\nmodel_type: gradient_boosting"
STEPS = "steps:\n  train_model:\n    parameters:\n      model_type: svm\n      learning_rate: 0.5"


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        # The README's first example: flat pipeline parameters reach the
        # steps that take them.
        (FLAT, {"load_data": {"data_url": "s3://bucket/latest.csv"}, "train_model": {"model_type": "gradient_boosting"}}),
        (STEPS, {"train_model": {"model_type": "svm", "learning_rate": 0.5}}),
    ],
    ids=["flat", "steps"],
)
def test_parameters_reach_the_run(
    versioned: Versioned, action: ActionRunner, parameters: str, expected: dict[str, dict[str, Any]]
) -> None:
    result = action.run({"template": "trainer-prod", "parameters": parameters, "wait": "false"})

    assert result.returncode == 0, result.stdout
    recorded = recorded_step_parameters(versioned, result.outputs["run-id"])
    for step, values in expected.items():
        assert {k: recorded[step][k] for k in values} == values


def test_config_file_parameters_and_run_name_are_merged(
    versioned: Versioned, action: ActionRunner, workspace: Path, unique_name: str
) -> None:
    (workspace / "ci").mkdir()
    (workspace / "ci" / "run.yaml").write_text(
        "tags: [nightly]\nsteps:\n  load_data:\n    parameters:\n      limit: 5\n"
        "  train_model:\n    parameters:\n      model_type: from_config\n"
    )
    result = action.run(
        {
            "template": "trainer-prod",
            "config": "ci/run.yaml",
            "parameters": "model_type: from_parameters",
            "run-name": unique_name,
            "wait": "false",
        }
    )

    assert result.returncode == 0, result.stdout
    assert result.outputs["run-name"] == unique_name
    recorded = recorded_step_parameters(versioned, result.outputs["run-id"])
    assert recorded["load_data"]["limit"] == 5
    assert recorded["train_model"]["model_type"] == "from_parameters"
    run = run_details(versioned.server, result.outputs["run-id"])
    assert "nightly" in [tag["name"] for tag in run["resources"]["tags"]]


# Unknown names are caught on every version; types where the server states
# them: pipeline parameters from 0.90 (input schema), step parameters from
# 0.94.1 (parameter specs).
@pytest.mark.parametrize(
    ("parameters", "message", "caught_from"),
    [
        ("model_typ: svm", "Did you mean `model_type`?", "0.85"),
        ("steps:\n  train_modl: {parameters: {model_type: svm}}", "has no step `train_modl`", "0.85"),
        ("steps:\n  train_model: {parameters: {learning_rat: 1}}", "Did you mean `learning_rate`?", "0.85"),
        ("model_type: 3", "has the wrong value 3", "0.90"),
        ("steps:\n  train_model: {parameters: {learning_rate: fast}}", "has the wrong value 'fast'", "0.94.1"),
    ],
    ids=["unknown-pipeline-parameter", "unknown-step", "unknown-step-parameter", "wrong-type", "wrong-step-type"],
)
def test_wrong_parameters_are_caught_where_the_server_states_enough(
    versioned: Versioned, action: ActionRunner, parameters: str, message: str, caught_from: str
) -> None:
    result = action.run({"template": "trainer-prod", "parameters": parameters, "dry-run": "true"})

    caught = tuple(map(int, versioned.version.split("."))) >= tuple(map(int, caught_from.split(".")))
    if caught:
        assert result.returncode == 1, result.stdout
        assert "title=Invalid pipeline parameters" in result.errors[0]
        assert message in result.errors[0]
    else:
        assert result.returncode == 0, result.stdout
        assert "are not checked: this server does not publish them" in result.stdout


# What each version's dry run says it could not check.
NOT_CHECKED = {
    "0.85.0": "types of step and pipeline parameters are not checked: this server does not publish them",
    "0.93.3": "types of step parameters are not checked: this server does not publish them",
}


def test_dry_run_sends_nothing_and_says_what_was_not_checked(versioned: Versioned, action: ActionRunner) -> None:
    version, note = versioned.version, NOT_CHECKED[versioned.version]
    before = run_count(versioned.server)
    result = action.run({"template": "trainer-prod", "parameters": FLAT, "dry-run": "true"})

    assert result.returncode == 0, result.stdout
    assert result.outputs["conclusion"] == "dry-run"
    assert "gradient_boosting" in result.stdout
    assert run_count(versioned.server) == before
    assert f"Not checked on this server (ZenML {version}): {note}." in result.stdout


# -- waiting ------------------------------------------------------------------


def test_waits_until_the_run_completes(versioned: Versioned, action: ActionRunner, unique_name: str) -> None:
    running = action.start({"template": "trainer-prod", "run-name": unique_name, "timeout": "60s"})
    complete_run(versioned.server, find_run(versioned.server, unique_name))
    result = running.finish(timeout=70)

    assert result.returncode == 0, result.stdout
    assert result.outputs["conclusion"] == "success"
    assert result.outputs["status"] == "completed"
    assert result.outputs["run-name"] == unique_name


def test_a_steps_log_is_streamed_while_it_runs(versioned: Versioned, action: ActionRunner, unique_name: str) -> None:
    """Before 0.97 a step's log is read whole (`GET /steps/{id}/logs`) and
    what was shown is skipped: each line once, in order, as it is written."""
    result = watched_step_run(action, versioned.server, unique_name, {})

    assert result.returncode == 0, result.stdout
    assert result.warnings == [] and result.errors == [], result.stdout
    assert relayed(result.stdout) == expected_lines()
    lines = result.stdout.splitlines()
    assert lines.index("load_data: running") < lines.index("[load_data] line 1")
    assert [line for line in lines if line.startswith("load_data: completed in ")] != []


def test_a_run_started_by_an_earlier_job_is_followed_with_run_id(
    versioned: Versioned, action: ActionRunner, unique_name: str
) -> None:
    """`wait: false` in one job (under the 6-hour job limit), `run-id` in the next."""
    first = action.run({"template": "trainer-prod", "run-name": unique_name, "wait": "false"})
    assert (first.returncode, first.outputs["conclusion"]) == (0, "triggered"), first.stdout
    running = action.start({"run-id": first.outputs["run-id"], "timeout": "60s"})
    complete_run(versioned.server, find_run(versioned.server, unique_name))
    result = running.finish(timeout=70)

    assert result.returncode == 0, result.stdout
    assert (result.outputs["run-id"], result.outputs["conclusion"]) == (first.outputs["run-id"], "success")
    # Runs ask questions from 0.98 on: answering one here is refused, by name.
    answered = action.run({"run-id": first.outputs["run-id"], "resolve": "continue", "answer": "true"})
    assert answered.returncode == 1 and "Input `resolve`" in answered.errors[0], answered.stdout
    assert f"the server runs ZenML {versioned.version}" in answered.errors[0] and "ZenML 0.98.0" in answered.errors[0]


def test_timeout_asks_the_server_to_stop_the_run(
    versioned: Versioned, action: ActionRunner, unique_name: str
) -> None:
    result = action.run({"template": "trainer-prod", "run-name": unique_name, "timeout": "3s"})

    assert result.returncode == 1
    assert result.outputs["conclusion"] == "timeout"
    run_id = find_run(versioned.server, unique_name)["id"]
    assert result.outputs["run-id"] == run_id
    assert "title=Timed out" in result.errors[0] and "ran out while waiting for run" in result.errors[0]
    # The test stack's orchestrator is not installed on the server: the
    # server's refusal (or acceptance) proves the stop was asked for.
    assert f"stop run {run_id}" in result.stdout, result.stdout


def test_server_without_workload_manager(
    versioned: Versioned, versioned_without_runner: Deployment, workspace: Path
) -> None:
    result = versioned.runner(workspace, versioned_without_runner).run({"template": "trainer-prod"})

    assert result.returncode == 1
    assert "title=This ZenML server cannot run snapshots" in result.errors[0]
    assert "workload manager" in result.errors[0]


# -- where a run came from, and its baseline ----------------------------------


def judged_run(
    versioned: Versioned, action: ActionRunner, inputs: dict[str, str], env: dict[str, str], metrics: dict[str, float]
) -> ActionResult:
    """Trigger `trainer-prod`, then, as its orchestrator, log `metrics` on
    the run and complete it; the action's result."""
    name = f"judged-{uuid.uuid4().hex[:10]}"
    running = action.start({"template": "trainer-prod", "run-name": name, "timeout": "60s", **inputs}, extra_env=env)
    run = find_run(versioned.server, name)
    log_run_metadata(versioned.server, run, metrics)
    complete_run(versioned.server, run)
    return running.finish(timeout=90)


# The newest server is judged in depth by test_judging.py; the oldest one
# must record the GitHub context and find a run by it (`run_metadata`
# filter) just the same.
@pytest.mark.parametrize("versioned", [OLDEST], indirect=True)
def test_a_pull_request_finds_its_main_branch_baseline_on_the_oldest_server(
    versioned: Versioned, action: ActionRunner
) -> None:
    repository = f"acme/oldest-{uuid.uuid4().hex[:8]}"
    main = judged_run(versioned, action, {}, github_env(repository, "refs/heads/main"), {"accuracy": 0.9, "f1": 0.88})
    # Newer than the main run, same pipeline and repository, another
    # branch: taken for the baseline if the server ignored the filter.
    other_branch = judged_run(versioned, action, {}, github_env(repository, "refs/heads/dev"), {"f1": 0.5})
    pull_request = judged_run(
        versioned,
        action,
        {"compare-to": "main", "gate": "f1 >= baseline - 0.01"},
        github_env(repository, "refs/pull/7/merge", "feature/better"),
        {"accuracy": 0.91, "f1": 0.875},
    )

    assert main.returncode == other_branch.returncode == 0, main.stdout + other_branch.stdout
    recorded = run_details(versioned.server, main.outputs["run-id"])["metadata"]["run_metadata"]
    assert {key: value for key, value in recorded.items() if key.startswith("github.")} == {
        "github.repository": repository,
        "github.sha": "0123456789abcdef0123456789abcdef01234567",
        "github.ref": "refs/heads/main",
        "github.branch": "main",
        "github.event": "push",
        "github.actor": "octocat",
        "github.workflow_run_url": f"https://github.com/{repository}/actions/runs/4242",
    }
    assert pull_request.returncode == 0, pull_request.stdout
    assert pull_request.outputs["baseline-run-id"] == main.outputs["run-id"]
    assert pull_request.outputs["gate-result"] == "passed"
    assert json.loads(pull_request.outputs["metrics"]) == {"accuracy": 0.91, "f1": 0.875}
    assert "| f1 | 0.875 | 0.88 | -0.005 ⚠️ worse |" in pull_request.outputs["report"], pull_request.outputs["report"]
    # The trend from the same listing: its runs' metadata comes with it on the oldest server too.
    trend = json.loads(pull_request.outputs["result"])["trend"]
    assert trend["series"] == [{"metric": "f1", "values": [0.88, 0.875]}], trend
    assert "    line [0.88, 0.875]\n" in pull_request.outputs["report"], pull_request.outputs["report"]
    recorded = run_details(versioned.server, pull_request.outputs["run-id"])["metadata"]["run_metadata"]
    assert (recorded["github.ref"], recorded["github.branch"], recorded["github.pull_request"]) == (
        "refs/pull/7/merge",
        "feature/better",
        "7",
    )


# -- code mode ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "pipelines/training.py:training_pipeline"


@pytest.fixture
def checkout(workspace: Path) -> Path:
    shutil.copytree(ROOT / "pipelines", workspace / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    return workspace


# Code mode on a server of another series: a client of that version (0.93
# has 0.98's shapes; test_code_mode.py runs code mode against 0.98).
@pytest.mark.parametrize("versioned", [OLDEST], indirect=True)
def test_code_mode_completes_with_a_client_of_the_servers_version(
    versioned: Versioned, checkout: Path, unique_name: str
) -> None:
    own_zenml = importlib.metadata.version("zenml")
    result = versioned.runner(checkout).run(
        {
            "pipeline": SAMPLE,
            "requirements": "pipelines/requirements.txt",
            "parameters": "model_type: random_forest",
            "run-name": unique_name,
        },
        timeout=600,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.outputs["conclusion"] == "success"
    assert result.outputs["status"] == "completed"
    run = run_details(versioned.server, result.outputs["run-id"])
    assert run["name"] == unique_name and run["body"]["status"] == "completed"
    assert result.outputs["run-url"] == f"{versioned.zenml.url}/projects/default/runs/{run['id']}"
    assert set(json.loads(result.outputs["metadata"])) >= {"accuracy", "f1", "roc_auc"}
    # The action's own environment is left as it was.
    assert importlib.metadata.version("zenml") == own_zenml == MAIN_VERSION


@pytest.mark.parametrize("versioned", [OLDEST], indirect=True)  # the one without snapshots
def test_create_snapshot_on_a_server_without_snapshots(versioned: Versioned, checkout: Path) -> None:
    result = versioned.runner(checkout).run({"pipeline": SAMPLE, "create-snapshot": "nightly"})

    assert result.returncode == 1
    assert len(result.errors) == 1
    assert "Input `create-snapshot`" in result.errors[0]
    assert f"ZenML {versioned.version}, which has no snapshots" in result.errors[0]


# -- promotion ------------------------------------------------------------------


def test_the_run_of_a_commit_is_promoted_and_the_holder_archived(versioned: Versioned, action: ActionRunner) -> None:
    """Stage changes (`force`), run metadata on a model version and the
    `github.sha` lookup are the same on every version (test_promote.py
    has the rest against the newest)."""
    from support.models import new_model, new_version, stages, version_metadata

    sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    name = f"promoted-{sha[:10]}"
    env = {**github_env("acme/versions", "refs/pull/3/merge", "feature"), "GITHUB_SHA": sha}
    first = action.run({"template": "trainer-prod", "run-name": name, "wait": "false"}, extra_env=env)
    assert first.returncode == 0, first.stdout
    run = find_run(versioned.server, name)
    complete_run(versioned.server, run)
    model = new_model(versioned.server)
    holder = new_version(versioned.server, model, stage="production")
    version = new_version(versioned.server, model, run)

    result = action.run({"run-for-commit": sha, "promote-to": "production"}, extra_env=github_env("acme/versions", "refs/heads/main"))

    assert result.returncode == 0, result.stdout
    assert (result.outputs["run-id"], result.outputs["promoted"]) == (run["id"], "true")
    assert result.outputs["previous-model-version"] == holder["name"]
    assert stages(versioned.server, model) == {holder["name"]: "archived", version["name"]: "production"}
    assert version_metadata(versioned.server, version["id"])["github.repository"] == "acme/versions"
