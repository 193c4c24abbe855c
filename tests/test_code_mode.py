"""Code mode: the repository's pipeline run with the ZenML SDK, on the real
test server and on a local store, through the action's entrypoint."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Deployment
from support.action import ActionResult, ActionRunner
from support.github_env import SHA, github_env
from support.orchestrator import run_details

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "pipelines/training.py:training_pipeline"


@pytest.fixture
def checkout(workspace: Path) -> Path:
    return checked_out(workspace)


def checked_out(workspace: Path) -> Path:
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
    repository = f"acme/local-{uuid.uuid4().hex[:8]}"
    result = local_action.run(
        {"pipeline": SAMPLE, "parameters": "model_type: logistic_regression", "compare-to": "main", "gate": "accuracy >= 0.9"},
        timeout=300,
        extra_env=github_env(repository, "refs/pull/7/merge", "feature/better"),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.outputs["conclusion"] == "success"
    assert result.outputs["status"] == "completed"
    metrics = json.loads(result.outputs["metrics"])
    assert set(metrics) == {"accuracy", "f1", "roc_auc"}
    assert all(0.5 < metrics[name] <= 1 for name in ("accuracy", "f1", "roc_auc"))
    assert (checkout / ".zenml-local").is_dir()
    assert "| accuracy |" in result.summary
    # Where the run came from is on the store's record of the run too.
    recorded = local_run_metadata(checkout / ".zenml-local", result.outputs["run-id"])
    assert {key: value for key, value in recorded.items() if key.startswith("github.")} == {
        "github.repository": repository,
        "github.sha": SHA,
        "github.ref": "refs/pull/7/merge",
        "github.branch": "feature/better",
        "github.event": "pull_request",
        "github.pull_request": "7",
        "github.actor": "octocat",
        "github.workflow_run_url": f"https://github.com/{repository}/actions/runs/4242",
    }
    # A fresh workspace's store has no history: no baseline, and why; the
    # gate's rules on numbers still hold.
    assert result.outputs["baseline-run-id"] == ""
    assert "local ZenML store" in result.outputs["report"]
    assert result.outputs["gate-result"] == "passed"


def local_run_metadata(store: Path, run_id: str) -> dict[str, Any]:
    """A run's metadata as the local store at `store` holds it: read from
    its SQLite database directly, independent of the action and of the ZenML
    client (which takes over 10 s to start)."""
    database = store / "local_stores" / "default_zen_store" / "zenml.db"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        rows = connection.execute(
            "SELECT m.key, m.value FROM run_metadata m JOIN run_metadata_resource r ON r.run_metadata_id = m.id "
            "WHERE r.resource_type = 'pipeline_run' AND r.resource_id = ?",
            (uuid.UUID(run_id).hex,),
        ).fetchall()
    return {key: json.loads(value) for key, value in rows}


MISTAKES = {
    "bad-data-url": ({"parameters": "data_url: /nonexistent/data.csv"}, "Pipeline run failed", "data_url"),
    "unknown-model-type": ({"parameters": "model_type: deep_forest"}, "Pipeline run failed", "random_forest"),
    "unknown-parameter": ({"parameters": "model_typ: random_forest"}, "Invalid pipeline parameters", "Did you mean `model_type`?"),
    "wrong-type": ({"parameters": "model_type: [1, 2]"}, "Invalid pipeline parameters", "expected str"),
    "missing-file": ({"pipeline": "pipelines/nope.py:training_pipeline"}, "Invalid input", "does not exist"),
    "unimportable-module": ({"pipeline": "pipelines.nope:training_pipeline"}, "Invalid input", "module `pipelines.nope` was not found"),
    "missing-attribute": ({"pipeline": "pipelines/training.py:training_pipe"}, "Invalid input", "Did you mean `training_pipeline`?"),
    "escapes-workspace": ({"pipeline": "../outside.py:training_pipeline"}, "Invalid input", "outside the workspace"),
    "not-a-pipeline": ({"pipeline": "pipelines/training.py:load_data"}, "Invalid input", "not a ZenML pipeline"),
}


@pytest.fixture(scope="module")
def mistakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ActionResult, Path]]:
    """Every mistake's action, three at a time (each in a workspace and
    local store of its own): most of a case is importing ZenML."""

    def one(case: str) -> tuple[ActionResult, Path]:
        workspace = tmp_path_factory.mktemp("mistake") / "workspace"
        workspace.mkdir()
        given = MISTAKES[case][0]
        result = ActionRunner(checked_out(workspace)).run(
            {"pipeline": SAMPLE, **given}, timeout=300, extra_env=github_env("acme/mistakes", "refs/heads/main")
        )
        return result, workspace

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(MISTAKES, pool.map(one, MISTAKES), strict=True))


@pytest.mark.parametrize("case", MISTAKES)
def test_mistakes_end_in_one_clear_error(mistakes: dict[str, tuple[ActionResult, Path]], case: str) -> None:
    _, title, message = MISTAKES[case]
    result, checkout = mistakes[case]

    assert result.returncode == 1
    assert len(result.errors) == 1, result.stdout
    assert f"title={title}" in result.errors[0]
    assert message in result.errors[0], result.errors[0]
    # A failed step's traceback belongs to the pipeline's log, folded in
    # its group; the action itself prints none.
    assert "Traceback" not in outside_pipeline_log(result.stdout)
    if result.outputs.get("run-id"):  # the run started, then failed
        recorded = local_run_metadata(checkout / ".zenml-local", result.outputs["run-id"])
        assert (recorded["github.repository"], recorded["github.ref"]) == ("acme/mistakes", "refs/heads/main")
        # Reported like a completed run (and a server-side failure): the
        # sticky comment must not keep saying the last push passed.
        assert result.outputs["conclusion"] == "failure"
        facts = json.loads(result.outputs["result"])
        assert facts["run"]["status"] == "failed" and facts["failures"], facts
        assert result.outputs["report"] and result.outputs["report"] in result.summary


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


# -- on the server, judged against baselines ---------------------------------
# Each code-mode run takes 20-40 s, so five runs serve every test below: one
# on `refs/heads/main` (named), one on a pull request compared with it (not
# named), and one for each other kind of baseline. The
# repositories are unique to this module, so no other test's run can be taken
# for a baseline; the runs compared with a run ID and a model version come
# from a second one, so that, finishing beside the `previous` run, neither
# can become its baseline.

REPOSITORY = f"acme/code-judged-{uuid.uuid4().hex[:8]}"
OTHER_REPOSITORY = f"acme/code-judged-other-{uuid.uuid4().hex[:8]}"
MODEL = "breast_cancer_classifier"  # the sample pipeline's model
# The main run trains the sample's best model (logistic regression); the
# pull requests train worse ones, so rules on `baseline` can fail.
PASSING_GATE = "accuracy >= 0.9\nf1 >= baseline - 0.05"
FAILING_GATE = "accuracy >= 0.99\nroc_auc >= baseline - 0.001\nroc_auc_score >= 0.9\nf1 >= 0.9"


@dataclass(frozen=True)
class JudgedRuns:
    main: ActionResult  # named MAIN_RUN_NAME
    pull_request: ActionResult  # `compare-to: main`, PASSING_GATE, no run name
    by_kind: dict[str, ActionResult]  # `previous` (FAILING_GATE), `run-id`, `model`
    main_model_version: str  # the main run's model version, set to `production`
    temporary: dict[str, Path]  # each run's TMPDIR, by the attribute's name


MAIN_RUN_NAME = f"main-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def judged(zenml: Deployment, tmp_path_factory: pytest.TempPathFactory) -> JudgedRuns:
    workspace = tmp_path_factory.mktemp("code-judged") / "workspace"
    shutil.copytree(ROOT / "pipelines", workspace / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    runner = ActionRunner(
        workspace, base_inputs={"workspace-url": zenml.url, "api-key": zenml.api_key, "poll-interval": "1s"}
    )

    temporary: dict[str, Path] = {}

    def start(name: str, model_type: str, env: dict[str, str], **inputs: str) -> Any:
        temporary[name] = workspace.parent / f"tmp-{name}"
        temporary[name].mkdir()
        return runner.start(
            {"pipeline": SAMPLE, "parameters": f"model_type: {model_type}", **inputs},
            extra_env={**env, "TMPDIR": str(temporary[name])},
        )

    main_env = github_env(REPOSITORY, "refs/heads/main")
    # The main run's model version goes to production by the action itself.
    main = start("main", "logistic_regression", main_env, **{"run-name": MAIN_RUN_NAME, "promote-to": "production"}).finish(timeout=300)
    assert main.returncode == 0, main.stdout
    model_version = run_details(zenml.server, main.outputs["run-id"])["resources"]["model_version"]["id"]
    pull_request_env = github_env(REPOSITORY, "refs/pull/7/merge", "feature/better")
    other_env = github_env(OTHER_REPOSITORY, "refs/pull/8/merge", "feature/other")
    # Two at a time (CI has 2 cores): what needs only the main run, then
    # `previous`, whose baseline is then the pull request's run.
    pull_request = start("pull_request", "random_forest", pull_request_env, **{"compare-to": "main", "gate": PASSING_GATE})
    started = {"run-id": start("run-id", "gradient_boosting", other_env, **{"compare-to": main.outputs["run-id"]})}
    pull_request_result = pull_request.finish(timeout=300)
    started["previous"] = start(
        "previous", "gradient_boosting", pull_request_env, **{"compare-to": "previous", "gate": FAILING_GATE, "promote-to": "staging"}
    )
    started["model"] = start(
        "model", "random_forest", other_env, **{"compare-to": f"model:{MODEL}@production", "gate": "accuracy >= baseline - 0.05"}
    )
    by_kind = {kind: running.finish(timeout=300) for kind, running in started.items()}
    return JudgedRuns(main, pull_request_result, by_kind, model_version, temporary)


@pytest.mark.parametrize(
    ("run", "model_type", "run_name"),
    [("main", "logistic_regression", MAIN_RUN_NAME), ("pull_request", "random_forest", "")],
    ids=["main-named", "pull-request-unnamed"],
)
def test_runs_on_the_server_with_parameters_and_metrics(
    judged: JudgedRuns, zenml: Deployment, run: str, model_type: str, run_name: str
) -> None:
    result: ActionResult = getattr(judged, run)

    assert result.returncode == 0, result.stdout + result.stderr
    # The ZenML client's config and credentials lived in a private directory
    # of this run, gone when the action ended.
    assert list(judged.temporary[run].iterdir()) == []
    if run_name:
        assert result.outputs["run-name"] == run_name
    else:
        assert result.outputs["run-name"].startswith("training_pipeline-")
    recorded_run = run_details(zenml.server, result.outputs["run-id"])
    assert recorded_run["body"]["status"] == "completed"
    assert recorded_run["metadata"]["config"]["parameters"]["model_type"] == model_type
    recorded = recorded_run["metadata"]["run_metadata"]
    assert json.loads(result.outputs["metrics"]) == pytest.approx({k: recorded[k] for k in ("accuracy", "f1", "roc_auc")})
    assert result.outputs["run-url"] == f"{zenml.url}/projects/default/runs/{recorded_run['id']}"


def test_a_code_mode_run_carries_its_github_context(judged: JudgedRuns, zenml: Deployment) -> None:
    recorded = run_details(zenml.server, judged.main.outputs["run-id"])["metadata"]["run_metadata"]

    assert {key: value for key, value in recorded.items() if key.startswith("github.")} == {
        "github.repository": REPOSITORY,
        "github.sha": SHA,
        "github.ref": "refs/heads/main",
        "github.branch": "main",
        "github.event": "push",
        "github.actor": "octocat",
        "github.workflow_run_url": f"https://github.com/{REPOSITORY}/actions/runs/4242",
    }
    # Nothing asked to judge it: no baseline, no gate.
    assert judged.main.outputs["baseline-run-id"] == judged.main.outputs["gate-result"] == ""


def test_a_pull_request_run_is_compared_with_main_and_passes_its_gate(judged: JudgedRuns) -> None:
    result = judged.pull_request

    assert result.returncode == 0, result.stdout
    assert result.outputs["baseline-run-id"] == judged.main.outputs["run-id"]
    assert result.outputs["gate-result"] == "passed"
    report = result.outputs["report"]
    assert report in result.summary
    this, baseline = json.loads(result.outputs["metrics"]), json.loads(judged.main.outputs["metrics"])
    # Both rules want a higher value, and random forest scores lower than
    # the main run's logistic regression: worse, but within the gate.
    for metric, verdict in (("accuracy", " ⚠️ worse"), ("f1", " ⚠️ worse"), ("roc_auc", "")):
        change = float(f"{this[metric] - baseline[metric]:.12g}")
        name = metric.replace("_", "\\_")  # Markdown-escaped
        assert f"| {name} | {this[metric]:.6g} | {baseline[metric]:.6g} | {change:+.6g}{verdict} |" in report, report
    # The pipeline parameter and the step parameter it became: one row.
    assert "| model\\_type (and step train\\_model) | random\\_forest | logistic\\_regression |" in report, report
    assert "steps.train\\_model.model\\_type" not in report, report


@pytest.mark.parametrize(
    ("kind", "baseline"),
    [
        # The newest completed run of the repository from a push, dispatch
        # or schedule, whatever its branch: the main run, never the newer
        # pull request's.
        ("previous", "main"),
        ("run-id", "main"),
    ],
)
def test_a_run_baseline_by_kind(judged: JudgedRuns, kind: str, baseline: str) -> None:
    result = judged.by_kind[kind]
    expected = getattr(judged, baseline).outputs["run-id"]

    assert result.outputs["baseline-run-id"] == expected, result.stdout
    assert json.loads(result.outputs["result"])["baseline"]["id"] == expected


def test_code_mode_promotes_the_runs_model_version_only_past_its_gate(judged: JudgedRuns, zenml: Deployment) -> None:
    main, failed_gate = judged.main, judged.by_kind["previous"]
    assert (main.outputs["promoted"], main.outputs["model-version-id"]) == ("true", judged.main_model_version)
    version = zenml.server.admin("GET", f"/api/v1/model_versions/{judged.main_model_version}", params={"hydrate": "true"})
    assert version["body"]["stage"] == "production"
    assert version["metadata"]["run_metadata"]["zenml_action.promoted_from_run"] == main.outputs["run-id"]
    assert failed_gate.outputs["promoted"] == "false" and "not promoted: the gate failed" in failed_gate.outputs["report"]
    assert json.loads(failed_gate.outputs["result"])["promotion"]["promoted"] is False


def test_a_model_version_in_a_stage_as_baseline(judged: JudgedRuns) -> None:
    result = judged.by_kind["model"]

    assert result.returncode == 0, result.stdout
    assert result.outputs["baseline-run-id"] == ""
    facts = json.loads(result.outputs["result"])
    assert (facts["baseline"]["kind"], facts["baseline"]["id"]) == ("model_version", judged.main_model_version)
    # The model version's metrics are those the main run logged on it.
    assert facts["baseline"]["metrics"] == pytest.approx(json.loads(judged.main.outputs["metrics"]))
    assert f"(ID {judged.main_model_version})" in result.outputs["report"]
    assert result.outputs["gate-result"] == "passed"


@pytest.mark.parametrize(
    ("rule", "in_message"),
    [
        ("accuracy >= 0.99", ["this run {this[accuracy]}"]),
        ("roc_auc >= baseline - 0.001", ["this run {this[roc_auc]}", "baseline {baseline[roc_auc]}", "so the threshold is {threshold}"]),
        ("roc_auc_score >= 0.9", ["logged no metric `roc_auc_score`", "Did you mean `roc_auc`?", "It logged: accuracy, f1, roc_auc"]),
    ],
    ids=["number", "baseline-minus-n", "metric-not-logged"],
)
def test_a_failed_rule_fails_the_code_mode_step(judged: JudgedRuns, rule: str, in_message: list[str]) -> None:
    """The `previous` run (gradient boosting) against main's (logistic
    regression), with FAILING_GATE: three of its four rules fail."""
    result = judged.by_kind["previous"]
    this = json.loads(result.outputs["metrics"])
    baseline = json.loads(judged.main.outputs["metrics"])
    values = {
        "this": {name: f"{value:.6g}" for name, value in this.items()},
        "baseline": {name: f"{value:.6g}" for name, value in baseline.items()},
        "threshold": f"{baseline['roc_auc'] - 0.001:.6g}",
    }

    assert result.returncode == 1
    assert result.outputs["conclusion"] == "success"  # the run itself completed
    assert result.outputs["gate-result"] == "failed"
    assert len(result.errors) == 1 and "title=Quality gate failed" in result.errors[0], result.stdout
    assert "3 of 4 rules not met" in result.errors[0]
    assert "`f1 >= 0.9`" not in result.errors[0]  # the rule that was met
    failed = next(line for line in result.errors[0].split("%0A") if f"`{rule}`" in line)
    assert all(part.format(**values) in failed for part in in_message), failed
