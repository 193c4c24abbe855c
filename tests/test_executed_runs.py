"""The action against a server that really executes the runs it triggers.

No test here plays the orchestrator: the runs are executed by ZenML's `ssh`
orchestrator, each step a real process running the project's code
(`tests/support/executing_server.py` says how, and what stands in for
Docker). The four runs start in two pairs, because each takes tens of
seconds (the stock workload manager dispatches two runs at a time), and
each test then reads its own: what the action printed and wrote, and the
run as the server recorded it.

Run this tier alone with `pytest -m executing`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.action import ActionResult, ActionRunner, RunningAction
from support.executing_server import ExecutingDeployment

pytestmark = pytest.mark.executing

# The held runs are stopped or released only after the action gave up; a
# run needs about 20-40 s to reach `provisioning`/`running` on 2 busy cores,
# so these leave a wide margin without racing the clock: the run cannot
# leave the held state on its own.
PROVISIONING_TIMEOUT = 60
RUNNING_TIMEOUT = 90
FINISH_WITHIN = 300


@dataclass
class Started:
    action: RunningAction
    gate: Path | None = None


def wait_dispatched(executing: ExecutingDeployment, count: int, within: float = 120) -> None:
    """Wait until `count` runs left `initializing`: their runners are done,
    so the server's two dispatch slots are free again."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        runs = executing.server.admin("GET", "/api/v1/runs", params={"size": "50"})["items"]
        if sum(run["body"]["status"] != "initializing" for run in runs) >= count:
            return
        time.sleep(1)
    raise AssertionError(f"fewer than {count} runs dispatched within {within}s")


def final_status(executing: ExecutingDeployment, run_id: str, within: float = FINISH_WITHIN) -> str:
    """Wait for the server to record the run as finished; its status."""
    deadline = time.monotonic() + within
    status = ""
    while time.monotonic() < deadline:
        status = str(executing.server.admin("GET", f"/api/v1/runs/{run_id}/status"))
        if status in ("completed", "failed", "stopped", "cancelled"):
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} still `{status}` after {within}s\n{executing.container_logs()[-4000:]}")


@pytest.fixture(scope="module")
def started(executing: ExecutingDeployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Started]]:
    """All four actions, started at once; each test finishes its own."""
    workspace = tmp_path_factory.mktemp("executed-workspace")
    runner = ActionRunner(
        workspace,
        base_inputs={"workspace-url": executing.url, "api-key": executing.api_key, "poll-interval": "1s"},
    )
    running_gate = executing.gate("running")
    runs: dict[str, Started] = {}
    executing.hold()
    try:
        runs |= {
            "completed": Started(
                runner.start({"template": "training-executed", "parameters": "model_type: logistic_regression", "timeout": "10m"})
            ),
            "failed": Started(
                runner.start({"template": "training-executed", "parameters": "model_type: svm_deluxe", "timeout": "10m"})
            ),
        }
        wait_dispatched(executing, 2)
        runs |= {
            "provisioning": Started(
                runner.start({"template": "held-executed", "timeout": f"{PROVISIONING_TIMEOUT}s"})
            ),
            "running": Started(
                runner.start(
                    {"template": "gated-executed", "parameters": f"gate: {running_gate}", "timeout": f"{RUNNING_TIMEOUT}s"}
                ),
                gate=running_gate,
            ),
        }
        yield runs
    finally:
        executing.release()
        running_gate.touch()
        for run in runs.values():
            if run.action.process.poll() is None:
                run.action.process.kill()


def finish(started: dict[str, Started], name: str, executing: ExecutingDeployment) -> ActionResult:
    result = started[name].action.finish(timeout=FINISH_WITHIN)
    assert result.stderr == "", result.stderr
    if result.returncode != 0 and name == "completed":
        raise AssertionError(f"{result.stdout}\n{executing.container_logs()[-6000:]}")
    return result


def test_a_completed_run_reports_the_metrics_its_evaluate_step_logged(
    started: dict[str, Started], executing: ExecutingDeployment
) -> None:
    result = finish(started, "completed", executing)

    assert result.returncode == 0, result.stdout
    assert result.errors == []
    assert result.outputs["conclusion"] == "success"
    assert result.outputs["status"] == "completed"
    for status in ("initializing", "running", "completed"):
        assert f"Run status: {status}" in result.stdout
    metadata = json.loads(result.outputs["metadata"])
    # What the sample's `evaluate` step computed with logistic regression
    # on scikit-learn's breast-cancer data (seeded: the same every run).
    assert set(metadata) >= {"accuracy", "f1", "roc_auc"}
    assert 0.9 < metadata["accuracy"] <= 1.0
    run = executing.server.admin("GET", f"/api/v1/runs/{result.outputs['run-id']}", params={"hydrate": "true"})
    assert run["body"]["status"] == "completed"
    assert run["metadata"]["run_metadata"]["accuracy"] == metadata["accuracy"]
    assert "accuracy" in result.summary and "Failed:" not in result.summary


def test_a_failed_step_is_named_with_its_own_error_in_the_log_and_summary(
    started: dict[str, Started], executing: ExecutingDeployment
) -> None:
    result = finish(started, "failed", executing)

    assert result.returncode == 1
    assert result.outputs["conclusion"] == "failure"
    assert result.outputs["status"] == "failed"
    [error] = result.errors
    assert "ended `failed`: step `train_model` failed: ValueError: Unknown model_type 'svm_deluxe'" in error
    assert ".. See its logs" not in error
    # The step's own log, folded, ending with the exception the step raised.
    assert "::group::Log of failed step `train_model`" in result.stdout
    group = result.stdout.split("::group::Log of failed step `train_model`", 1)[1].split("::endgroup::", 1)[0]
    assert "Unknown model_type 'svm_deluxe': choose one of random_forest" in group
    assert len(group.splitlines()) <= 62
    # Only the step that failed: the steps before it succeeded, the one
    # after it never ran.
    assert "step `load_data`" not in result.stdout and "step `evaluate`" not in result.stdout
    assert "Failed: step \\`train\\_model\\`" in result.summary
    assert "Unknown model\\_type" in result.summary
    assert final_status(executing, result.outputs["run-id"]) == "failed"


def test_a_timeout_while_provisioning_leaves_a_run_the_server_cannot_stop_yet(
    started: dict[str, Started], executing: ExecutingDeployment
) -> None:
    result = finish(started, "provisioning", executing)

    assert result.returncode == 1
    assert result.outputs["conclusion"] == "timeout"
    assert result.outputs["status"] == "provisioning"
    [error] = result.errors
    assert f"was still `provisioning` after {PROVISIONING_TIMEOUT}s" in error
    # The run has no orchestrator run id until a step starts: the server
    # refuses the stop, and the action says so in the server's words.
    assert any("Cannot stop a pipeline run that has no orchestrator run id yet" in w for w in result.warnings), result.stdout
    # Released, the run goes on to completion: nothing stopped it.
    executing.release()
    assert final_status(executing, result.outputs["run-id"]) == "completed"


def test_a_timeout_while_running_stops_the_run(started: dict[str, Started], executing: ExecutingDeployment) -> None:
    result = finish(started, "running", executing)

    assert result.returncode == 1, result.stdout
    assert result.outputs, result.stdout
    assert result.outputs["conclusion"] == "timeout", result.stdout + executing.container_logs()[-5000:]
    assert result.outputs["conclusion"] == "timeout"
    assert result.outputs["status"] == "running"
    [error] = result.errors
    assert f"was still `running` after {RUNNING_TIMEOUT}s" in error
    run_id = result.outputs["run-id"]
    # The SSH orchestrator cannot stop containers (the server answers 501)
    # but the server marks the run `stopping`; its step then ends.
    assert executing.server.admin("GET", f"/api/v1/runs/{run_id}/status") in ("stopping", "stopped")
    gate = started["running"].gate
    assert gate is not None
    gate.touch()
    assert final_status(executing, run_id) == "stopped"
