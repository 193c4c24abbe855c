"""The action against a server that really executes the runs it triggers.

No test here plays the orchestrator: the runs are executed by ZenML's `ssh`
orchestrator, each step a real process running the project's code
(`tests/support/executing_server.py` says how, and what stands in for
Docker). All seven runs start at once (the server dispatches them together)
and each test then reads its own: what the action printed and wrote, and
the run as the server recorded it. Two of them are runs of the approval
pipeline (`pipelines/approval.py`), which ask whether to promote the model
version they trained: a background thread answers each with a second action
once the server has paused the run (`Approval`), so the resumed runs finish
beside the rest of the suite too.

Nothing races the clock: the held runs cannot leave their state on their
own (an image "pull" held by a file, a step waiting for a file), so the
action's timeout finds them where the test put them; the other waits are
generous bounds that only a broken run reaches, and their failure messages
carry the steps' logs.

Run this tier alone with `make test-executing` (`pytest -m executing`).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest
from support import executing_server
from support.action import ROOT, ActionResult, ActionRunner, RunningAction
from support.executing_server import ExecutingDeployment
from support.streaming import relayed

pytestmark = pytest.mark.executing

# A run reaches `provisioning` once its runner submitted it and `running`
# once its step process started: 70-80 s after the trigger with five runs
# at once on 2 busy cores, and more while the rest of the suite runs beside
# them (the tier runs in the background: support/executing_server.py
# `Tier`). The held runs never leave those states by themselves, so these
# are margins, not races; in the suite they cost no wall time.
PROVISIONING_TIMEOUT = 240
RUNNING_TIMEOUT = 300
# The runs that go to their end: the action's own bound, and the test's.
RUN_TIMEOUT = "15m"
FINISH_WITHIN = 960
RESULT_SCHEMA = json.loads((ROOT / "schemas" / "result-v1.json").read_text())
# The `running` run's step prints this many numbered lines, a second apart,
# before it waits for its gate.
TICKS = 20

# The approval pipeline's runs: each asks after 5 s of polling whether to
# promote, then pauses. The asking action ends at the question, long before
# its own timeout (a bound for the trigger to reach the question under load).
APPROVAL_PARAMETERS = "model_type: logistic_regression\nwait_timeout: 5"
ASK_TIMEOUT = "8m"
PAUSED_WITHIN = 180
QUESTION = re.compile(
    r"Promote breast_cancer_classifier version (\d+) \(accuracy 0\.986, f1 0\.989, roc_auc 0\.998\) to production\?"
)
APPROVAL_STEPS = ["describe_candidate", "evaluate", "load_data", "preprocess", "train_model"]


@dataclass
class Approval:
    """A run of the approval pipeline: the action that started it and ended
    at its question, what the server showed then, and the actions that
    answered it afterwards (`answer_once_paused`, in the background)."""

    asking: RunningAction
    resolve: str
    answer: str | None = None
    # Given first, and refused: the question must stay pending.
    wrong_answer: str | None = None
    asked: ActionResult | None = None
    run_when_asked: dict[str, Any] = field(default_factory=dict)
    condition_when_asked: dict[str, Any] = field(default_factory=dict)
    # The run's statuses from the question until it was answered.
    statuses: list[str] = field(default_factory=list)
    refused: ActionResult | None = None
    condition_after_refusal: dict[str, Any] = field(default_factory=dict)
    answering: RunningAction | None = None
    answered: ActionResult | None = None
    failure: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    def kill(self) -> None:
        for action in (self.asking, self.answering):
            if action is not None and action.process.poll() is None:
                action.process.kill()
                action.process.wait()


def answer_once_paused(approval: Approval, runner: ActionRunner, executing: ExecutingDeployment) -> None:
    """Wait for the asking action to end at the question and for the server
    to pause the run; then give the wrong answer, if any, and the answer, each
    from an action process of its own, as the `approve` job of
    .github/workflows/example-approval.yml does."""
    admin = executing.server.admin
    try:
        approval.asked = asked = approval.asking.finish(timeout=FINISH_WITHIN)
        run_id = asked.outputs.get("run-id", "")
        if asked.outputs.get("conclusion") != "waiting-for-input" or not run_id:
            return  # the tests say what went wrong
        approval.run_when_asked = admin("GET", f"/api/v1/runs/{run_id}", params={"hydrate": "true"})
        condition_path = f"/api/v1/run_wait_conditions/{asked.outputs['wait-condition-id']}"
        approval.condition_when_asked = admin("GET", condition_path, params={"hydrate": "true"})
        approval.statuses.append(approval.run_when_asked["body"]["status"])
        deadline = time.monotonic() + PAUSED_WITHIN
        while approval.statuses[-1] != "paused" and time.monotonic() < deadline:
            time.sleep(0.5)
            status = str(admin("GET", f"/api/v1/runs/{run_id}/status"))
            if status != approval.statuses[-1]:
                approval.statuses.append(status)
        if approval.statuses[-1] != "paused":
            return
        if approval.wrong_answer is not None:
            wrong = {"run-id": run_id, "resolve": "continue", "answer": approval.wrong_answer}
            approval.answering = runner.start(wrong)
            approval.refused = approval.answering.finish(timeout=120)
            approval.condition_after_refusal = admin("GET", condition_path, params={"hydrate": "true"})
        answer = {"run-id": run_id, "wait-condition": asked.outputs["wait-condition-id"], "resolve": approval.resolve, "timeout": RUN_TIMEOUT}
        if approval.answer is not None:
            answer["answer"] = approval.answer
        approval.answering = runner.start(answer)
        approval.answered = approval.answering.finish(timeout=FINISH_WITHIN)
    except BaseException:
        approval.failure = traceback.format_exc()
    finally:
        approval.done.set()


@contextlib.contextmanager
def started_actions(executing: ExecutingDeployment, workspace: Path) -> Iterator[dict[str, RunningAction]]:
    """All five actions, started at once (by the tier's background thread,
    as soon as its server is ready); each test finishes its own. Once a
    held run's action has given up, the run is let go (its image "pulled",
    its step's gate opened), so it reaches its end beside the others."""
    runner = ActionRunner(
        workspace,
        base_inputs={"workspace-url": executing.url, "api-key": executing.api_key, "poll-interval": "1s"},
    )
    running_gate = executing.gate("running")
    # The `running` run's step says what this file holds: the API key, which
    # the action must show as `***` (test_a_running_steps_log_is_streamed...).
    say = executing.gate("running-says")
    say.write_text(executing.api_key)
    executing.hold()
    inputs = {
        "completed": {"template": "training-executed", "parameters": "model_type: logistic_regression", "timeout": RUN_TIMEOUT},
        "failed": {"template": "training-executed", "parameters": "model_type: svm_deluxe", "timeout": RUN_TIMEOUT},
        "provisioning": {"template": "held-executed", "timeout": f"{PROVISIONING_TIMEOUT}s"},
        "running": {
            "template": "gated-executed",
            "parameters": f"gate: {running_gate}\nticks: {TICKS}\nsay: {say}",
            "timeout": f"{RUNNING_TIMEOUT}s",
        },
        "dynamic": {"template": "dynamic-executed", "parameters": "width: 3", "timeout": RUN_TIMEOUT},
    }
    # The running run's output is read as it comes, each line timestamped.
    runs = {name: runner.start(given, stamped=name == "running") for name, given in inputs.items()}
    ask = {"template": "approval-executed", "parameters": APPROVAL_PARAMETERS, "timeout": ASK_TIMEOUT}
    approvals = {
        "approval-continue": Approval(runner.start(ask), resolve="continue", answer="true"),
        "approval-abort": Approval(runner.start(ask), resolve="abort", wrong_answer="maybe"),
    }
    for approval in approvals.values():
        threading.Thread(target=answer_once_paused, args=(approval, runner, executing), daemon=True).start()

    def let_go_once_given_up() -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            runs["provisioning"].process.wait(FINISH_WITHIN)
        executing.release()
        with contextlib.suppress(subprocess.TimeoutExpired):
            runs["running"].process.wait(FINISH_WITHIN)
        running_gate.touch()

    threading.Thread(target=let_go_once_given_up, daemon=True).start()
    try:
        yield {**runs, **approvals}
    finally:
        executing.release()
        running_gate.touch()
        for approval in approvals.values():
            approval.kill()
        for action in runs.values():
            if action.process.poll() is None:
                action.process.kill()
                action.process.wait()


@pytest.fixture
def started() -> dict[str, RunningAction]:
    return cast(dict[str, RunningAction], executing_server.tier().actions)


_FINISHED: dict[str, ActionResult] = {}


@pytest.fixture
def approvals() -> dict[str, Approval]:
    actions = executing_server.tier().actions
    return {name: action for name, action in actions.items() if isinstance(action, Approval)}


def settled(approvals: dict[str, Approval], name: str, executing: ExecutingDeployment) -> Approval:
    """The approval run once its answering is over, or a failure that shows
    what the steps did."""
    approval = approvals[name]
    if not approval.done.wait(2 * FINISH_WITHIN):
        raise AssertionError(f"`{name}` was not answered within {2 * FINISH_WITHIN}s\n{executing.evidence()}")
    assert approval.failure == "", approval.failure
    assert approval.asked is not None
    for action in (approval.asked, approval.refused, approval.answered):
        assert action is None or action.stderr == "", action.stderr
    return approval


def finish(started: dict[str, RunningAction], name: str, executing: ExecutingDeployment) -> ActionResult:
    """The action's end, or a failure that shows what the steps did (read
    once: a second test of the same action gets the same result)."""
    if name in _FINISHED:
        return _FINISHED[name]
    action = started[name]
    try:
        result = action.finish(timeout=FINISH_WITHIN)
    except subprocess.TimeoutExpired as exc:
        action.process.kill()
        raise AssertionError(
            f"the `{name}` action did not end within {FINISH_WITHIN}s:\n{exc.output}\n{executing.evidence()}"
        ) from None
    assert result.stderr == "", result.stderr
    _FINISHED[name] = result
    return result


def final_status(executing: ExecutingDeployment, run_id: str, within: float = FINISH_WITHIN) -> str:
    """Wait for the server to record the run as finished; its status."""
    deadline = time.monotonic() + within
    status = ""
    while time.monotonic() < deadline:
        status = str(executing.server.admin("GET", f"/api/v1/runs/{run_id}/status"))
        if status in ("completed", "failed", "stopped", "cancelled"):
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} still `{status}` after {within}s\n{executing.evidence()}")


def judged(result: ActionResult) -> dict[str, Any]:
    """The `result` output, checked against its published schema."""
    facts: dict[str, Any] = json.loads(result.outputs["result"])
    jsonschema.validate(facts, RESULT_SCHEMA)
    return facts


def test_a_timeout_while_provisioning_leaves_a_run_the_server_cannot_stop_yet(
    started: dict[str, RunningAction], executing: ExecutingDeployment
) -> None:
    result = finish(started, "provisioning", executing)

    assert result.returncode == 1
    assert result.outputs["conclusion"] == "timeout"
    assert result.outputs["status"] == "provisioning", f"{result.stdout}\n{executing.evidence()}"
    [error] = result.errors
    assert f"`timeout` ({PROVISIONING_TIMEOUT}s) ran out while waiting for run" in error and "(still `provisioning`)" in error
    # The run has no orchestrator run id until a step starts: the server
    # refuses the stop, and the action says so in the server's words.
    assert any("Cannot stop a pipeline run that has no orchestrator run id yet" in w for w in result.warnings), result.stdout
    # Let go once the action gave up (`started_actions`), the run goes on
    # to completion: nothing stopped it.
    assert final_status(executing, result.outputs["run-id"]) == "completed"


def test_a_timeout_while_running_stops_the_run(started: dict[str, RunningAction], executing: ExecutingDeployment) -> None:
    result = finish(started, "running", executing)

    assert result.returncode == 1, result.stdout
    assert result.outputs["conclusion"] == "timeout", f"{result.stdout}\n{executing.evidence()}"
    assert result.outputs["status"] == "running", f"{result.stdout}\n{executing.evidence()}"
    [error] = result.errors
    assert f"`timeout` ({RUNNING_TIMEOUT}s) ran out while waiting for run" in error and "(still `running`)" in error
    run_id = result.outputs["run-id"]
    # The SSH orchestrator cannot stop containers (the server answers 501)
    # but the server marks the run `stopping`; its step then ends.
    assert executing.server.admin("GET", f"/api/v1/runs/{run_id}/status") in ("stopping", "stopped")
    # Its step's gate opened once the action gave up (`started_actions`):
    # the step ends, and the run with it, `stopped`.
    assert final_status(executing, run_id) == "stopped"


def test_a_running_steps_log_is_streamed_as_it_is_written(
    started: dict[str, RunningAction], executing: ExecutingDeployment
) -> None:
    """The `running` run's step prints `tick 1` ... `tick 20` a second
    apart (then waits for its gate until the action times out): the action
    shows them while the step runs, in order, each once, inside
    `stop-commands`, prefixed with the step; a line that looks like a
    workflow command is inert and the API key it says is `***`."""
    result = finish(started, "running", executing)
    evidence = f"{result.stdout}\n{executing.evidence()}"

    shown = relayed(result.stdout)
    ticks = [line for line in shown if line.startswith("[wait_for_gate] tick ")]
    assert ticks == [f"[wait_for_gate] tick {n}" for n in range(1, TICKS + 1)], evidence
    assert "[wait_for_gate] ::error::a step's line is no command" in shown
    assert "[wait_for_gate] saying ***" in shown
    # The only `::error` is the action's own (the timeout).
    assert [line for line in result.stdout.splitlines() if line.startswith("::error")] == result.errors
    assert len(result.errors) == 1 and "ran out while waiting" in result.errors[0]
    # Read as written: over more than one read, while the step ran, long
    # before the action ended.
    read_at = {line: moment for moment, line in result.stamped}
    first, last = read_at["[wait_for_gate] tick 1"], read_at[f"[wait_for_gate] tick {TICKS}"]
    ended = result.stamped[-1][0]
    assert last - first >= 5, f"all ticks read at once\n{evidence}"
    assert ended - last >= 60, evidence
    lines = result.stdout.splitlines()
    assert lines.index("wait_for_gate: running") < lines.index("[wait_for_gate] tick 1")
    assert "| wait\\_for\\_gate | running |" in result.summary


def test_a_completed_run_reports_the_metrics_its_evaluate_step_logged(
    started: dict[str, RunningAction], executing: ExecutingDeployment
) -> None:
    result = finish(started, "completed", executing)

    assert result.returncode == 0, f"{result.stdout}\n{executing.evidence()}"
    assert result.errors == []
    assert result.outputs["conclusion"] == "success"
    assert result.outputs["status"] == "completed"
    for status in ("initializing", "running", "completed"):
        assert f"Run status: {status}" in result.stdout
    # Each step's start and end, in order, the end with its duration.
    transitions = [line for line in result.stdout.splitlines() if line.split(":")[0] in ("load_data", "train_model", "evaluate")]
    ends = [line for line in transitions if " completed in " in line]
    assert [line.split(":")[0] for line in ends] == ["load_data", "train_model", "evaluate"], result.stdout
    assert all(re.fullmatch(r"\w+: completed in \d+ s", line) for line in ends), ends
    assert transitions[-1] == ends[-1]
    assert result.stdout.index(ends[-1]) < result.stdout.index("Run status: completed")
    # What the sample's `evaluate` step computed with logistic regression
    # on scikit-learn's breast-cancer data (seeded: the same every run),
    # as the server recorded it on the run.
    run = executing.server.admin("GET", f"/api/v1/runs/{result.outputs['run-id']}", params={"hydrate": "true"})
    assert run["body"]["status"] == "completed"
    logged = run["metadata"]["run_metadata"]
    metadata = json.loads(result.outputs["metadata"])
    assert {name: metadata[name] for name in ("accuracy", "f1", "roc_auc")} == {
        name: logged[name] for name in ("accuracy", "f1", "roc_auc")
    }
    assert 0.9 < metadata["accuracy"] <= 1.0
    # `metrics`: the numeric metadata alone, flat.
    metrics = json.loads(result.outputs["metrics"])
    assert metrics == {name: logged[name] for name in ("accuracy", "f1", "roc_auc")}
    facts = judged(result)
    assert facts["run"]["status"] == "completed"
    assert facts["metrics"] == metrics
    assert facts["failures"] == []
    assert "| accuracy | 0.986" in result.outputs["report"]
    assert result.outputs["report"] in result.summary
    assert "Failed:" not in result.summary


def test_the_completed_runs_model_version_is_promoted_with_who_promoted_it(
    started: dict[str, RunningAction], executing: ExecutingDeployment, tmp_path: Path
) -> None:
    """Promote on merge: a second action, once the run's own ended, moves
    the version the executed run produced to a stage by `run-id`
    (`staging`: the approval runs beside it promote theirs to production,
    which would archive this one)."""
    completed = finish(started, "completed", executing)
    assert completed.returncode == 0, completed.stdout
    runner = ActionRunner(tmp_path, base_inputs={"workspace-url": executing.url, "api-key": executing.api_key})
    context = {"GITHUB_REPOSITORY": "acme/executed", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_ACTOR": "merger",
               "GITHUB_SHA": "e" * 40, "GITHUB_REF": "refs/heads/main", "GITHUB_EVENT_NAME": "pull_request"}
    result = runner.run({"run-id": completed.outputs["run-id"], "promote-to": "staging"}, extra_env=context)

    assert result.returncode == 0, result.stdout
    assert result.outputs["promoted"] == "true"
    version = executing.server.admin("GET", f"/api/v1/model_versions/{result.outputs['model-version-id']}", params={"hydrate": "true"})
    assert version["body"]["model"]["name"] == "breast_cancer_classifier"
    assert (version["body"]["stage"], str(version["name"])) == ("staging", result.outputs["model-version"])
    recorded = version["metadata"]["run_metadata"]
    assert 0.9 < recorded["accuracy"] <= 1.0  # what the evaluate step logged on the version
    assert (recorded["github.actor"], recorded["zenml_action.promoted_from_run"]) == ("merger", completed.outputs["run-id"])
    assert recorded["github.workflow_run_url"] == "https://github.com/acme/executed/actions/runs/4242"
    assert judged(result)["promotion"]["model"] == "breast_cancer_classifier"


def test_a_failed_step_is_named_with_its_own_error_in_the_log_summary_and_report(
    started: dict[str, RunningAction], executing: ExecutingDeployment
) -> None:
    result = finish(started, "failed", executing)

    assert result.returncode == 1, f"{result.stdout}\n{executing.evidence()}"
    assert result.outputs["conclusion"] == "failure", f"{result.stdout}\n{executing.evidence()}"
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
    # The same facts in the `result` and `report` outputs: the failed step,
    # its error and the end of its log; no metrics, no gate.
    facts = judged(result)
    [failure] = facts["failures"]
    assert failure["where"] == "step `train_model`"
    assert "ValueError: Unknown model_type 'svm_deluxe'" in failure["error"]
    assert any("Unknown model_type 'svm_deluxe'" in line for line in failure["last_lines"][-5:])
    assert facts["run"]["status"] == "failed" and facts["metrics"] == {}
    assert result.outputs["metrics"] == "{}"
    report = result.outputs["report"].rstrip().splitlines()
    assert "**Failed: step \\`train\\_model\\`** ValueError: Unknown model\\_type" in "\n".join(report)
    assert "| Last lines of its log |" in report
    # The log table's last row (before the folded GitHub context); an
    # apostrophe reads as one (it once showed as `&#x27;`).
    log = report[report.index("| Last lines of its log |") :]
    last_row = log[log.index("") - 1] if "" in log else log[-1]
    assert last_row.startswith("| ValueError: Unknown model\\_type 'svm\\_deluxe': choose one of"), last_row
    assert final_status(executing, result.outputs["run-id"]) == "failed"


def test_a_dynamic_pipeline_runs_the_steps_it_decides_on_and_reports_what_they_logged(
    started: dict[str, RunningAction], executing: ExecutingDeployment
) -> None:
    result = finish(started, "dynamic", executing)

    assert result.returncode == 0, f"{result.stdout}\n{executing.evidence()}"
    assert result.outputs["conclusion"] == "success"
    assert result.outputs["status"] == "completed"
    # `width: 3` made three steps, each logging its square on the run.
    assert json.loads(result.outputs["metrics"]) == {"square_of_1": 1.0, "square_of_2": 4.0, "square_of_3": 9.0}
    run_id = result.outputs["run-id"]
    steps = executing.server.admin("GET", "/api/v1/steps", params={"pipeline_run_id": run_id, "size": "20"})["items"]
    assert sorted(step["body"]["status"] for step in steps) == ["completed"] * 3


# -- runs that ask: the approval pipeline ----------------------------------------


def test_a_run_that_asks_ends_the_action_waiting_for_input_without_stopping_the_run(
    approvals: dict[str, Approval], executing: ExecutingDeployment
) -> None:
    approval = settled(approvals, "approval-continue", executing)
    asked = approval.asked
    assert asked is not None
    assert asked.returncode == 0, f"{asked.stdout}\n{executing.evidence()}"
    assert asked.errors == []
    assert asked.outputs["conclusion"] == "waiting-for-input", f"{asked.stdout}\n{executing.evidence()}"
    # Both are legal: the pipeline still polling for the answer (`running`,
    # holding its lease), or already `paused`. The action says what the
    # server showed, and the server showed the same as it ended.
    assert asked.outputs["status"] in ("running", "paused")
    assert approval.run_when_asked["body"]["status"] in ("running", "paused")
    condition = approval.condition_when_asked
    assert condition["body"]["status"] == "pending"
    assert condition["name"] == "promote"
    assert approval.run_when_asked["resources"]["active_wait_condition"]["id"] == asked.outputs["wait-condition-id"] == condition["id"]
    # The question carries the metrics the run's `evaluate` step logged.
    assert asked.outputs["question"] == condition["metadata"]["question"]
    assert QUESTION.fullmatch(asked.outputs["question"]), asked.outputs["question"]
    # `schema=bool`, as ZenML records it.
    assert json.loads(asked.outputs["answer-schema"]) == condition["metadata"]["data_schema"] == {"type": "boolean"}
    # The action left the run alone: 5 s after asking, the pipeline stopped
    # polling and the server paused it, releasing its compute; nothing
    # asked it to stop.
    assert approval.statuses[-1] == "paused", approval.statuses
    assert not {"stopping", "stopped"} & set(approval.statuses), approval.statuses


def test_a_second_action_answers_continue_and_the_resumed_run_promotes_the_model_version(
    approvals: dict[str, Approval], executing: ExecutingDeployment
) -> None:
    approval = settled(approvals, "approval-continue", executing)
    assert approval.asked is not None and approval.answered is not None, approval.statuses
    run_id = approval.asked.outputs["run-id"]
    answered = approval.answered
    assert answered.returncode == 0, f"{answered.stdout}\n{executing.evidence()}"
    assert answered.errors == []
    # The answering action waited for the run the server resumed.
    assert answered.outputs["run-id"] == run_id
    assert answered.outputs["conclusion"] == "success", f"{answered.stdout}\n{executing.evidence()}"
    assert answered.outputs["status"] == "completed"
    assert final_status(executing, run_id) == "completed"
    condition = executing.server.admin("GET", f"/api/v1/run_wait_conditions/{approval.asked.outputs['wait-condition-id']}", params={"hydrate": "true"})
    assert (condition["body"]["status"], condition["metadata"]["resolution"], condition["metadata"]["result"]) == ("resolved", "continue", True)
    # The version the question named is in production now.
    question = QUESTION.fullmatch(approval.asked.outputs["question"])
    assert question is not None
    run = executing.server.admin("GET", f"/api/v1/runs/{run_id}", params={"hydrate": "true"})
    version = executing.server.admin("GET", f"/api/v1/model_versions/{run['resources']['model_version']['id']}")
    assert (version["body"]["number"], version["body"]["stage"]) == (int(question.group(1)), "production")
    # Resumed, not run again: each step once, and the promotion after the answer.
    steps = executing.server.admin("GET", "/api/v1/steps", params={"pipeline_run_id": run_id, "size": "50"})["items"]
    assert sorted((step["name"], step["body"]["status"]) for step in steps) == sorted(
        (name, "completed") for name in [*APPROVAL_STEPS, "promote_model"]
    )


def test_an_answer_of_the_wrong_type_is_refused_and_the_question_stays_pending(
    approvals: dict[str, Approval], executing: ExecutingDeployment
) -> None:
    approval = settled(approvals, "approval-abort", executing)
    assert approval.refused is not None, (approval.statuses, approval.asked and approval.asked.stdout)
    refused = approval.refused
    assert refused.returncode == 1, refused.stdout
    [error] = refused.errors
    assert "Input `answer`" in error
    # No request that changes anything: the question is still unanswered.
    condition = approval.condition_after_refusal
    assert condition["body"]["status"] == "pending"
    assert (condition["metadata"]["resolution"], condition["metadata"]["result"]) == (None, None)
    assert condition["body"]["resolved_by_user_id"] is None


def test_a_second_action_answers_abort_and_the_run_ends_stopped(
    approvals: dict[str, Approval], executing: ExecutingDeployment
) -> None:
    approval = settled(approvals, "approval-abort", executing)
    assert approval.asked is not None and approval.answered is not None, approval.statuses
    run_id = approval.asked.outputs["run-id"]
    answered = approval.answered
    # The user asked for the stop: not a failure.
    assert answered.returncode == 0, f"{answered.stdout}\n{executing.evidence()}"
    assert answered.errors == []
    assert answered.outputs["status"] == "stopped"
    assert final_status(executing, run_id) == "stopped"
    run = executing.server.admin("GET", f"/api/v1/runs/{run_id}", params={"hydrate": "true"})
    assert run["body"]["status_reason"] == "Wait condition was aborted."
    # Nothing promoted: the version stays without a stage.
    version = executing.server.admin("GET", f"/api/v1/model_versions/{run['resources']['model_version']['id']}")
    assert version["body"]["stage"] is None
    steps = executing.server.admin("GET", "/api/v1/steps", params={"pipeline_run_id": run_id, "size": "50"})["items"]
    assert sorted(step["name"] for step in steps) == APPROVAL_STEPS
