"""The action against a real ZenML server: trigger, wait, report.

Every test runs the entrypoint as the runner would and checks what a user
sees: the exit code, the `::error::` line, the step outputs, the summary, and
the run as the server recorded it.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import pytest
from conftest import Deployment
from support.action import ActionRunner
from support.orchestrator import (
    complete_run,
    fail_run,
    find_run,
    log_run_metadata,
    run_details,
    step_parameters,
)
from support.streaming import expected_lines, relayed, watched_step_run

TRIGGER_ONLY = {"wait": "false"}


def run_count(zenml: Deployment) -> int:
    return int(zenml.server.admin("GET", "/api/v1/runs", params={"size": "1"})["total"])


# -- finding what to run ----------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "expected_snapshot"),
    [
        ({"template": "trainer-prod"}, "trainer"),
        ({"template": "{trainer}"}, "trainer"),
        ({"template": "trainer-prod", "pipeline": "trainer"}, "trainer"),
        ({"template": "dynamic-prod", "pipeline": "dynamic_trainer"}, "dynamic"),
        # `pipeline` alone: its newest runnable named snapshot.
        ({"pipeline": "trainer"}, "trainer_v2"),
    ],
    ids=["by-name", "by-uuid", "name-and-pipeline", "dynamic", "pipeline-only"],
)
def test_triggers_the_snapshot_the_user_named(
    action: ActionRunner, zenml: Deployment, inputs: dict[str, str], expected_snapshot: str
) -> None:
    inputs = {k: v.format(**zenml.snapshots) for k, v in inputs.items()}
    result = action.run({**inputs, **TRIGGER_ONLY})

    assert result.returncode == 0, result.stdout
    assert result.errors == []
    assert result.outputs["conclusion"] == "triggered"
    assert result.outputs["snapshot-id"] == zenml.snapshots[expected_snapshot]
    run = run_details(zenml.server, result.outputs["run-id"])
    assert run["resources"]["source_snapshot"]["id"] == zenml.snapshots[expected_snapshot]
    assert result.outputs["run-name"] == run["name"]
    assert result.outputs["status"] == "initializing"
    assert result.outputs["run-url"] == f"{zenml.url}/projects/default/runs/{run['id']}"


def test_legacy_run_template_by_id(action: ActionRunner, zenml: Deployment) -> None:
    result = action.run(
        {"template": zenml.snapshots["legacy_template"], "parameters": "model_type: legacy", **TRIGGER_ONLY}
    )

    assert result.returncode == 0, result.stdout
    assert "run template" in result.stdout
    assert step_parameters(zenml.server, result.outputs["run-id"])["train_model"]["model_type"] == "legacy"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"template": "no-such-template"}, "No snapshot or run template named `no-such-template`"),
        ({"template": str(uuid.UUID(int=7))}, f"No snapshot or run template has the ID {uuid.UUID(int=7)}"),
        ({"template": "trainer-prod", "pipeline": "dynamic_trainer"}, "No snapshot or run template named `trainer-prod` of pipeline `dynamic_trainer`"),
        ({"pipeline": "no_such_pipeline"}, "Pipeline `no_such_pipeline` has no runnable named snapshot"),
        ({"template": "trainer-local"}, "cannot be run by the server"),
        ({"template": "trainer-prod", "project": "no-such-project"}, "no-such-project"),
    ],
    ids=["unknown-name", "unknown-uuid", "wrong-pipeline", "pipeline-without-snapshots", "not-runnable", "unknown-project"],
)
def test_what_cannot_be_found_is_explained(
    action: ActionRunner, zenml: Deployment, inputs: dict[str, str], message: str
) -> None:
    before = run_count(zenml)
    result = action.run(inputs)

    assert result.returncode == 1
    assert len(result.errors) == 1
    assert message in result.errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert result.outputs == {}
    assert run_count(zenml) == before


def test_unknown_template_lists_what_exists(action: ActionRunner) -> None:
    result = action.run({"template": "trainer-prd"})

    assert "`trainer-prod`" in result.errors[0]
    assert "`dynamic-prod`" in result.errors[0]


# -- parameters -------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        # Flat pipeline parameters reach the steps that take them.
        (
            "data_url: s3://bucket/latest.csv\nmodel_type: gradient_boosting",
            {"load_data": {"data_url": "s3://bucket/latest.csv"}, "train_model": {"model_type": "gradient_boosting"}},
        ),
        # The run-configuration form, step by step.
        (
            "steps:\n  train_model:\n    parameters:\n      learning_rate: 0.5\n      model_type: svm",
            {"train_model": {"learning_rate": 0.5, "model_type": "svm"}},
        ),
        # Integers are numbers too.
        ("steps: {train_model: {parameters: {learning_rate: 2}}}", {"train_model": {"learning_rate": 2}}),
    ],
    ids=["flat", "steps-form", "int-for-float"],
)
def test_parameters_reach_the_run(
    action: ActionRunner, zenml: Deployment, parameters: str, expected: dict[str, dict[str, object]]
) -> None:
    result = action.run({"template": "trainer-prod", "parameters": parameters, **TRIGGER_ONLY})

    assert result.returncode == 0, result.stdout
    recorded = step_parameters(zenml.server, result.outputs["run-id"])
    for step, values in expected.items():
        for name, value in values.items():
            assert recorded[step][name] == value


def test_config_file_parameters_file_and_run_name_are_merged(
    action: ActionRunner, zenml: Deployment, workspace: Path, unique_name: str
) -> None:
    (workspace / "ci").mkdir()
    (workspace / "ci" / "run.yaml").write_text(
        "tags: [nightly]\nsteps:\n  load_data:\n    parameters:\n      limit: 5\n  train_model:\n    parameters:\n      model_type: from_config\n"
    )
    (workspace / "ci" / "params.yml").write_text("model_type: from_parameters\n")

    result = action.run(
        {
            "template": "trainer-prod",
            "config": "ci/run.yaml",
            "parameters": "ci/params.yml",
            "run-name": unique_name,
            **TRIGGER_ONLY,
        }
    )

    assert result.returncode == 0, result.stdout
    assert result.outputs["run-name"] == unique_name
    recorded = step_parameters(zenml.server, result.outputs["run-id"])
    assert recorded["load_data"]["limit"] == 5
    # `parameters` is merged over `config`.
    assert recorded["train_model"]["model_type"] == "from_parameters"
    run = run_details(zenml.server, result.outputs["run-id"])
    assert "nightly" in [tag["name"] for tag in run["resources"]["tags"]]


def test_dynamic_pipeline_takes_pipeline_parameters(action: ActionRunner, zenml: Deployment) -> None:
    result = action.run({"template": "dynamic-prod", "parameters": "model_type: dyn", **TRIGGER_ONLY})

    assert result.returncode == 0, result.stdout
    run = run_details(zenml.server, result.outputs["run-id"])
    assert run["metadata"]["config"]["parameters"]["model_type"] == "dyn"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ("model_typ: gradient_boosting", "`model_typ` is not a parameter of pipeline `trainer`. Did you mean `model_type`?"),
        ("learning_rate: 0.3", "It is a parameter of step `train_model`"),
        ("steps: {train: {parameters: {model_type: x}}}", "has no step `train`. Did you mean `train_model`?"),
        ("steps: {train_model: {parameters: {learning_rat: 1}}}", "`learning_rat` is not a parameter of step `train_model`. Did you mean `learning_rate`?"),
        ("steps: {train_model: {parameters: {learning_rate: fast}}}", "`learning_rate` of step `train_model` has the wrong value 'fast': expected number"),
        ("steps: {load_data: {parameters: {limit: 1.5}}}", "`limit` of step `load_data` has the wrong value 1.5: expected integer"),
        ("model_type: [a, b]", "`model_type` of pipeline `trainer` has the wrong value ['a', 'b']: expected string"),
        ("steps: {train_model: {paramters: {}}}", "`steps.train_model.paramters` is not a step setting. Did you mean `parameters`?"),
        ("parameters: {model_type: x}\nrun_nme: x", "`run_nme` is not a run-configuration setting. Did you mean `run_name`?"),
    ],
    ids=["unknown-pipeline-param", "step-param-as-flat", "unknown-step", "unknown-step-param", "wrong-type-number", "wrong-type-int", "wrong-type-string", "misspelt-step-key", "misspelt-config-key"],
)
def test_wrong_parameters_fail_before_any_run(
    action: ActionRunner, zenml: Deployment, parameters: str, message: str
) -> None:
    before = run_count(zenml)
    result = action.run({"template": "trainer-prod", "parameters": parameters})

    assert result.returncode == 1
    assert len(result.errors) == 1 and message in result.errors[0], result.stdout
    assert "title=Invalid pipeline parameters" in result.errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert run_count(zenml) == before


def test_dry_run_validates_and_sends_nothing(action: ActionRunner, zenml: Deployment) -> None:
    before = run_count(zenml)
    result = action.run({"template": "trainer-prod", "parameters": "model_type: gradient_boosting", "dry-run": "true"})

    assert result.returncode == 0, result.stdout
    assert result.outputs["conclusion"] == "dry-run"
    assert result.outputs["run-id"] == ""
    assert f"/api/v1/pipeline_snapshots/{zenml.snapshots['trainer']}/runs" in result.stdout
    assert '"model_type": "gradient_boosting"' in result.stdout
    assert run_count(zenml) == before


# -- waiting ----------------------------------------------------------------


def test_waits_until_the_run_completes(action: ActionRunner, zenml: Deployment, unique_name: str) -> None:
    running = action.start({"template": "trainer-prod", "run-name": unique_name})
    run = find_run(zenml.server, unique_name)
    time.sleep(1.5)
    assert running.process.poll() is None, "the action should still be waiting"
    log_run_metadata(zenml.server, run, {"accuracy": 0.93, "f1": 0.9})
    complete_run(zenml.server, run)
    result = running.finish(timeout=60)

    assert result.returncode == 0, result.stdout
    assert result.outputs["conclusion"] == "success"
    assert result.outputs["status"] == "completed"
    assert result.outputs["run-id"] == run["id"]
    assert int(result.outputs["duration-seconds"]) >= 1
    assert "Run status: completed" in result.stdout
    # One line per status change, not one per poll.
    assert result.stdout.count("Run status: initializing") == 1
    assert f"]({zenml.url}/projects/default/runs/{run['id']}) (ID {run['id']}) |" in result.summary
    assert "| Status | completed |" in result.summary
    # Each fact once: one header, one table of facts, the metrics once.
    assert result.summary.count("### ") == 1 and result.summary.count("| Run |") == 1, result.summary
    assert result.summary.count("| accuracy |") == 1, result.summary
    # The metrics the pipeline logged, read back over REST.
    assert json.loads(result.outputs["metadata"]) == {"accuracy": 0.93, "f1": 0.9}
    assert "| accuracy | 0.93 |" in result.summary


def test_a_steps_log_is_streamed_while_it_runs(action: ActionRunner, zenml: Deployment, unique_name: str) -> None:
    """0.98 serves a log as entries (`GET /logs/{id}/entries`); its
    artifact log store gives no cursor, so each read skips what was shown.
    test_versions.py runs the same on 0.85 and 0.93 (the step-log endpoint);
    `stream-logs: false` is test_progress.py's."""
    # RUNNER_DEBUG: the requests in the log.
    result = watched_step_run(action, zenml.server, unique_name, {}, {"RUNNER_DEBUG": "1"})

    assert result.returncode == 0, result.stdout
    assert result.warnings == [] and result.errors == [], result.warnings
    assert relayed(result.stdout) == expected_lines()
    lines = result.stdout.splitlines()
    assert lines.index("load_data: running") < lines.index("[load_data] line 1")
    reads = [line for line in lines if line.startswith("::debug::GET /api/v1/") and "/logs" in line]
    assert len(reads) >= 3 and all("/entries" in line for line in reads)
    completed = [line for line in lines if line.startswith("load_data: completed in ")]
    assert len(completed) == 1 and lines.index(completed[0]) > lines.index("load_data: running")
    assert "train_model: completed" in result.stdout
    assert "| load\\_data | completed |" in result.summary


@pytest.mark.parametrize(("fail_on_failure", "exit_code"), [("true", 1), ("false", 0)])
def test_a_failed_run_fails_the_step_unless_told_not_to(
    action: ActionRunner, zenml: Deployment, unique_name: str, fail_on_failure: str, exit_code: int
) -> None:
    running = action.start({"template": "trainer-prod", "run-name": unique_name, "fail-on-run-failure": fail_on_failure})
    fail_run(zenml.server, find_run(zenml.server, unique_name))
    result = running.finish(timeout=60)

    assert result.returncode == exit_code
    assert result.outputs["conclusion"] == "failure"
    assert result.outputs["status"] == "failed"
    assert len(result.errors) == exit_code
    if exit_code:
        assert "ended `failed`" in result.errors[0]


def test_timeout_without_stop_leaves_the_run_alone(action: ActionRunner, unique_name: str) -> None:
    # `timeout` covers the login too (0.9 s of bcrypt on an idle server, over
    # 2 s on a busy one): 5 s leaves the run started before it elapses.
    result = action.run({"template": "trainer-prod", "run-name": unique_name, "timeout": "5s", "stop-on-cancel": "false"})

    assert result.outputs["conclusion"] == "timeout"
    assert not any("stop" in w for w in result.warnings)


# -- server and credential problems -----------------------------------------


def test_wrong_api_key_is_explained(action: ActionRunner) -> None:
    wrong = "ZENKEY_" + "eyJpZCI6ICIwMDAwIiwgImtleSI6ICJ3cm9uZyJ9"
    result = action.run({"template": "trainer-prod", "api-key": wrong})

    assert result.returncode == 1
    assert "title=ZenML authentication failed" in result.errors[0]
    assert "api-key" in result.errors[0]
    assert wrong not in result.stdout.replace(f"::add-mask::{wrong}", "")


def test_server_that_cannot_run_snapshots(zenml_without_runner: Deployment, workspace: Path) -> None:
    action = ActionRunner(
        workspace, base_inputs={"workspace-url": zenml_without_runner.url, "api-key": zenml_without_runner.api_key}
    )
    result = action.run({"template": "trainer-prod"})

    assert result.returncode == 1
    assert "title=This ZenML server cannot run snapshots" in result.errors[0]
    assert "ZenML Pro" in result.errors[0] and "workload manager" in result.errors[0]


def test_unreachable_server(workspace: Path) -> None:
    from support.server import free_port

    action = ActionRunner(
        workspace,
        base_inputs={"workspace-url": f"http://127.0.0.1:{free_port()}", "api-key": "ZENKEY_" + "a" * 40},
    )
    result = action.run({"template": "x"})

    assert result.returncode == 1
    assert "title=Cannot reach the ZenML server" in result.errors[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_outside_github_outputs_are_printed(action: ActionRunner) -> None:
    result = action.run(
        {"template": "trainer-prod", "dry-run": "true"},
        extra_env={"GITHUB_OUTPUT": "", "GITHUB_STEP_SUMMARY": "", "GITHUB_ACTIONS": ""},
    )

    assert result.returncode == 0, result.stdout
    assert "conclusion=dry-run" in result.stdout.splitlines()
    assert "::add-mask::" not in result.stdout


@pytest.mark.parametrize("named", [False], ids=["name-key"])  # the tag key: test_deadline.py
def test_cancel_while_the_trigger_answer_is_on_its_way(zenml: Deployment, workspace: Path, named: bool) -> None:
    """The server has created the run, its answer is held up in a proxy, and
    the workflow is cancelled: the action finds the run, reports it, and
    asks the server to stop it."""
    from support.fault_proxy import DELAY, FaultProxy, Rule

    run_name = f"cancel-in-flight-{uuid.uuid4().hex[:8]}" if named else ""
    with FaultProxy(zenml.url) as proxy:
        proxy.add(Rule("POST", r"^/api/v1/pipeline_snapshots/[^/]+/runs$", DELAY, delay=20, forward=True))
        runner = ActionRunner(workspace, base_inputs={"workspace-url": proxy.url, "api-key": zenml.api_key})
        running = runner.start({"template": "trainer-prod", "run-name": run_name, "wait": "false"})
        deadline = time.monotonic() + 60
        while not any(r.method == "POST" and r.path.endswith("/runs") and r.upstream_status for r in proxy.records):
            assert time.monotonic() < deadline, "the trigger never reached the server"
            time.sleep(0.2)
        running.signal(signal.SIGTERM)
        result = running.finish(timeout=30)
        stops = [r.path for r in proxy.records if r.method == "POST" and r.path.endswith("/stop")]

    assert result.returncode == 1
    assert result.outputs["conclusion"] == "cancelled"
    run_id = result.outputs["run-id"]
    assert run_id, result.stdout
    run = zenml.server.admin("GET", f"/api/v1/runs/{run_id}")
    assert run["name"] == (run_name or result.outputs["run-name"])
    assert stops == [f"/api/v1/runs/{run_id}/stop"]
    assert "title=Cancelled" in result.errors[0] and "Traceback" not in result.stdout + result.stderr


def test_a_placeholder_the_server_cannot_fill_names_run_name(action: ActionRunner, zenml: Deployment) -> None:
    marker = uuid.uuid4().hex[:8]
    result = action.run({"template": "trainer-prod", "run-name": f"nightly-{marker}-{{bogus}}", "wait": "false"})

    assert result.returncode == 1
    assert len(result.errors) == 1 and "Input `run-name`" in result.errors[0], result.stdout
    assert "substitutions" in result.errors[0]
    page = zenml.server.admin("GET", "/api/v1/runs", params={"name": f"contains:{marker}"})
    assert page["items"] == []


def test_a_workspace_url_with_a_stray_path_is_pointed_at(zenml: Deployment, workspace: Path) -> None:
    runner = ActionRunner(workspace, base_inputs={"workspace-url": f"{zenml.url}/zenml", "api-key": zenml.api_key})
    result = runner.run({"template": "trainer-prod"})

    assert result.returncode == 1
    assert len(result.errors) == 1
    assert "`workspace-url`" in result.errors[0] and "path `/zenml`" in result.errors[0], result.errors[0]


@pytest.mark.parametrize("template", ["contains:dynamic", "startswith:trainer", "oneof:[\"trainer-prod\"]"])
def test_a_name_is_matched_as_it_is_not_as_a_filter(action: ActionRunner, template: str) -> None:
    """ZenML's list filters read `contains:`... as operators: a template
    name is matched exactly, so these name nothing that exists."""
    result = action.run({"template": template, "dry-run": "true"})

    assert result.returncode == 1, result.stdout
    assert len(result.errors) == 1 and "title=Not found" in result.errors[0], result.errors
