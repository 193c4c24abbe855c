"""`run-id`: follow a run the action did not start, as if it had: wait,
report, judge and conclude; stop it on a timeout. Input mistakes in-process
by table; what the server decides against the real server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import Deployment
from support.action import ActionRunner
from support.github_env import github_env
from support.orchestrator import complete_run, fail_run, log_run_metadata

from zenml_action.errors import InputError
from zenml_action.inputs import read_inputs
from zenml_action.provenance import BASELINE_KEY

RUN_ID = str(uuid.UUID(int=42))
BASE = {"INPUT_WORKSPACE-URL": "http://127.0.0.1:8080", "INPUT_API-KEY": "ZENKEY_" + "a" * 40, "INPUT_RUN-ID": RUN_ID}


@pytest.mark.offline
@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"INPUT_RUN-ID": "yesterday's run"}, "is not a run ID"),
        ({"INPUT_TEMPLATE": "trainer-prod"}, "cannot be combined with `template`"),
        ({"INPUT_PIPELINE": "pipelines/training.py:training_pipeline"}, "cannot be combined with `pipeline`"),
        ({"INPUT_PARAMETERS": "model_type: svm"}, "cannot be combined with `parameters`"),
        ({"INPUT_RUN-NAME": "nightly"}, "cannot be combined with `run-name`"),
        ({"INPUT_CREATE-SNAPSHOT": "s"}, "cannot be combined with `create-snapshot`"),
    ],
)
def test_run_id_mistakes_are_input_errors(tmp_path: Path, extra: dict[str, str], problem: str) -> None:
    with pytest.raises(InputError) as raised:
        read_inputs({**BASE, "GITHUB_WORKSPACE": str(tmp_path), **extra}, [])
    assert raised.value.input_name == "run-id" and problem in str(raised.value)


@pytest.mark.offline
def test_a_run_id_alone_is_enough(tmp_path: Path) -> None:
    inputs = read_inputs({**BASE, "GITHUB_WORKSPACE": str(tmp_path)}, [])
    assert (inputs.run_id, inputs.template, inputs.code_mode) == (RUN_ID, "", False)


def started(zenml: Deployment) -> dict[str, Any]:
    """A run someone else started (a schedule, ZenML's own trigger)."""
    return dict(zenml.server.admin(
        "POST", f"/api/v1/pipeline_snapshots/{zenml.snapshots['trainer']}/runs",
        json={"run_configuration": {"run_name": f"elsewhere-{uuid.uuid4().hex[:8]}"}},
    ))


def run_count(zenml: Deployment) -> int:
    return int(zenml.server.admin("GET", "/api/v1/runs", params={"size": "1"})["total"])


def test_a_running_run_is_waited_for_judged_and_left_unrecorded(action: ActionRunner, zenml: Deployment) -> None:
    run = started(zenml)
    before = run_count(zenml)
    running = action.start({"run-id": run["id"], "gate": "accuracy >= 0.9"}, extra_env=github_env("acme/attach", "refs/heads/main"))
    log_run_metadata(zenml.server, run, {"accuracy": 0.95})
    complete_run(zenml.server, run)
    result = running.finish(timeout=60)

    assert result.returncode == 0, result.stdout
    assert (result.outputs["run-id"], result.outputs["conclusion"], result.outputs["gate-result"]) == (run["id"], "success", "passed")
    assert run_count(zenml) == before  # nothing started
    # Not this workflow's run: no record that could make it a baseline.
    recorded = zenml.server.admin("GET", f"/api/v1/runs/{run['id']}", params={"hydrate": "true"})["metadata"]["run_metadata"]
    assert BASELINE_KEY not in recorded and "github.repository" not in recorded


@pytest.mark.parametrize(("end", "exit_code", "conclusion"), [(complete_run, 0, "success"), (fail_run, 1, "failure")])
def test_a_finished_run_is_reported_at_once(action: ActionRunner, zenml: Deployment, end: Any, exit_code: int, conclusion: str) -> None:
    run = started(zenml)
    end(zenml.server, run)
    result = action.run({"run-id": run["id"]})

    assert (result.returncode, result.outputs["conclusion"]) == (exit_code, conclusion), result.stdout
    assert result.outputs["run-url"].endswith(run["id"])


def test_an_attached_run_is_stopped_when_the_wait_times_out(action: ActionRunner, zenml: Deployment) -> None:
    run = started(zenml)
    result = action.run({"run-id": run["id"], "timeout": "4s"})

    assert (result.returncode, result.outputs["conclusion"]) == (1, "timeout")
    # The test stack cannot stop runs: the server's refusal proves the stop was asked for.
    assert any("stop run" in w for w in result.warnings), result.stdout


def test_a_run_id_the_server_does_not_know_names_the_input(action: ActionRunner) -> None:
    result = action.run({"run-id": str(uuid.uuid4())})

    assert result.returncode == 1 and len(result.errors) == 1, result.stdout
    assert "Input `run-id`" in result.errors[0] and "names no run" in result.errors[0]
