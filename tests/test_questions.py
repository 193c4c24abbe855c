"""Runs that wait for a person (ZenML 0.98 wait conditions): the wait ends
on a question with `waiting-for-input`, a paused run is never stopped, and
`resolve` answers the question the reviewer saw, checked first.

The rules (inputs, answers against schemas, the question's Markdown) run
in-process by table. What the server decides runs against the session's
0.98 server, which plays the orchestrator's part here: the test creates the
question on a run of a dynamic snapshot and sets the run's status over
REST, as `zenml.wait(...)` and the orchestrator do (the executing tier,
`test_executed_runs.py`, runs a real one).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import Deployment
from support.action import ActionRunner
from support.github_env import github_env

from zenml_action.errors import InputError
from zenml_action.inputs import read_inputs
from zenml_action.questions import Answering, Question, answer_problem, question_section
from zenml_action.report import Report, summary_markdown

RUN_ID = str(uuid.UUID(int=7))
BASE = {"INPUT_WORKSPACE-URL": "http://127.0.0.1:8080", "INPUT_API-KEY": "ZENKEY_" + "a" * 40}
BOOLEAN = {"type": "boolean"}


@pytest.mark.offline
@pytest.mark.parametrize(
    ("given", "name", "problem"),
    [
        ({"INPUT_RESOLVE": "continue", "INPUT_TEMPLATE": "t"}, "resolve", "needs `run-id`"),
        ({"INPUT_RESOLVE": "approve", "INPUT_RUN-ID": RUN_ID}, "resolve", "is neither `continue` nor `abort`"),
        ({"INPUT_ANSWER": "true", "INPUT_RUN-ID": RUN_ID}, "answer", "is only used with `resolve`"),
        ({"INPUT_WAIT-CONDITION": "promote", "INPUT_RUN-ID": RUN_ID}, "wait-condition", "is only used with `resolve`"),
        ({"INPUT_RESOLVE": "continue", "INPUT_RUN-ID": RUN_ID, "INPUT_ANSWER": "[unclosed"}, "answer", "is not valid YAML"),
        ({"INPUT_RESOLVE": "continue", "INPUT_RUN-ID": RUN_ID, "INPUT_ANSWER": "2026-12-04"}, "answer", "reads as a date"),
    ],
    ids=["no-run-id", "unknown-resolution", "answer-alone", "wait-condition-alone", "bad-yaml", "a-date"],
)
def test_answering_mistakes_are_input_errors(tmp_path: Path, given: dict[str, str], name: str, problem: str) -> None:
    with pytest.raises(InputError) as raised:
        read_inputs({**BASE, "GITHUB_WORKSPACE": str(tmp_path), **given}, [])
    assert raised.value.input_name == name and problem in str(raised.value)


@pytest.mark.offline
@pytest.mark.parametrize(
    ("answer", "expected"),
    [("true", True), ("0.9", 0.9), ("{approved: true, note: ok}", {"approved": True, "note": "ok"}), ("", None)],
)
def test_the_answer_is_read_as_yaml(tmp_path: Path, answer: str, expected: Any) -> None:
    inputs = read_inputs(
        {**BASE, "GITHUB_WORKSPACE": str(tmp_path), "INPUT_RUN-ID": RUN_ID, "INPUT_RESOLVE": "Continue", "INPUT_ANSWER": answer}, []
    )
    assert inputs.answering == Answering("continue", expected, answer, "")


def question(schema: dict[str, Any] | None, text: str = "Promote?") -> Question:
    return Question("c-1", "promote", text, schema, "pending")


@pytest.mark.offline
@pytest.mark.parametrize(
    ("schema", "resolution", "answer", "problem"),
    [
        (BOOLEAN, "continue", True, ""),
        (BOOLEAN, "continue", "maybe", "'maybe' is not of type 'boolean'"),
        (BOOLEAN, "continue", None, "None is not of type 'boolean'"),
        (BOOLEAN, "abort", None, ""),  # the server ignores an answer to abort
        (None, "continue", None, ""),
        (None, "continue", True, "this question takes no answer"),
        ({"type": "object", "properties": {"p": {"type": "number"}}}, "continue", {"p": "x"}, 'the answer["p"] does not fit'),
        # A reference to an address is never fetched: the server checks it.
        ({"$ref": "https://example.invalid/schema.json"}, "continue", True, ""),
        ({"type": 12}, "continue", True, ""),  # an invalid schema: the server checks
    ],
    ids=["fits", "wrong-type", "missing", "abort", "no-schema", "answer-to-no-schema", "nested", "remote-ref", "invalid-schema"],
)
def test_an_answer_is_checked_against_the_schema(
    schema: dict[str, Any] | None, resolution: str, answer: Any, problem: str
) -> None:
    found = answer_problem(question(schema), Answering(resolution, answer, json.dumps(answer), ""))
    assert (problem in found) if problem else found == "", found


@pytest.mark.offline
@pytest.mark.parametrize(
    "text",
    ["::error::owned", "<img src=x onerror=alert(1)> [click](https://evil.example) @org/team #1", "`" * 10 + "\n```\n# H", "x" * 100_000],
    ids=["workflow-command", "markdown", "fences", "huge"],
)
def test_a_question_from_the_pipeline_is_shown_as_text(text: str) -> None:
    schema = {"type": "boolean", "description": text}
    lines = question_section(question(schema, text), RUN_ID, "acme/zenml-action@v1")
    assert len("\n".join(lines)) < 12_000
    # The schema sits in a fenced block (shown as it is) that nothing in it
    # can close; outside it, the question is text.
    fences = [index for index, line in enumerate(lines) if line.startswith("```")]
    opening, closing = lines[fences[0]], lines[fences[1]]
    assert closing == opening.removesuffix("json") and all(closing not in line for line in lines[fences[0] + 1 : fences[1]])
    outside = "\n".join(lines[: fences[0]])
    assert "<img" not in outside and "](https://evil" not in outside and "@org/team" not in outside
    assert "    answer: true" in lines and f"    run-id: {RUN_ID}" in lines and "- uses: acme/zenml-action@v1" in lines


@pytest.mark.offline
def test_a_waiting_run_has_its_own_outputs_and_summary() -> None:
    report = Report(run_id=RUN_ID, run_name="r", status="paused", conclusion="waiting-for-input")
    report.asked = {"wait-condition-id": "c-1", "question": "Promote?", "answer-schema": json.dumps(BOOLEAN)}
    report.asked_section = question_section(question(BOOLEAN), RUN_ID, "acme/zenml-action@v1")
    outputs = report.outputs()
    assert (outputs["wait-condition-id"], outputs["question"], json.loads(outputs["answer-schema"])) == ("c-1", "Promote?", BOOLEAN)
    assert outputs["report"].startswith("### ⏸️ ZenML run waiting for input")
    assert "resolve: continue" in outputs["report"] and "resolve: continue" in summary_markdown(report)


# -- Against the 0.98 server ---------------------------------------------------


def dynamic_run(zenml: Deployment) -> dict[str, Any]:
    """A run of a dynamic snapshot (only those may ask), as a trigger
    elsewhere would have started it."""
    return dict(zenml.server.admin(
        "POST", f"/api/v1/pipeline_snapshots/{zenml.snapshots['dynamic']}/runs",
        json={"run_configuration": {"run_name": f"asks-{uuid.uuid4().hex[:8]}"}},
    ))


def ask(zenml: Deployment, run: dict[str, Any], status: str, schema: dict[str, Any] | None = BOOLEAN, name: str = "promote") -> str:
    """What `zenml.wait(...)` and the orchestrator do: the question, then
    the run's status (`running` while the pipeline polls, `paused` after)."""
    condition = zenml.server.admin("POST", "/api/v1/run_wait_conditions", json={
        "project": run["body"]["project_id"], "run": run["id"], "name": name, "type": "external_input",
        "question": "Promote model version 12 (accuracy 0.95) to production?", "data_schema": schema, "metadata": {},
    })
    zenml.server.admin("PUT", f"/api/v1/runs/{run['id']}", json={"status": status})
    return str(condition["id"])


def condition(zenml: Deployment, condition_id: str) -> dict[str, Any]:
    return dict(zenml.server.admin("GET", f"/api/v1/run_wait_conditions/{condition_id}", params={"hydrate": "true"}))


def status(zenml: Deployment, run: dict[str, Any]) -> str:
    return str(zenml.server.admin("GET", f"/api/v1/runs/{run['id']}/status"))


def test_a_triggered_run_that_asks_ends_the_wait_within_one_poll(action: ActionRunner, zenml: Deployment) -> None:
    run_name = f"asks-{uuid.uuid4().hex[:8]}"
    running = action.start({"template": "dynamic-prod", "run-name": run_name, "poll-interval": "1s", "timeout": "2m"})
    from support.orchestrator import find_run

    run = find_run(zenml.server, run_name)
    time.sleep(2)  # the action is polling
    asked_at = time.monotonic()
    condition_id = ask(zenml, run, "running")
    result = running.finish(timeout=60)

    assert time.monotonic() - asked_at < 6, result.stdout
    assert result.returncode == 0 and result.errors == [], result.stdout
    outputs = result.outputs
    assert (outputs["conclusion"], outputs["status"], outputs["wait-condition-id"]) == ("waiting-for-input", "running", condition_id)
    assert outputs["question"] == "Promote model version 12 (accuracy 0.95) to production?"
    assert json.loads(outputs["answer-schema"]) == BOOLEAN
    assert f"wait-condition: {condition_id}" in result.summary and "Run waiting for input" in result.stdout
    assert condition(zenml, condition_id)["body"]["status"] == "pending"


def test_a_paused_run_is_never_stopped(action: ActionRunner, zenml: Deployment) -> None:
    asking = dynamic_run(zenml)
    ask(zenml, asking, "paused")
    # Paused with no question pending ("waiting for manual resume"): the
    # wait goes on until the timeout, which does not stop it.
    resumable = dynamic_run(zenml)
    zenml.server.admin("PUT", f"/api/v1/runs/{resumable['id']}", json={"status": "paused"})

    attached = action.run({"run-id": asking["id"], "timeout": "1m"})
    timed_out = action.run({"run-id": resumable["id"], "timeout": "3s"})

    assert (attached.returncode, attached.outputs["conclusion"], attached.outputs["status"]) == (0, "waiting-for-input", "paused")
    assert (timed_out.returncode, timed_out.outputs["conclusion"]) == (1, "timeout"), timed_out.stdout
    for result in (attached, timed_out):
        assert "stop run" not in result.stdout, result.stdout
    assert (status(zenml, asking), status(zenml, resumable)) == ("paused", "paused")


def test_an_answer_reaches_only_the_question_it_was_given_for(action: ActionRunner, zenml: Deployment) -> None:
    run = dynamic_run(zenml)
    first = ask(zenml, run, "paused", name="first")
    answer = {"run-id": run["id"], "resolve": "continue", "answer": "true", "wait": "false"}
    env = github_env("acme/approve", "refs/heads/main")

    wrong_type = action.run({**answer, "answer": "maybe"}, extra_env=env)
    answered = action.run({**answer, "wait-condition": first}, extra_env=env)
    again = action.run({**answer, "wait-condition": first}, extra_env=env)  # the job re-run
    # The run moves on and asks again; an answer meant for the first is refused.
    zenml.server.admin("PUT", f"/api/v1/runs/{run['id']}", json={"status": "running"})
    second = ask(zenml, run, "paused", name="second")
    late = action.run({**answer, "wait-condition": "first", "answer": "false"}, extra_env=env)
    other = action.run({**answer, "wait-condition": str(uuid.uuid4())}, extra_env=env)

    assert wrong_type.returncode == 1 and "Input `answer`" in wrong_type.errors[0], wrong_type.stdout
    assert "Promote model version 12" in wrong_type.errors[0] and "boolean" in wrong_type.errors[0]
    assert answered.returncode == 0, answered.stdout
    recorded = condition(zenml, first)
    assert (recorded["metadata"]["resolution"], recorded["metadata"]["result"]) == ("continue", True)
    assert recorded["metadata"]["run_metadata"]["github.repository"] == "acme/approve"
    assert again.returncode == 0 and "already answered so" in again.stdout, again.stdout
    for refused in (late, other):
        assert refused.returncode == 1 and "Input `wait-condition`" in refused.errors[0], refused.stdout
        assert "now waits for an answer to `second`" in refused.errors[0]
    assert condition(zenml, second)["body"]["status"] == "pending"


def test_abort_stops_the_run_and_is_not_a_failure(action: ActionRunner, zenml: Deployment) -> None:
    run = dynamic_run(zenml)
    asked = ask(zenml, run, "paused")

    result = action.run({"run-id": run["id"], "resolve": "abort", "wait-condition": asked, "poll-interval": "1s"})
    twice = action.run({"run-id": run["id"], "resolve": "continue", "answer": "true"})

    assert (result.returncode, result.outputs["conclusion"], result.outputs["status"]) == (0, "cancelled", "stopped"), result.stdout
    assert "as asked (`resolve: abort`)" in result.stdout
    assert twice.returncode == 1 and "was already answered: `abort`" in twice.errors[0], twice.stdout


def test_a_dry_run_shows_the_answer_and_sends_nothing(action: ActionRunner, zenml: Deployment) -> None:
    run = dynamic_run(zenml)
    asked = ask(zenml, run, "paused")

    result = action.run({"run-id": run["id"], "resolve": "continue", "answer": "true", "dry-run": "true"})

    assert (result.returncode, result.outputs["conclusion"]) == (0, "dry-run"), result.stdout
    assert "would be answered `continue` with `true`" in result.stdout
    assert condition(zenml, asked)["body"]["status"] == "pending"
