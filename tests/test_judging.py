"""Judging a run end to end, against the real server: the GitHub context
recorded on the run, the baseline found by branch, the gate passing, failing
and skipping a rule without a baseline. The rules themselves are tested
in-process (test_gate.py, test_judge.py); the server's filters for each kind
of baseline in test_run_context.py, and every kind end to end in code mode
(test_code_mode.py: the same judging after the run).

The runs are shared: one on `refs/heads/main`, then pull-request runs
compared with it. Each action run's repository is unique to this module, so
no other test's run can be taken for a baseline. The test plays the
orchestrator: it logs the run's metrics and completes it while the action
waits (tests/support/orchestrator.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import Deployment
from support.action import ActionResult, ActionRunner
from support.github_env import github_env
from support.orchestrator import complete_run, find_run, log_run_metadata, run_details

from zenml_action import provenance

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = f"acme/judged-{uuid.uuid4().hex[:8]}"
MAIN_METRICS = {"accuracy": 0.9, "f1": 0.88}


def judged_run(
    action: ActionRunner, zenml: Deployment, inputs: dict[str, str], env: dict[str, str], metrics: dict[str, float]
) -> ActionResult:
    """Trigger, log `metrics` on the run and complete it; the action's result."""
    name = f"judged-{uuid.uuid4().hex[:10]}"
    running = action.start({"template": "trainer-prod", "run-name": name, **inputs}, extra_env=env)
    run = find_run(zenml.server, name)
    log_run_metadata(zenml.server, run, metrics)
    complete_run(zenml.server, run)
    return running.finish(timeout=90)


@pytest.fixture(scope="module")
def main_run(zenml: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActionResult]:
    workspace = tmp_path_factory.mktemp("judging")
    action = ActionRunner(workspace, base_inputs={"workspace-url": zenml.url, "api-key": zenml.api_key, "poll-interval": "1s"})
    yield judged_run(action, zenml, {}, github_env(REPOSITORY, "refs/heads/main"), MAIN_METRICS)


@pytest.fixture
def pr(action: ActionRunner, zenml: Deployment) -> Any:
    def run(inputs: dict[str, str], metrics: dict[str, float]) -> ActionResult:
        return judged_run(action, zenml, inputs, github_env(REPOSITORY, "refs/pull/7/merge", "feature/better"), metrics)

    return run


def test_the_github_context_is_on_the_servers_record_of_the_run(main_run: ActionResult, zenml: Deployment) -> None:
    assert main_run.returncode == 0, main_run.stdout
    recorded = run_details(zenml.server, main_run.outputs["run-id"])["metadata"]["run_metadata"]
    assert recorded["github.repository"] == REPOSITORY
    assert recorded["github.ref"] == "refs/heads/main"
    assert recorded["github.branch"] == "main"
    assert recorded["github.sha"].startswith("0123456789")
    assert recorded["github.workflow_run_url"] == f"https://github.com/{REPOSITORY}/actions/runs/4242"
    assert json.loads(main_run.outputs["metrics"]) == MAIN_METRICS
    assert main_run.outputs["gate-result"] == ""


def test_a_pull_request_is_compared_with_main_and_passes_its_gate(main_run: ActionResult, pr: Any) -> None:
    result = pr(
        {"compare-to": "main", "gate": "accuracy >= 0.85\nf1 >= baseline - 0.01", "parameters": "model_type: gradient_boosting"},
        {"accuracy": 0.93, "f1": 0.875},
    )

    assert result.returncode == 0, result.stdout
    assert result.outputs["baseline-run-id"] == main_run.outputs["run-id"]
    assert result.outputs["gate-result"] == "passed"
    report = result.outputs["report"]
    assert "accuracy" in report and "better" in report
    assert report in result.summary
    # Whether the two runs are comparable: what differs is shown.
    assert "Parameters that differ from the baseline" in report and "gradient\\_boosting" in report, report
    facts = json.loads(result.outputs["result"])
    schema = json.loads((ROOT / "schemas" / "result-v1.json").read_text())
    jsonschema.validate(facts, schema)
    assert facts["baseline"]["id"] == main_run.outputs["run-id"]
    assert facts["github"]["github.pull_request"] == "7"


def test_a_failed_rule_fails_the_step_with_both_values(main_run: ActionResult, pr: Any) -> None:
    result = pr({"compare-to": "main", "gate": "f1 >= baseline - 0.01"}, {"accuracy": 0.93, "f1": 0.85})

    assert result.returncode == 1
    assert result.outputs["gate-result"] == "failed"
    assert result.outputs["conclusion"] == "success"  # the run itself completed
    assert len(result.errors) == 1 and "title=Quality gate failed" in result.errors[0], result.stdout
    # This run's value and the baseline's, read from the server.
    assert "this run 0.85, baseline 0.88, so the threshold is 0.87" in result.errors[0], result.errors[0]


def test_no_baseline_is_not_an_error(pr: Any) -> None:
    result = pr({"compare-to": "release-1999", "gate": "f1 >= baseline\naccuracy >= 0.5"}, {"accuracy": 0.9, "f1": 0.8})

    assert result.returncode == 0, result.stdout
    assert result.outputs["baseline-run-id"] == ""
    assert result.outputs["gate-result"] == "passed-without-baseline"  # the baseline rule was skipped, and says so
    assert "no baseline" in result.outputs["report"].lower()


def seeded_branch_run(zenml: Deployment, branch: str, metrics: dict[str, float]) -> str:
    """A completed run of the pipeline as a push to `branch` leaves it: the
    action's GitHub record on it, and the metrics it logged."""
    run = dict(
        zenml.server.admin(
            "POST",
            f"/api/v1/pipeline_snapshots/{zenml.snapshots['trainer']}/runs",
            json={"run_configuration": {"run_name": f"seeded-{uuid.uuid4().hex[:10]}"}},
        )
    )
    context = provenance.github_context({**github_env(REPOSITORY, f"refs/heads/{branch}"), "GITHUB_EVENT_NAME": "push"})
    request = provenance.attach_run_metadata(run["body"]["project_id"], run["id"], context)
    zenml.server.admin(request.method, request.path, json=request.json)
    log_run_metadata(zenml.server, run, metrics)
    complete_run(zenml.server, run)
    return str(run["id"])


def test_the_trend_of_the_gated_metric_over_the_branchs_last_runs(zenml: Deployment, pr: Any) -> None:
    """Three runs on a branch, then a pull request compared with it: the
    chart and the `result` series hold the three and this run, oldest first,
    from the listing that found the baseline."""
    branch = f"release-{uuid.uuid4().hex[:6]}"
    seeded = [seeded_branch_run(zenml, branch, {"accuracy": a, "f1": 0.8}) for a in (0.8, 0.85, 0.88)]

    result = pr({"compare-to": branch, "gate": "accuracy >= 0.5"}, {"accuracy": 0.9, "f1": 0.81})

    assert result.returncode == 0, result.stdout
    assert result.outputs["baseline-run-id"] == seeded[-1]
    trend = json.loads(result.outputs["result"])["trend"]
    assert [r["id"] for r in trend["runs"]] == [*seeded, result.outputs["run-id"]]
    assert [r["this"] for r in trend["runs"]] == [False, False, False, True]
    assert trend["series"] == [{"metric": "accuracy", "values": [0.8, 0.85, 0.88, 0.9]}]  # the gated metric only
    report = result.outputs["report"]
    assert f"**Trend** over the last 3 runs of `compare-to`: {branch} and this run" in report, report
    assert "```mermaid\nxychart-beta\n    title \"accuracy\"\n" in report, report
    assert "    line [0.8, 0.85, 0.88, 0.9]\n```" in report, report
