"""Code mode: the repository's pipeline run with the ZenML SDK, on the real
test server and on a local store, through the action's entrypoint."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
from conftest import Deployment
from support.action import ActionRunner
from support.orchestrator import run_details

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "pipelines/training.py:training_pipeline"


@pytest.fixture
def checkout(workspace: Path) -> Path:
    """A workspace that holds the repository's pipelines, as after actions/checkout."""
    shutil.copytree(ROOT / "pipelines", workspace / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    return workspace


@pytest.fixture
def local_action(checkout: Path) -> ActionRunner:
    """The action with no server: a local ZenML store inside the workspace."""
    return ActionRunner(checkout)


@pytest.fixture
def server_action(zenml: Deployment, checkout: Path) -> ActionRunner:
    return ActionRunner(checkout, base_inputs={"workspace-url": zenml.url, "api-key": zenml.api_key})


def test_runs_on_a_local_store_inside_the_workspace(local_action: ActionRunner, checkout: Path) -> None:
    result = local_action.run({"pipeline": SAMPLE, "parameters": "model_type: logistic_regression"}, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.outputs["conclusion"] == "success"
    assert result.outputs["status"] == "completed"
    metrics = json.loads(result.outputs["metadata"])
    assert set(metrics) >= {"accuracy", "f1", "roc_auc"}
    assert all(0.5 < metrics[name] <= 1 for name in ("accuracy", "f1", "roc_auc"))
    assert (checkout / ".zenml-local").is_dir()
    assert "| accuracy |" in result.summary


@pytest.mark.parametrize(("model_type", "named"), [("random_forest", True), ("gradient_boosting", False)])
def test_runs_on_the_server_with_parameters_and_metrics(
    server_action: ActionRunner, zenml: Deployment, unique_name: str, model_type: str, named: bool, tmp_path: Path
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    result = server_action.run(
        {"pipeline": SAMPLE, "parameters": f"model_type: {model_type}", "run-name": unique_name if named else ""},
        timeout=300,
        extra_env={"TMPDIR": str(temporary)},
    )

    assert result.returncode == 0, result.stdout + result.stderr
    # The ZenML client's config and credentials lived in a private directory
    # of this run, gone when the action ended.
    assert list(temporary.iterdir()) == []
    if named:
        assert result.outputs["run-name"] == unique_name
    else:
        assert result.outputs["run-name"].startswith("training_pipeline-")
    run = run_details(zenml.server, result.outputs["run-id"])
    assert run["body"]["status"] == "completed"
    assert run["metadata"]["config"]["parameters"]["model_type"] == model_type
    recorded = run["metadata"]["run_metadata"]
    assert json.loads(result.outputs["metadata"]) == pytest.approx(
        {k: recorded[k] for k in ("accuracy", "f1", "roc_auc")}
    )
    assert result.outputs["run-url"] == f"{zenml.url}/projects/default/runs/{run['id']}"


@pytest.mark.parametrize(
    ("inputs", "title", "message"),
    [
        ({"parameters": "data_url: /nonexistent/data.csv"}, "Pipeline run failed", "data_url"),
        ({"parameters": "model_type: deep_forest"}, "Pipeline run failed", "random_forest"),
        ({"parameters": "model_typ: random_forest"}, "Invalid pipeline parameters", "Did you mean `model_type`?"),
        ({"parameters": "model_type: [1, 2]"}, "Invalid pipeline parameters", "expected str"),
        ({"pipeline": "pipelines/nope.py:training_pipeline"}, "Invalid input", "does not exist"),
        ({"pipeline": "pipelines.nope:training_pipeline"}, "Invalid input", "module `pipelines.nope` was not found"),
        ({"pipeline": "pipelines/training.py:training_pipe"}, "Invalid input", "Did you mean `training_pipeline`?"),
        ({"pipeline": "../outside.py:training_pipeline"}, "Invalid input", "outside the workspace"),
        ({"pipeline": "pipelines/training.py:load_data"}, "Invalid input", "not a ZenML pipeline"),
    ],
    ids=["bad-data-url", "unknown-model-type", "unknown-parameter", "wrong-type", "missing-file", "unimportable-module", "missing-attribute", "escapes-workspace", "not-a-pipeline"],
)
def test_mistakes_end_in_one_clear_error(
    local_action: ActionRunner, inputs: dict[str, str], title: str, message: str
) -> None:
    result = local_action.run({"pipeline": SAMPLE, **inputs}, timeout=300)

    assert result.returncode == 1
    assert len(result.errors) == 1, result.stdout
    assert f"title={title}" in result.errors[0]
    assert message in result.errors[0], result.errors[0]
    # A failed step's traceback belongs to the pipeline's log, folded in
    # its group; the action itself prints none.
    assert "Traceback" not in outside_pipeline_log(result.stdout)


def outside_pipeline_log(stdout: str) -> str:
    before, _, rest = stdout.partition("::group::Pipeline log")
    return before + rest.partition("::endgroup::")[2]


def test_missing_target_column(local_action: ActionRunner, checkout: Path) -> None:
    (checkout / "data.csv").write_text("a,b\n1,2\n3,4\n")
    result = local_action.run({"pipeline": SAMPLE, "parameters": f"data_url: {checkout / 'data.csv'}"}, timeout=300)

    assert result.returncode == 1
    assert "target" in result.errors[0] and "data_url" in result.errors[0]


def test_create_snapshot_from_code(server_action: ActionRunner, zenml: Deployment, unique_name: str) -> None:
    result = server_action.run({"pipeline": SAMPLE, "create-snapshot": unique_name}, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    snapshot = zenml.server.admin("GET", f"/api/v1/pipeline_snapshots/{result.outputs['snapshot-id']}")
    assert snapshot["name"] == unique_name
    assert snapshot["resources"]["pipeline"]["name"] == "training_pipeline"
    assert result.outputs["run-id"] == ""
    # Made on the server's default (local) stack: usable as a record, not
    # runnable by the server, and the action says so.
    assert any("cannot be run by the server" in w for w in result.warnings)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_cancel_before_the_pipeline_starts_is_reported(
    zenml: Deployment, checkout: Path, signum: int
) -> None:
    """Cancelled while logging in (held up by a proxy): one clear error and
    the summary, no traceback, no silence."""
    from support.fault_proxy import DELAY, FaultProxy, Rule

    with FaultProxy(zenml.url) as proxy:
        proxy.add(Rule("POST", r"^/api/v1/login$", DELAY, delay=30, forward=False))
        runner = ActionRunner(checkout, base_inputs={"workspace-url": proxy.url, "api-key": zenml.api_key})
        running = runner.start({"pipeline": SAMPLE})
        time.sleep(3)  # the action has started and sent its login (held 30 s)
        running.signal(signum)
        result = running.finish(timeout=30)

    assert result.returncode == 1
    assert len(result.errors) == 1 and "title=Cancelled" in result.errors[0], result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "ZenML run: cancelled" in result.summary and "was cancelled" in result.summary


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"pipeline": "os:system"}, "is a builtin_function_or_method, not a ZenML pipeline"),
        ({"pipeline": SAMPLE, "parameters": "model_typ: svm"}, "Did you mean `model_type`?"),
        ({"pipeline": SAMPLE, "parameters": "parameters: [1, 2]"}, "`parameters:` key holding a list"),
    ],
    ids=["not-a-pipeline", "unknown-parameter", "parameters-key-a-list"],
)
def test_a_dry_run_checks_the_pipeline_and_its_arguments(
    local_action: ActionRunner, checkout: Path, inputs: dict[str, str], expected: str
) -> None:
    result = local_action.run({**inputs, "dry-run": "true"}, timeout=300)

    assert result.returncode == 1, result.stdout
    assert len(result.errors) == 1 and expected in result.errors[0], result.errors
    assert not (checkout / ".zenml-local").exists()


def test_a_dry_run_of_the_sample_passes(local_action: ActionRunner, checkout: Path) -> None:
    result = local_action.run({"pipeline": SAMPLE, "parameters": "model_type: svm", "dry-run": "true"}, timeout=300)

    assert result.returncode == 0, result.stdout
    assert result.outputs["conclusion"] == "dry-run"
    assert "imports and takes these arguments" in result.stdout
