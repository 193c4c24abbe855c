"""Runs that wait for a person, pure (`answering.py` sends): ZenML 0.98's
wait conditions (`zenml.wait(...)` in a dynamic pipeline) over REST, the
answer checked against the question's schema, and the question shown.

Spec: the installed `zenml` source, `zen_server/routers/
run_wait_conditions_endpoints.py` and `zen_stores/sql_zen_store.py`
(`resolve_run_wait_condition`, `_validate_wait_condition_result`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zenml_action.api import API, dig, items
from zenml_action.errors import InputError
from zenml_action.github import quoted, shorten
from zenml_action.http import Request
from zenml_action.report import cell
from zenml_action.yaml_input import parse_yaml_value

WAIT_CONDITIONS_FROM = (0, 98, 0)
# What the summary and the outputs show of a question and its schema: both
# are the pipeline's text, and a question can be any length.
MAX_QUESTION = 2000
MAX_SCHEMA = 4000


@dataclass(frozen=True)
class Question:
    id: str
    name: str
    text: str
    schema: dict[str, Any] | None  # None: the question takes no answer
    status: str  # pending, resolved
    resolution: str = ""  # continue, abort (once resolved)
    result: Any = None
    resolved_at: str = ""
    answered_by: str = ""  # the GitHub actor the action recorded, else the user's ID


@dataclass(frozen=True)
class Answering:
    """`resolve`, `answer` and `wait-condition`: the answer to send."""

    resolution: str
    answer: Any  # None: no answer given
    answer_text: str
    wait_condition: str  # the condition's ID or name the reviewer saw; "" for any


def pending_condition_id(run: Any) -> str:
    """The run's pending wait condition ("" if none), from `GET /runs/{id}` on 0.98."""
    return str(dig(run, "resources", "active_wait_condition", "id") or "")


def get_condition(condition_id: str) -> Request:
    params, purpose = {"hydrate": "true"}, "reading the run's question"
    return Request("GET", f"{API}/run_wait_conditions/{condition_id}", params=params, purpose=purpose)


def list_conditions(run_id: str) -> Request:
    params = {"pipeline_run": run_id, "sort_by": "desc:created", "size": "20", "hydrate": "true"}
    return Request("GET", f"{API}/run_wait_conditions", params=params, purpose="listing the run's questions")


def resolve_condition(condition_id: str, answering: Answering) -> Request:
    # The server refuses a result for a question with no schema, and
    # ignores one with `abort`.
    body: dict[str, Any] = {"resolution": answering.resolution}
    if answering.resolution == "continue" and answering.answer is not None:
        body["result"] = answering.answer
    return Request("PUT", f"{API}/run_wait_conditions/{condition_id}/resolve", json=body, purpose="answering the run's question")


def decode_question(body: Any) -> Question | None:
    """A wait condition from the server's answer; None when it is not one.
    Everything in it is the pipeline's text, kept as text."""
    if not isinstance(body, dict) or not body.get("id"):
        return None
    schema = dig(body, "metadata", "data_schema")
    return Question(
        id=str(body["id"]), name=str(body.get("name") or ""),
        text=str(dig(body, "metadata", "question") or ""),
        schema=schema if isinstance(schema, dict) else None, status=str(dig(body, "body", "status") or ""),
        resolution=str(dig(body, "metadata", "resolution") or ""), result=dig(body, "metadata", "result"),
        resolved_at=str(dig(body, "body", "resolved_at") or ""),
        answered_by=str(dig(body, "metadata", "run_metadata", "github.actor") or dig(body, "body", "resolved_by_user_id") or ""),
    )


def decode_questions(body: Any) -> list[Question]:
    return [question for question in map(decode_question, items(body)) if question is not None]


def parse_answering(raw: Mapping[str, str], run_id: str) -> Answering | None:
    """The answering inputs, checked together (no request is made)."""
    resolution = raw["resolve"].strip().lower()
    answer_text, wanted = raw["answer"].strip(), raw["wait-condition"].strip()
    if not resolution:
        for name, given in (("answer", answer_text), ("wait-condition", wanted)):
            if given:
                raise InputError(name, "is only used with `resolve`.", "Set `resolve: continue` (or `abort`), or leave it empty.")
        return None
    if resolution not in ("continue", "abort"):
        raise InputError("resolve", f"{quoted(raw['resolve'])} is neither `continue` nor `abort`.", "Use `continue` to answer and let the run go on, or `abort` to stop it.")
    if not run_id:
        raise InputError("resolve", "needs `run-id`: the run whose question it answers.", "Set `run-id`, e.g. to the `run-id` output of the job that ended `waiting-for-input`.")
    answer = parse_yaml_value("answer", answer_text) if answer_text else None
    return Answering(resolution, answer, answer_text, wanted)


def answer_problem(question: Question, answering: Answering) -> str:
    """Why the answer does not fit the question ("" when it does, or when
    it cannot be checked here: the server checks it again)."""
    if answering.resolution != "continue":
        return ""
    if question.schema is None:
        return "this question takes no answer" if answering.answer is not None else ""
    import jsonschema
    import referencing.exceptions

    try:
        validator_class = jsonschema.validators.validator_for(question.schema)
        # No retrieval: a `$ref` to an address is never fetched (the
        # default registry resolves only references inside the schema).
        error = next(validator_class(question.schema).iter_errors(answering.answer), None)
    except (jsonschema.exceptions.SchemaError, referencing.exceptions.Unresolvable, RecursionError, ValueError, TypeError):
        return ""
    if error is None:
        return ""
    where = "".join(f"[{json.dumps(part)}]" for part in error.absolute_path)
    return f"the answer{where} does not fit the question's schema: {shorten(error.message, 300)}"


# An answer of each JSON type, for the ready-to-copy step.
EXAMPLE_ANSWERS = {"boolean": "true", "integer": "1", "number": "0.5", "string": "yes", "object": "{}", "array": "[]"}


def question_section(question: Question, run_id: str, action_ref: str) -> list[str]:
    """The question, the answer it expects and the step that answers it (summary, `report`)."""
    schema = shorten(json.dumps(question.schema or {}, indent=2, sort_keys=True, default=str), MAX_SCHEMA)
    lines = [f"**The run is waiting for an answer** (question {cell(question.name or question.id)}):", ""]
    lines += [f"> {cell(shorten(question.text, MAX_QUESTION)) or '(no question text)'}", ""]
    step = [
        f"- uses: {action_ref}",
        "  with:",
        "    workspace-url: ${{ vars.ZENML_URL }}",
        "    api-key: ${{ secrets.ZENML_API_KEY }}",
        f"    run-id: {run_id}",
        f"    wait-condition: {question.id}",
        "    resolve: continue  # or abort",
    ]
    if question.schema is None:
        lines += ["It takes no answer: `resolve: continue` lets it go on, `resolve: abort` stops it.", ""]
    else:
        lines += ["The answer it expects (JSON schema):", "", *fenced(schema, "json"), ""]
        step.append(f"    answer: {EXAMPLE_ANSWERS.get(str(question.schema.get('type')), 'true')}")
    lines += ["Answer it with this step (in a job behind a protected environment):", ""]
    return [*lines, *fenced("\n".join(step), "yaml")]


def fenced(text: str, language: str) -> list[str]:
    """A code block no line of `text` can close: its fence is longer than
    any run of backticks in it."""
    fence = "```"
    while fence in text:
        fence += "`"
    return [f"{fence}{language}", *text.splitlines(), fence]
