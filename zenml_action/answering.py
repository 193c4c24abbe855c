"""A run that asks a person (`questions.py`): its question shown when the
wait ends on it, and answered with `resolve` and `answer` (`run-id`).

The answer must reach the question the reviewer saw (`wait-condition`): a
run that has moved on to another question is not answered. Answering twice
with the same answer (a re-run job) is not an error.
"""

from __future__ import annotations

from typing import Any

from zenml_action import api, deadline
from zenml_action import questions as qs
from zenml_action.client import ZenMLClient
from zenml_action.errors import ActionError, InputError, ServerRejected
from zenml_action.github import quoted, shorten
from zenml_action.questions import Answering, Question
from zenml_action.report import strict_json
from zenml_action.runs import Action
from zenml_action.versions import ServerVersion, show


def show_question(action: Action, condition_id: str) -> None:
    """The wait ended on a question: it, the answer it expects and the step
    that answers it, into the log, the outputs, the summary and `report`."""
    report, console, client = action.report, action.console, action.client
    report.conclusion = "waiting-for-input"
    question = None
    if client is not None:
        deadline.entering("reading the run's question")
        try:
            question = qs.decode_question(client.call(qs.get_condition(condition_id)))
        except ActionError as exc:
            console.warning(f"Could not read the run's question {condition_id}: {exc}")
    question = question or Question(condition_id, "", "", None, "pending")
    schema = strict_json(question.schema or {})  # `{}` when the question has none
    report.asked = {"wait-condition-id": question.id, "question": question.text, "answer-schema": schema}
    report.asked_section = qs.question_section(question, report.run_id, action.inputs.action_ref)
    console.notice(
        f"Run `{report.run_name}` is waiting for an answer to {quoted(question.name or question.id)}: "
        f"{shorten(question.text, 300) or '(no question text)'}. Answer it with `run-id: {report.run_id}`, "
        f"`wait-condition: {question.id}` and `resolve: continue` (with `answer`) or `abort`; the run is not stopped.",
        title="Run waiting for input",
    )


def answer(action: Action, run: dict[str, Any], server: ServerVersion) -> dict[str, Any] | None:
    """`resolve`: answer the run's pending question (checked first, sent
    once), record who answered. The run afterwards; None for a dry run."""
    inputs, console, report, client = action.inputs, action.console, action.report, action.client
    answering = inputs.answering
    assert answering is not None and client is not None
    if server.release < qs.WAIT_CONDITIONS_FROM:
        since = show(qs.WAIT_CONDITIONS_FROM)
        raise InputError(
            "resolve",
            f"the server runs ZenML {server.raw}, whose runs cannot ask questions (they arrive in ZenML {since}).",
            f"Upgrade the server to {since} or later, or leave `resolve` empty.",
        )
    pending_id, question = qs.pending_condition_id(run), None
    if pending_id:
        deadline.entering("reading the run's question")
        question = qs.decode_question(client.call(qs.get_condition(pending_id)))
        if question is None:
            raise ActionError(f"The server's answer for the run's question {pending_id} was not a question. Check `workspace-url`.")
    wanted = answering.wait_condition
    if question is None or (wanted and wanted not in (question.id, question.name)):
        _answered_before(action, answering, question)
        return None if inputs.dry_run else run
    if problem := qs.answer_problem(question, answering):
        given = quoted(answering.answer_text) if answering.answer_text else "no answer"
        raise InputError(
            "answer", f"{given} does not fit run's question {quoted(question.name)}: {problem}. "
            f"The question: {quoted(shorten(question.text, 300))}; the answer it expects: `{shorten(strict_json(question.schema or {}), 500)}`.",
            "Give an answer of that shape as YAML (e.g. `answer: true`), or `resolve: abort` to stop the run.",
        )
    what = f"`{answering.resolution}`" + (f" with {quoted(answering.answer_text)}" if answering.answer is not None else "")
    if inputs.dry_run:
        console.info(f"Dry run: question {quoted(question.name)} ({question.id}): {shorten(question.text, 300)}")
        console.info(f"Dry run: it would be answered {what}; nothing is sent.")
        return None
    _send(client, question, answering)
    console.info(f"Answered question {quoted(question.name)} of run `{report.run_name}` {what}.")
    # Who answered, from which workflow run, on the question itself (the
    # dashboard shows it); a failure costs only the record.
    keys = ("github.actor", "github.repository", "github.workflow_run_url", "github.sha")
    values = {"zenml_action.resolution": answering.resolution, "zenml_action.answer": answering.answer_text}
    values |= {key: inputs.github.get(key, "") for key in keys}
    recorded = {key: value for key, value in values.items() if value}
    project_id, purpose = str(api.dig(run, "body", "project_id") or ""), "recording who answered the question"
    try:
        client.call(api.text_metadata(project_id, question.id, "wait_condition", recorded, purpose))
    except ActionError as exc:
        console.warning(f"Could not record who answered on question {question.id}: {exc}")
    deadline.entering(f"reading run {report.run_id}")
    return dict(client.call(api.get_run(report.run_id)))


def _send(client: ZenMLClient, question: Question, answering: Answering) -> None:
    """One resolve. A refusal or a dropped answer is checked against the
    question as the server then has it: the answer may have arrived (a
    retried request finds it answered), or someone else answered first."""
    deadline.entering("answering the run's question")
    try:
        client.call(qs.resolve_condition(question.id, answering))
        return
    except ActionError as exc:
        failure: ActionError = exc
    after = qs.decode_question(client.call(qs.get_condition(question.id)))
    if after is not None and after.status != "pending":
        if _same(after, answering):
            return
        raise ActionError(f"Question {quoted(question.name)} was answered by someone else first: {_how(after)}. Nothing was changed.")
    if isinstance(failure, ServerRejected) and answering.resolution == "continue":
        raise InputError("answer", f"was refused by the server: {failure}", "Give an answer that fits the question's schema.") from failure
    raise failure


def _answered_before(action: Action, answering: Answering, asking: Question | None) -> None:
    """The run asks nothing, or not what `wait-condition` names: the same
    answer again (a re-run job) goes on; anything else says what happened."""
    report, wanted = action.report, answering.wait_condition
    assert action.client is not None
    deadline.entering("listing the run's questions")
    asked = qs.decode_questions(action.client.call(qs.list_conditions(report.run_id)))
    newest = next((q for q in asked if not wanted or wanted in (q.id, q.name)), None)
    if newest is not None and newest.status != "pending" and _same(newest, answering):
        then = (
            f"; the run now asks {quoted(asking.name)}" if asking else f" ({_how(newest)}); following the run"
        )
        action.console.info(f"Question {quoted(newest.name)} was already answered so{then}.")
        return
    if asking is not None:
        raise InputError(
            "wait-condition",
            f"names {quoted(wanted)}, but the run now waits for an answer to {quoted(asking.name)} "
            f"({asking.id}): {quoted(shorten(asking.text, 200))}. Nothing was answered.",
            "The run has moved on: answer the question it asks now from the job that showed it, "
            "or set `wait-condition` to that question's ID.",
        )
    if newest is None:
        never = f"never asked {quoted(wanted)}" if wanted else "has never asked a question"
        raise InputError(
            "resolve",
            f"run `{report.run_name}` ({report.run_id}) {never} (it is `{report.status}`); nothing to answer.",
            "Check `run-id` (and `wait-condition`): answer a run whose job ended `waiting-for-input`.",
        )
    raise InputError(
        "resolve",
        f"question {quoted(newest.name)} of run `{report.run_name}` was already answered: {_how(newest)}.",
        "Nothing was changed. Check the run in the dashboard; a new question would be pending.",
    )


def _same(question: Question, answering: Answering) -> bool:
    if question.resolution != answering.resolution:
        return False
    return answering.resolution == "abort" or strict_json(question.result) == strict_json(answering.answer)


def _how(question: Question) -> str:
    result = f" with `{shorten(strict_json(question.result), 100)}`" if question.result is not None else ""
    when = f" at {question.resolved_at}" if question.resolved_at else ""
    who = f" by {quoted(question.answered_by)}" if question.answered_by else ""
    return f"`{question.resolution or 'resolved'}`{result}{who}{when}"
