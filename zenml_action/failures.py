"""Why a run failed, so that the user need not leave GitHub to learn which
step broke and why: the failed steps, their errors and the end of their logs
(or the run's own log). `explain()` asks the server; the rest is pure."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from zenml_action import api, deadline
from zenml_action.client import ZenMLClient
from zenml_action.errors import ActionError
from zenml_action.github import Console, shorten
from zenml_action.report import FailureLog, Report

# The folded group in the log: the end of the log, where the error is.
LOG_TAIL_LINES = 60
LOG_TAIL_BYTES = 12_000
# The job summary: enough to show the exception and its cause.
SUMMARY_LINES = 12
SUMMARY_LINE_CHARS = 300
ERROR_CHARS = 300

# The last line of a Python traceback: `ValueError: message`, also with a
# dotted module path (`requests.exceptions.HTTPError: ...`) or no message.
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_][\w]*\.)*[A-Z][\w]*(?:Error|Exception|Exit|Interrupt|Timeout|Failure|Failed)\b(?::.*)?$"
)


@dataclass(frozen=True)
class FailedStep:
    id: str
    name: str
    error: str  # from the step's `exception_info` (0.83+); "" when the server has none


def decode_failed_steps(body: Any) -> list[FailedStep]:
    steps = []
    for item in api.items(body):  # each with an ID
        traceback = api.dig(item, "metadata", "exception_info", "traceback")
        error = error_line(traceback.splitlines()) if isinstance(traceback, str) else ""
        steps.append(FailedStep(item["id"], str(item.get("name") or item["id"]), error))
    return steps


def decode_log(body: Any) -> list[str]:
    """Log lines from either answer shape: a list of entries (chunks of a
    long entry share an `id` and are joined) or one string."""
    if isinstance(body, str):
        return body.splitlines()
    if not isinstance(body, list):
        return []
    messages: list[str] = []
    last_id: Any = None
    for entry in body:
        entry = {"message": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict):
            continue
        message, entry_id = str(entry.get("message") or ""), entry.get("id")
        # The server's data: a chunk index that is no whole number starts a line.
        chunk = entry.get("chunk_index")
        if entry_id is not None and entry_id == last_id and isinstance(chunk, int) and chunk > 0:
            messages[-1] += message
        else:
            messages.append(message)
        last_id = entry_id
    return [line for message in messages for line in message.splitlines()]


def tail(lines: list[str], max_lines: int, max_bytes: int) -> list[str]:
    """The last lines that fit in both caps; a single line longer than the
    byte cap keeps its end (where a message usually says what went wrong)."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines[-max_lines:] if max_lines > 0 else []):
        size += len(line.encode("utf-8")) + 1
        if size > max_bytes:
            if not kept:
                kept.append("…" + line.encode("utf-8")[-(max_bytes - 4) :].decode("utf-8", "ignore"))
            break
        kept.append(line)
    return list(reversed(kept))


def error_line(lines: Iterable[str]) -> str:
    """The last exception line in a log or traceback, e.g.
    `ValueError: Unknown model_type 'svm_deluxe': ...`; empty if none."""
    found = [line for line in (line.strip() for line in lines) if _EXCEPTION_LINE.match(line)]
    return shorten(found[-1] if found else "", ERROR_CHARS)


def step_url(run_url: str, step_id: str) -> str:
    """The run's dashboard page with the step selected in its graph."""
    return f"{run_url}{'&' if '?' in run_url else '?'}nodeId={step_id}" if run_url else ""


def reason(failures: list[FailureLog]) -> str:
    """What the `::error` says after "Run ... ended `failed`": which steps
    failed and with what, e.g. "step `train_model` failed: ValueError: ..."."""
    told = [failure for failure in failures if failure.where != "the run" or failure.error]
    parts = [f"{f.where} failed" + (f": {f.error}" if f.error else "") for f in told]
    # The `::error` goes on with ". See its logs ...": no doubled full stop.
    return "; ".join(parts).rstrip(".")


def group_title(where: str, shown: int, total: int) -> str:
    what = f"Log of {where}" if where == "the run" else f"Log of failed {where}"
    return f"{what} (last {shown} of {total} lines)" if shown < total else f"{what} ({total} lines)"


def _printed(console: Console, where: str, error: str, lines: list[str]) -> FailureLog:
    """The log's tail printed in a folded group; its error and last lines for the summary."""
    shown = tail(lines, LOG_TAIL_LINES, LOG_TAIL_BYTES)
    console.group(group_title(where, len(shown), len(lines)))
    console.info("\n".join(shown))
    console.endgroup()
    last = tuple(shorten(line, SUMMARY_LINE_CHARS) for line in lines[-SUMMARY_LINES:])
    return FailureLog(where, error or error_line(lines), last)


def _log(client: ZenMLClient, request: Any, console: Console) -> tuple[list[str], str]:
    """The log's lines, redacted before anything cuts them (a key that
    straddles a cut would survive as a prefix), or why the server could not
    serve them."""
    try:
        return [console.redact(line) for line in decode_log(client.call(request))], ""
    except ActionError as exc:
        return [], str(exc)


def explain(client: ZenMLClient, console: Console, report: Report) -> str:
    """For a failed run: each failed step's log tail printed and in the
    summary; returns the reason for the `::error` ("" if the server told none)."""
    if report.status != "failed" or not report.run_id:
        return ""
    deadline.entering("listing the run's failed steps")
    try:
        listed = client.call(api.list_failed_steps(report.run_id))
        # Redacted before the errors in it are shortened (see `_log`).
        steps = decode_failed_steps(json.loads(console.redact(json.dumps(listed))))
    except ActionError as exc:
        console.info(f"Could not list the run's failed steps: {exc}")
        steps = []
    failures: list[FailureLog] = []
    for step in steps:
        where = f"step `{step.name}`"
        lines, problem = _log(client, api.step_logs(step.id, "reading the failed step's log"), console)
        if lines:
            failures.append(_printed(console, where, step.error, lines))
            continue
        said = "could not serve the log of" if problem else "holds no log for"
        note = f"The server {said} {where}; see it in the dashboard: {step_url(report.run_url, step.id)}"
        console.info(note + (f" ({problem})" if problem else ""))
        failures.append(FailureLog(where, step.error, (), note))
    if not any(failure.last_lines for failure in failures):
        # Failed before any step ran (or no step has a log): the run's own.
        lines, _ = _log(client, api.run_logs(report.run_id), console)
        if lines:
            failures.append(_printed(console, "the run", "", lines))
        elif not failures:
            note = f"The server could not serve the run's log; see the run in the dashboard: {report.run_url}"
            console.info(note)
            failures.append(FailureLog("the run", "", (), note))
    report.failure_logs.extend(failures)
    return reason(failures)
