"""The gate fails closed, and a baseline is chosen by facts a pull request
cannot write.

Pure rules by table (which event makes a baseline, what a metric is, what
is written as JSON or Markdown), then what the server decides: a
`pull_request_target` run is no baseline of `main`, a pull request's own
pipeline cannot make its run one, and a lookup that fails (500, a pinned
run that is gone) fails the gate instead of passing it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import Deployment
from support.action import ActionResult, ActionRunner
from support.fault_proxy import STATUS, FaultProxy, Rule
from support.github_env import github_env
from support.orchestrator import complete_run, find_run, log_run_metadata

from zenml_action import judge, provenance
from zenml_action.github import markdown_text
from zenml_action.http import Response
from zenml_action.report import strict_json

# -- which runs may be a baseline ----------------------------------------------------


@pytest.mark.offline
@pytest.mark.parametrize(
    ("event", "ref", "baseline_of"),
    [
        ("push", "refs/heads/main", "acme/x@refs/heads/main"),
        ("workflow_dispatch", "refs/heads/release", "acme/x@refs/heads/release"),
        ("schedule", "refs/heads/main", "acme/x@refs/heads/main"),
        # A pull request's code, whatever GITHUB_REF says.
        ("pull_request", "refs/pull/7/merge", "-"),
        ("pull_request_target", "refs/heads/main", "-"),
        ("workflow_run", "refs/heads/main", "-"),
        ("merge_group", "refs/heads/gh-readonly-queue/main/pr-7", "-"),
        ("push", "refs/tags/v1.0", "-"),
        ("", "refs/heads/main", "-"),
    ],
)
def test_only_a_push_dispatch_or_schedule_on_a_branch_makes_a_baseline(event: str, ref: str, baseline_of: str) -> None:
    env = {"GITHUB_REPOSITORY": "acme/x", "GITHUB_REF": ref, "GITHUB_EVENT_NAME": event}
    recorded = provenance.github_context(env)
    assert recorded[provenance.BASELINE_KEY] == baseline_of
    assert recorded.get("github.event", "") == event


@pytest.mark.offline
@pytest.mark.parametrize(
    ("records", "expected", "refused"),
    [
        (["acme/x@refs/heads/main"], 0, 0),
        # The action's later record says this run was a pull request's.
        (["-", "acme/x@refs/heads/main"], 1, 1),
        ([None, "acme/x@refs/heads/main"], 1, 1),
        (["-"], None, 1),
        ([], None, 0),
    ],
)
def test_a_listed_run_counts_only_if_the_actions_record_still_names_the_branch(
    records: list[Any], expected: int | None, refused: int
) -> None:
    runs = [{"id": f"r{i}", "metadata": {"run_metadata": {provenance.BASELINE_KEY: r} if r else {}}} for i, r in enumerate(records)]
    found, count = provenance.decode_baseline_run({"items": runs}, "acme/x@refs/heads/main", exclude_run_id="this")
    assert (found["id"] if found else None, count) == (None if expected is None else f"r{expected}", refused)


# -- data from the server is someone else's ------------------------------------------


@pytest.mark.offline
@pytest.mark.parametrize(
    ("metadata", "metrics"),
    [
        ({"accuracy": 0.9, "n": 3}, {"accuracy": 0.9, "n": 3.0}),
        ({"huge": 10**400, "accuracy": 0.9}, {"accuracy": 0.9}),
        ({"nan": float("nan"), "inf": float("inf"), "ok": 1.0}, {"ok": 1.0}),
        ({"flag": True, "text": "0.9", "nested": {"f1": 0.8}}, {"nested.f1": 0.8}),
    ],
    ids=["numbers", "int-past-float", "not-finite", "not-numbers"],
)
def test_only_finite_numbers_are_metrics(metadata: dict[str, Any], metrics: dict[str, float]) -> None:
    assert judge.numeric_metrics(metadata) == metrics


@pytest.mark.offline
def test_json_outputs_are_strict() -> None:
    written = strict_json({"nan": float("nan"), "inf": float("-inf"), "huge": 10**40, "list": [float("nan")]})
    assert json.loads(written, parse_constant=lambda name: pytest.fail(f"{name} in strict JSON")) == {
        "nan": "nan", "inf": "-inf", "huge": 10**40, "list": ["nan"],
    }


@pytest.mark.offline
def test_a_lone_surrogate_in_an_answer_becomes_a_replacement_character() -> None:
    body = Response(200, {}, b'{"name": "x\\ud800y", "emoji": "\\ud83d\\ude00"}').json()
    assert body["emoji"] == "\U0001f600"
    body["name"].encode("utf-8")  # would raise with the surrogate


@pytest.mark.offline
@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("it's", "it's"),
        ("@octocat", "@&#8203;octocat"),
        ("@org/team", "@&#8203;org/team"),
        ("a@b.com and model:m@production", "a@b.com and model:m@production"),
        ("owner/repo#3", "owner/repo\\#&#8203;3"),
        ("GH-12", "GH-&#8203;12"),
        ("C# and #tag", "C\\# and \\#tag"),
    ],
)
def test_mentions_and_references_stay_text(text: str, shown: str) -> None:
    assert markdown_text(text) == shown


@pytest.mark.offline
def test_the_result_output_is_capped() -> None:
    diffs = [{"name": f"p{i}", "this": "x" * 5000, "baseline": "y"} for i in range(500)]
    data: dict[str, Any] = {"schema": judge.RESULT_SCHEMA, "parameters_differ": diffs, "metrics": {}, "comparison": [], "failures": []}
    written = judge.fitted_result(data)
    assert len(written) <= judge.MAX_RESULT_LENGTH
    assert "parameters_differ" in json.loads(written)["truncated"]


# -- against the real server ------------------------------------------------------------

GATE = "accuracy >= baseline"


def judged(
    action: ActionRunner, zenml: Deployment, env: dict[str, str], metrics: dict[str, Any], inputs: dict[str, str] | None = None
) -> ActionResult:
    name = f"trust-{uuid.uuid4().hex[:10]}"
    running = action.start({"template": "trainer-prod", "run-name": name, "poll-interval": "1s", **(inputs or {})}, extra_env=env)
    run = find_run(zenml.server, name)
    log_run_metadata(zenml.server, run, metrics)
    complete_run(zenml.server, run)
    return running.finish(timeout=90)


def pull_request(repository: str) -> dict[str, str]:
    return github_env(repository, "refs/pull/7/merge", "feature/x")


def test_a_pull_request_target_run_is_no_baseline_of_main(action: ActionRunner, zenml: Deployment) -> None:
    repository = f"acme/trust-{uuid.uuid4().hex[:8]}"
    main = judged(action, zenml, github_env(repository, "refs/heads/main"), {"accuracy": 0.8})
    target = {**github_env(repository, "refs/heads/main"), "GITHUB_EVENT_NAME": "pull_request_target"}
    forked = judged(action, zenml, target, {"accuracy": 0.1})
    assert main.returncode == forked.returncode == 0, forked.stdout

    result = judged(action, zenml, pull_request(repository), {"accuracy": 0.5}, {"compare-to": "main", "gate": GATE})

    assert result.outputs["baseline-run-id"] == main.outputs["run-id"]
    assert result.outputs["gate-result"] == "failed"  # 0.5 < main's 0.8, not the fork's 0.1


def test_no_baseline_yet_passes_or_fails_as_the_input_says(action: ActionRunner, zenml: Deployment) -> None:
    env = pull_request(f"acme/first-{uuid.uuid4().hex[:8]}")
    passing = judged(action, zenml, env, {"accuracy": 0.5}, {"compare-to": "main", "gate": GATE})
    failing = judged(action, zenml, env, {"accuracy": 0.5}, {"compare-to": "main", "gate": GATE, "on-missing-baseline": "fail"})

    assert (passing.returncode, passing.outputs["gate-result"]) == (0, "passed-without-baseline"), passing.stdout
    assert "no baseline yet" in passing.outputs["report"]
    assert (failing.returncode, failing.outputs["gate-result"]) == (1, "failed")
    assert "on-missing-baseline: fail" in failing.errors[0]


@pytest.mark.parametrize(
    ("compare_to", "fault", "said"),
    [
        ("main", Rule("GET", r"^/api/v1/runs$", STATUS, status=500, times=None), "looking the baseline up failed"),
        ("main", Rule("GET", r"^/api/v1/runs$", STATUS, status=503, times=None), "looking the baseline up failed"),
        (str(uuid.UUID(int=7)), None, "does not exist on the server"),
    ],
    ids=["500", "503-after-retries", "pinned-run-gone"],
)
def test_a_baseline_that_cannot_be_determined_fails_the_gate(
    zenml: Deployment, workspace: Path, compare_to: str, fault: Rule | None, said: str
) -> None:
    env = pull_request(f"acme/doubt-{uuid.uuid4().hex[:8]}")
    with FaultProxy(zenml.url) as proxy:
        if fault is not None:
            proxy.add(fault)
        runner = ActionRunner(workspace, base_inputs={"workspace-url": proxy.url, "api-key": zenml.api_key})
        result = judged(runner, zenml, env, {"accuracy": 0.99}, {"compare-to": compare_to, "gate": GATE})

    assert result.returncode == 1, result.stdout
    assert result.outputs["gate-result"] == "failed"
    assert "could not be determined" in result.errors[0] and said in result.errors[0], result.errors[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_metadata_no_number_can_hold_does_not_crash_the_action(action: ActionRunner, zenml: Deployment) -> None:
    repository = f"acme/poison-{uuid.uuid4().hex[:8]}"
    name = f"trust-{uuid.uuid4().hex[:10]}"
    running = action.start({"template": "trainer-prod", "run-name": name, "poll-interval": "1s"}, extra_env=github_env(repository, "refs/heads/main"))
    run = find_run(zenml.server, name)
    zenml.server.admin("POST", "/api/v1/run-metadata", json={
        "project": run["body"]["project_id"], "resources": [{"id": run["id"], "type": "pipeline_run"}],
        "values": {"huge": 10**400, "accuracy": 0.9}, "types": {"huge": "int", "accuracy": "float"},
    })
    complete_run(zenml.server, run)
    main = running.finish(timeout=90)
    assert main.returncode == 0, main.stdout

    result = judged(action, zenml, pull_request(repository), {"accuracy": 0.95}, {"compare-to": "main", "gate": GATE})

    assert result.returncode == 0, result.stdout
    assert result.outputs["gate-result"] == "passed"
    assert json.loads(result.outputs["metrics"]) == {"accuracy": 0.95}
    assert json.loads(main.outputs["metadata"])["huge"] == 10**400


FORGING_PIPELINE = '''
from zenml import get_step_context, log_metadata, pipeline, step


@step
def claim(repository: str, accuracy: float) -> None:
    """What a pull request's code could do with the key: write on its own
    run that it came from `main`."""
    log_metadata(
        metadata={"zenml_action.baseline_of": f"{repository}@refs/heads/main", "github.ref": "refs/heads/main",
                  "github.event": "push", "accuracy": accuracy},
        run_id_name_or_prefix=get_step_context().pipeline_run.id,
    )


@pipeline(enable_cache=False)
def forging(repository: str, accuracy: float = 0.01) -> None:
    claim(repository=repository, accuracy=accuracy)
'''


def test_a_pull_requests_pipeline_cannot_make_its_run_the_baseline(zenml: Deployment, workspace: Path) -> None:
    """The action writes its record after the pipeline ran: the pull
    request's claim is overwritten, and a later lookup refuses the run
    (and, finding nothing it can trust, fails the gate rather than pass it)."""
    repository = f"acme/forge-{uuid.uuid4().hex[:8]}"
    (workspace / "forging.py").write_text(FORGING_PIPELINE)
    runner = ActionRunner(workspace, base_inputs={"workspace-url": zenml.url, "api-key": zenml.api_key})
    forged = runner.run(
        {"pipeline": "forging.py:forging", "parameters": f"repository: {repository}"}, timeout=300,
        extra_env=pull_request(repository),
    )
    assert forged.returncode == 0, forged.stdout
    recorded = zenml.server.admin("GET", f"/api/v1/runs/{forged.outputs['run-id']}", params={"hydrate": "true"})
    assert recorded["metadata"]["run_metadata"][provenance.BASELINE_KEY] == "-"

    # The next pull request's run of the same pipeline, judged against `main`.
    result = runner.run(
        {"pipeline": "forging.py:forging", "parameters": f"repository: {repository}\naccuracy: 0.5",
         "compare-to": "main", "gate": GATE},
        timeout=300, extra_env=pull_request(repository),
    )

    assert result.outputs["baseline-run-id"] == "", result.stdout
    assert result.outputs["gate-result"] == "failed"
    assert "could not be determined" in result.errors[0], result.errors
