"""Tests of the sample pipelines: `pipelines/training.py` and the dynamic
`pipelines/approval.py`, which asks before it promotes.

Real pipeline runs happen on a throwaway local ZenML store in a subprocess:
a run initialises ZenML's global configuration and client, which must not
leak into the pytest process. One subprocess runs every scenario so that
ZenML is imported (about 10 s) once; in it, a thread answers the approval
pipeline's question through ZenML's store as soon as it is asked, as a
reviewer would (the local orchestrator polls the question, so the run takes
the answer itself: pausing and resuming need a server, and are tested on
the executing tier, tests/test_executed_runs.py). The loading and
validation helpers are plain functions and are called directly.
"""

from __future__ import annotations

import http.server
import importlib
import importlib.util
import inspect
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPECTED_MODEL_TYPES = ("random_forest", "gradient_boosting", "logistic_regression")
METRICS = ("accuracy", "f1", "roc_auc")
# The approval pipeline's scenarios: the reviewer's answer to its question.
APPROVAL_ANSWERS: dict[str, Any] = {"approved": True, "declined": False}

# Runs each scenario, then reads the run back through the client the way the
# action reads it from the server (run-level metadata only).
RUNNER = r"""
import importlib, json, sys, threading, time, uuid
from zenml.client import Client
from zenml.models import RunWaitConditionFilter, RunWaitConditionResolveRequest
from pipelines.approval import approval_pipeline
from pipelines.training import training_pipeline


def step_error(info):
    # A failed local run raises a bare RuntimeError; the step's own
    # exception survives only as its exception_info (source and message).
    module, _, name = info.source.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return {"source": info.source, "message": info.message,
            "bases": [c.__name__ for c in cls.__mro__]}


def answer_when_asked(run_name, answer, asked):
    # The reviewer: resolves the run's pending question with `answer`
    # (`abort`, or the result of `continue`), recording what it was asked.
    client = Client()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            run = client.get_pipeline_run(run_name)
        except KeyError:
            time.sleep(0.2)
            continue
        pending = client.zen_store.list_run_wait_conditions(
            RunWaitConditionFilter(pipeline_run=run.id, status="pending"), hydrate=True
        ).items
        if pending:
            condition = pending[0]
            asked.update(name=condition.name, question=condition.question,
                         data_schema=condition.data_schema)
            if answer == "abort":
                request = RunWaitConditionResolveRequest(resolution="abort")
            else:
                request = RunWaitConditionResolveRequest(resolution="continue", result=answer)
            client.zen_store.resolve_run_wait_condition(condition.id, request)
            return
        time.sleep(0.2)


with open(sys.argv[1]) as f:
    scenarios = json.load(f)
results = {}
for name, scenario in scenarios.items():
    params = scenario["params"]
    run_name = f"{name}-{uuid.uuid4().hex[:8]}"
    result = {"run_name": run_name, "run_id": None, "status": None,
              "run_metadata": {}, "steps": {}, "step_errors": {},
              "model_version": None, "asked": {},
              "error_type": None, "error_bases": [], "error": None}
    reviewer = None
    if scenario["pipeline"] == "approval":
        reviewer = threading.Thread(
            target=answer_when_asked, args=(run_name, scenario["answer"], result["asked"]), daemon=True
        )
        reviewer.start()
    pipeline = approval_pipeline if scenario["pipeline"] == "approval" else training_pipeline
    try:
        pipeline.with_options(run_name=run_name)(**params)
    except Exception as exc:
        result["error_type"] = type(exc).__name__
        result["error_bases"] = [c.__name__ for c in type(exc).__mro__]
        result["error"] = str(exc)
    try:
        run = Client().get_pipeline_run(run_name)
    except KeyError:
        pass
    else:
        result.update(
            run_id=str(run.id),
            status=run.status.value,
            run_metadata=dict(run.run_metadata),
            steps={n: s.status.value for n, s in run.steps.items()},
            step_errors={n: step_error(s.exception_info)
                         for n, s in run.steps.items() if s.exception_info},
        )
        if run.model_version is not None:
            version = Client().get_model_version(run.model_version.model.id, run.model_version.id)
            result["model_version"] = {
                "model": version.model.name,
                "id": str(version.id),
                "number": version.number,
                "stage": version.stage,
                "run_metadata": dict(version.run_metadata),
            }
    if reviewer is not None:
        reviewer.join(5)
    results[name] = result
with open(sys.argv[2], "w") as f:
    json.dump(results, f, default=str)
"""


def zenml_env(config_dir: Path) -> dict[str, str]:
    """Environment for a ZenML process that only sees a fresh local store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_")}
    env.update(
        ZENML_CONFIG_PATH=str(config_dir),
        ZENML_ANALYTICS_OPT_IN="false",
        # `python -c` has no main file, from which ZenML would infer the
        # source root it resolves step code against.
        ZENML_CUSTOM_SOURCE_ROOT=str(REPO_ROOT),
        ZENML_ENABLE_RICH_TRACEBACK="false",
        ZENML_LOGGING_COLORS_DISABLED="true",
    )
    return env


def write_csv(path: Path, rows: int = 80, target: str | None = "target") -> Path:
    """A small, learnable binary dataset with string labels."""
    rng = np.random.default_rng(7)
    x1 = rng.normal(size=rows)
    x2 = rng.normal(size=rows)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "noise": rng.normal(size=rows)})
    if target is not None:
        frame[target] = np.where(x1 + 0.5 * x2 > 0, "yes", "no")
    frame.to_csv(path, index=False)
    return path


# ------------------------------------------------------------ real runs


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict[str, Any]], str]:
    """Runs every scenario once on a fresh local store: results by name,
    and everything the runs printed."""
    work = tmp_path_factory.mktemp("sample_pipeline")
    no_target = work / "no_target.csv"
    write_csv(no_target, target=None)
    training: dict[str, dict[str, str]] = {
        **{m: {"model_type": m} for m in EXPECTED_MODEL_TYPES},
        "random_forest_again": {"model_type": "random_forest"},
        "local_csv": {
            "data_url": str(write_csv(work / "local.csv")),
            "model_type": "logistic_regression",
        },
        "missing_file": {"data_url": str(work / "does_not_exist.csv")},
        "no_target": {"data_url": str(no_target)},
        "unknown_model": {"model_type": "svm"},
    }
    # The approval pipeline, answered by the runner's "reviewer" thread
    # (RUNNER): within the wait timeout, so the run takes the answer itself.
    approval_params = {"model_type": "logistic_regression", "wait_timeout": 120}
    scenarios: dict[str, dict[str, Any]] = {
        **{name: {"pipeline": "training", "params": params} for name, params in training.items()},
        **{
            f"approval_{name}": {"pipeline": "approval", "params": approval_params, "answer": answer}
            for name, answer in APPROVAL_ANSWERS.items()
        },
    }
    scenarios_file = work / "scenarios.json"
    scenarios_file.write_text(json.dumps(scenarios))
    results_file = work / "results.json"
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(scenarios_file), str(results_file)],
        cwd=REPO_ROOT,
        env=zenml_env(work / "zenml_config"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0 or not results_file.exists():
        pytest.fail(
            f"runner exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    results: dict[str, dict[str, Any]] = json.loads(results_file.read_text())
    return results, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def runs(sample_runs: tuple[dict[str, dict[str, Any]], str]) -> dict[str, dict[str, Any]]:
    return sample_runs[0]


def assert_completed_with_metrics(result: dict[str, Any]) -> dict[str, float]:
    assert result["error"] is None, result["error"]
    assert result["status"] == "completed"
    # Every step really ran: a cached evaluate step would log nothing.
    assert result["steps"] == {
        "load_data": "completed",
        "preprocess": "completed",
        "train_model": "completed",
        "evaluate": "completed",
    }
    metadata = result["run_metadata"]
    for key in METRICS:
        assert isinstance(metadata.get(key), float), (key, metadata)
        assert 0.0 <= metadata[key] <= 1.0, (key, metadata[key])
    return {k: metadata[k] for k in METRICS}


@pytest.mark.parametrize("model_type", EXPECTED_MODEL_TYPES)
def test_each_model_type_logs_metrics_on_the_run(runs: dict[str, dict[str, Any]], model_type: str) -> None:
    metrics = assert_completed_with_metrics(runs[model_type])
    # The bundled breast-cancer data is easy: anything lower is a bug.
    assert metrics["accuracy"] > 0.9
    assert metrics["roc_auc"] > 0.95


@pytest.mark.parametrize("scenario", [*EXPECTED_MODEL_TYPES, "local_csv"])
def test_metrics_are_logged_on_the_model_version_too(runs: dict[str, dict[str, Any]], scenario: str) -> None:
    """`compare-to: model:breast_cancer_classifier@STAGE` reads them there."""
    result = runs[scenario]
    metrics = assert_completed_with_metrics(result)
    version = result["model_version"]
    assert version["model"] == "breast_cancer_classifier"
    assert {k: version["run_metadata"][k] for k in METRICS} == metrics


def test_each_run_makes_its_own_model_version(runs: dict[str, dict[str, Any]]) -> None:
    versions = [runs[m]["model_version"]["id"] for m in (*EXPECTED_MODEL_TYPES, "random_forest_again")]
    assert len(set(versions)) == len(versions)


@pytest.mark.parametrize(
    "noise",
    [
        "PandasMaterializer",  # ZenML's notice when pyarrow is missing
        "pip install pyarrow",
        "UserWarning",  # pandas, reading a CSV artifact with parse_dates
        "Could not infer format",
        "Warning:",
    ],
)
def test_the_log_has_no_warnings_the_user_did_not_cause(
    sample_runs: tuple[dict[str, dict[str, Any]], str], noise: str
) -> None:
    log = sample_runs[1]
    assert "Step `evaluate` has finished" in log  # the log was captured
    assert noise not in log


def test_tables_pass_between_steps_unchanged(training: ModuleType, tmp_path: Path) -> None:
    """What `TableMaterializer` writes it reads back exactly: values bit for
    bit, column names, dtypes, index and a Series' name."""
    frame = training.load_data.entrypoint(data_url=training.DEFAULT_DATA_URL)
    x_train, _, _, y_test = training.preprocess.entrypoint(data=frame)
    labels = pd.Series(["yes", "no", "yes"], index=[7, 3, 5], name="target")
    from zenml.client import Client

    store = Client().active_stack.artifact_store  # the scratch store of `training`
    cases = [(x_train, pd.DataFrame), (y_test, pd.Series), (labels, pd.Series), (frame, pd.DataFrame)]
    for number, (value, data_type) in enumerate(cases):
        uri = f"{store.path}/{tmp_path.name}/{number}"
        store.makedirs(uri)
        materializer = training.TableMaterializer(uri, store)
        materializer.save(value)
        loaded = materializer.load(data_type)
        if data_type is pd.Series:
            pd.testing.assert_series_equal(loaded, value, check_exact=True)
        else:
            pd.testing.assert_frame_equal(loaded, value, check_exact=True)


def test_metrics_are_deterministic(runs: dict[str, dict[str, Any]]) -> None:
    first = assert_completed_with_metrics(runs["random_forest"])
    second = assert_completed_with_metrics(runs["random_forest_again"])
    assert runs["random_forest"]["run_id"] != runs["random_forest_again"]["run_id"]
    assert first == second


def test_local_csv_with_string_labels(runs: dict[str, dict[str, Any]]) -> None:
    metrics = assert_completed_with_metrics(runs["local_csv"])
    # The label is a linear function of two features.
    assert metrics["accuracy"] > 0.8


def load_data_failure(result: dict[str, Any]) -> str:
    """The message `load_data` failed with, after checking how the run ended."""
    assert result["status"] == "failed"
    assert result["run_metadata"] == {}
    # ZenML raises a generic RuntimeError that only names the failed step ...
    assert result["error_type"] == "RuntimeError"
    assert "load_data" in result["error"]
    assert result["steps"]["load_data"] == "failed"
    # ... and keeps the step's own exception on the step run.
    error = result["step_errors"]["load_data"]
    assert error["source"] == "pipelines.training.DataLoadError"
    assert "ValueError" in error["bases"]
    message: str = error["message"]
    return message


def test_missing_file_fails_naming_data_url(runs: dict[str, dict[str, Any]]) -> None:
    message = load_data_failure(runs["missing_file"])
    assert message.startswith("Cannot use data_url '")
    assert "does_not_exist.csv" in message
    assert "no file at" in message


def test_csv_without_target_fails_clearly(runs: dict[str, dict[str, Any]]) -> None:
    message = load_data_failure(runs["no_target"])
    assert message.startswith("Cannot use data_url '")
    assert "no_target.csv" in message
    assert "no 'target' column" in message
    assert "'x1'" in message  # shows the columns it did find


def test_unknown_model_type_fails_before_a_run(
    runs: dict[str, dict[str, Any]],
) -> None:
    result = runs["unknown_model"]
    assert result["error_type"] == "ValueError"
    assert "'svm'" in result["error"]
    for choice in EXPECTED_MODEL_TYPES:
        assert choice in result["error"]
    # Rejected while compiling the pipeline: no run, no data loaded.
    assert result["run_id"] is None


def approval_run(runs: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """An approval scenario's run, after checking it asked its question
    about the model version it made, with the metrics it logged."""
    result = runs[f"approval_{name}"]
    assert result["error"] is None, result["error"]
    assert result["status"] == "completed"
    metrics = {k: result["run_metadata"][k] for k in METRICS}
    version = result["model_version"]
    assert version["model"] == "breast_cancer_classifier"
    assert {k: version["run_metadata"][k] for k in METRICS} == metrics
    asked = result["asked"]
    assert asked["name"] == "promote"
    # What ZenML records for `schema=bool`: the action checks answers
    # against it and shows it as `answer-schema`.
    assert asked["data_schema"] == {"type": "boolean"}
    assert asked["question"] == (
        f"Promote breast_cancer_classifier version {version['number']} "
        f"(accuracy {metrics['accuracy']:.3f}, f1 {metrics['f1']:.3f}, "
        f"roc_auc {metrics['roc_auc']:.3f}) to production?"
    )
    return result


def test_an_approved_model_version_is_promoted_to_production(runs: dict[str, dict[str, Any]]) -> None:
    result = approval_run(runs, "approved")
    # Logistic regression on the bundled data, seeded: always this.
    assert "(accuracy 0.986," in result["asked"]["question"]
    assert result["steps"] == {
        "load_data": "completed",
        "preprocess": "completed",
        "train_model": "completed",
        "evaluate": "completed",
        "describe_candidate": "completed",
        "promote_model": "completed",
    }
    assert result["model_version"]["stage"] == "production"


def test_a_declined_model_version_is_not_promoted(runs: dict[str, dict[str, Any]]) -> None:
    result = approval_run(runs, "declined")
    assert "promote_model" not in result["steps"]
    assert result["model_version"]["stage"] is None
    # The version approved before it keeps the stage.
    assert runs["approval_approved"]["model_version"]["number"] < result["model_version"]["number"]


# ------------------------------------------------- helpers, no ZenML run


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """`pipelines.training`, imported with ZenML pointed at a scratch dir.

    The tests below call plain functions and step entrypoints only, which
    never touch ZenML's store; the environment is a guard in case they did.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZENML_CONFIG_PATH", str(tmp_path_factory.mktemp("zenml_unused")))
        mp.setenv("ZENML_ANALYTICS_OPT_IN", "false")
        yield importlib.import_module("pipelines.training")


def load_error(training: ModuleType, data_url: str) -> str:
    with pytest.raises(ValueError, match="data_url") as info:
        training.load_data.entrypoint(data_url=data_url)
    assert isinstance(info.value, training.DataLoadError)
    assert repr(data_url) in str(info.value)
    return str(info.value)


def test_parameter_names_match_step_parameters(training: ModuleType) -> None:
    # The action maps flat pipeline parameters onto same-named step ones.
    pipeline_params = inspect.signature(training.training_pipeline.entrypoint)
    assert {n: p.default for n, p in pipeline_params.parameters.items()} == {
        "data_url": training.DEFAULT_DATA_URL,
        "model_type": "random_forest",
    }
    assert "data_url" in inspect.signature(training.load_data.entrypoint).parameters
    assert "model_type" in inspect.signature(training.train_model.entrypoint).parameters
    assert training.MODEL_TYPES == EXPECTED_MODEL_TYPES


def test_default_data_is_bundled(training: ModuleType) -> None:
    assert training.DEFAULT_DATA_URL == "sklearn://breast_cancer"
    frame = training.load_data.entrypoint(data_url=training.DEFAULT_DATA_URL)
    assert frame.shape == (569, 31)
    assert sorted(frame["target"].unique()) == [0, 1]


def test_unknown_bundled_dataset(training: ModuleType) -> None:
    assert "sklearn://breast_cancer" in load_error(training, "sklearn://iris")


def test_csv_by_path_relative_path_and_file_url(
    training: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = write_csv(tmp_path / "data.csv")
    expected = pd.read_csv(csv)
    for data_url in (str(csv), csv.as_uri(), f"file://localhost{csv}"):
        loaded = training.load_data.entrypoint(data_url=data_url)
        pd.testing.assert_frame_equal(loaded, expected)
    monkeypatch.chdir(tmp_path)
    loaded = training.load_data.entrypoint(data_url="data.csv")
    pd.testing.assert_frame_equal(loaded, expected)


def test_file_url_with_two_slashes_is_explained(training: ModuleType, tmp_path: Path) -> None:
    assert "three slashes" in load_error(training, "file://data.csv")


def test_missing_file_and_directory(training: ModuleType, tmp_path: Path) -> None:
    assert "no file at" in load_error(training, str(tmp_path / "nope.csv"))
    assert "no file at" in load_error(training, (tmp_path / "nope.csv").as_uri())
    assert "not a file" in load_error(training, str(tmp_path))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty"),
        ("a,b,target\n" + "1,2,0\n1,2,1\n" * 10, None),  # loads fine
        ("a,b,label\n1,2,0\n", "no 'target' column"),
        ("target\n" + "0\n1\n" * 10, "no feature columns"),
        ("a,target\n" + "".join(f"{i},{i % 3}\n" for i in range(30)), "exactly 2"),
        ("a,target\n" + "1,0\n" * 20 + "2,1\n" * 4, "at least 5 rows"),
        ("a,target\n" + "1,0\n2,1\n" * 10 + "3,\n", "no 'target' value"),
        ("a,b,target\n" + "x,1,0\ny,2,1\n" * 10, "non-numeric feature columns: a"),
        ("a,b,target\n" + "1,,0\n2,3,1\n" * 10, "missing values in feature columns: b"),
    ],
)
def test_csv_validation(training: ModuleType, tmp_path: Path, content: str, expected: str | None) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text(content)
    if expected is None:
        assert len(training.load_data.entrypoint(data_url=str(csv))) == 20
    else:
        assert expected in load_error(training, str(csv))


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over `tmp_path`: (base URL, served directory)."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_url(training: ModuleType, http_root: tuple[str, Path]) -> None:
    base, root = http_root
    csv = write_csv(root / "data.csv")
    loaded = training.load_data.entrypoint(data_url=f"{base}/data.csv")
    pd.testing.assert_frame_equal(loaded, pd.read_csv(csv))
    assert "HTTP 404" in load_error(training, f"{base}/missing.csv")


def test_unreachable_http_url(training: ModuleType) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port once the socket is closed.
    assert "unreachable" in load_error(training, f"http://127.0.0.1:{port}/x.csv")


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_object_store_without_its_package_names_it(training: ModuleType) -> None:
    if _importable("fsspec") and _importable("s3fs"):
        pytest.skip("s3fs is installed: the URL would be fetched")
    message = load_error(training, "s3://bucket/data.csv")
    assert "s3fs" in message
    if not _importable("fsspec"):
        assert "pip install fsspec s3fs" in message


def test_fsspec_memory_filesystem(training: ModuleType, tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    csv = write_csv(tmp_path / "data.csv")
    with fsspec.open("memory://bucket/data.csv", "wb") as f:
        f.write(csv.read_bytes())
    loaded = training.load_data.entrypoint(data_url="memory://bucket/data.csv")
    pd.testing.assert_frame_equal(loaded, pd.read_csv(csv))
    assert "no object" in load_error(training, "memory://bucket/missing.csv")


def test_train_model_rejects_unknown_model_type(training: ModuleType) -> None:
    frame = training.load_data.entrypoint(data_url=training.DEFAULT_DATA_URL)
    x, y = frame.drop(columns=["target"]), frame["target"]
    with pytest.raises(ValueError, match="'svm'") as info:
        training.train_model.entrypoint(x_train=x, y_train=y, model_type="svm")
    assert all(choice in str(info.value) for choice in EXPECTED_MODEL_TYPES)


@pytest.fixture(scope="module")
def approval(training: ModuleType) -> ModuleType:
    """`pipelines.approval`, imported under `training`'s scratch ZenML."""
    return importlib.import_module("pipelines.approval")


def test_the_approval_pipeline_is_dynamic_and_reuses_the_training_steps(
    approval: ModuleType, training: ModuleType
) -> None:
    from zenml.pipelines.dynamic.pipeline_definition import DynamicPipeline

    # `zenml.wait` works only in dynamic pipelines.
    assert isinstance(approval.approval_pipeline, DynamicPipeline)
    parameters = inspect.signature(approval.approval_pipeline.entrypoint).parameters
    assert {n: p.default for n, p in parameters.items()} == {
        "data_url": training.DEFAULT_DATA_URL,
        "model_type": "random_forest",
        "wait_timeout": 600,
    }
    for shared in ("load_data", "preprocess", "train_model", "evaluate"):
        assert getattr(approval, shared) is getattr(training, shared)
    assert approval.approval_pipeline.configuration.model.name == training.MODEL_NAME


@pytest.mark.parametrize(
    ("number", "metrics", "question"),
    [
        (
            12,
            {"accuracy": 0.98601, "f1": 0.98888, "roc_auc": 0.99769},
            "Promote m version 12 (accuracy 0.986, f1 0.989, roc_auc 0.998) to production?",
        ),
        # Other metrics are left out; missing ones are not invented.
        (1, {"roc_auc": 0.5, "loss": 0.7}, "Promote m version 1 (roc_auc 0.500) to production?"),
    ],
)
def test_the_promotion_question_carries_the_version_and_its_metrics(
    approval: ModuleType, number: int, metrics: dict[str, float], question: str
) -> None:
    assert approval.promotion_question("m", number, metrics) == question
