"""What both modes do to a run that exists: read it, stop it, read its
metadata, and turn its outcome into the conclusion and the exit code."""

from __future__ import annotations

from typing import Any

from zenml_action import api, evaluation, failures
from zenml_action.client import ZenMLClient
from zenml_action.errors import ActionError, GateFailed, RunFailed, WaitTimedOut
from zenml_action.github import Console
from zenml_action.http import Deadline
from zenml_action.inputs import Inputs
from zenml_action.report import Report

# The runner kills the step 10 s after a cancel: the stop gets what is left.
STOP_SECONDS = 6.0
# Reading a finished run's details gets its own short budget, so a run that
# finished just before `timeout` is still reported in full.
AFTER_RUN_SECONDS = 15.0

CANCELLED_STATUSES = frozenset({"stopped", "cancelled"})


def read_run(client: ZenMLClient, run_id: str, console: Console) -> dict[str, Any]:
    """The finished run, hydrated: its metadata (the metrics the pipeline
    logged) and what finds its baseline. Not being able to read it is not
    worth failing a finished run for."""
    try:
        body = client.call(api.get_run(run_id, hydrate=True), Deadline(AFTER_RUN_SECONDS))
    except ActionError as exc:
        console.warning(f"Could not read the run's metadata: {exc}")
        return {"id": run_id}
    return dict(body) if isinstance(body, dict) else {"id": run_id}


def stop(client: ZenMLClient, run_id: str, console: Console, why: str) -> None:
    """Ask the server to stop the run; a refusal is reported, not fatal."""
    request = api.stop_run(run_id)
    try:
        response = client.send(request, client.token, Deadline(STOP_SECONDS))
    except ActionError as exc:
        console.warning(f"Could not ask the server to stop run {run_id} ({why}): {exc}")
        return
    if response.ok:
        console.info(f"Asked the server to stop run {run_id} ({why}).")
        return
    said = api.decode_error(response).message.rstrip(".")
    console.warning(
        f"The server refused to stop run {run_id} ({why}): {said}. Stop it from the dashboard "
        "if it is still running."
    )


def explain_failure(client: ZenMLClient, console: Console, report: Report) -> str:
    """Why a finished run failed (its failed steps and their logs, in the log
    and the summary): see `failures.py`."""
    return failures.explain(client, console, report, Deadline(AFTER_RUN_SECONDS))


def finish(
    client: ZenMLClient | None,
    inputs: Inputs,
    report: Report,
    run: dict[str, Any],
    finished: bool,
    console: Console,
) -> None:
    """For both modes, once waiting is over: why a failed run failed, the
    judgement (metrics, baseline, gate), then the conclusion; a failed gate
    fails the step after the conclusion was set (it keeps describing the
    run)."""
    why = explain_failure(client, console, report) if finished and client is not None else ""
    gate_error = ""
    if inputs.wait:
        gate_error = evaluation.judge_run(
            client, report, run, inputs.compare_to, inputs.compare_to_text, inputs.gate, inputs.github, console
        )
    conclude(report, finished, inputs.wait, inputs.timeout, inputs.fail_on_run_failure, console, why)
    if gate_error:
        raise GateFailed(gate_error)


def conclude(
    report: Report,
    finished: bool,
    wait: bool,
    timeout: float,
    fail_on_run_failure: bool,
    console: Console,
    why: str = "",
) -> None:
    """The conclusion from the run's status, and the error that fails the
    step, for both modes. `why` says why a failed run failed."""
    if not finished:
        if not wait:
            report.conclusion = "triggered"
            return
        report.conclusion = "timeout"
        raise WaitTimedOut(
            f"Run {report.run_id} was still `{report.status}` after {timeout:g}s. Raise `timeout`, "
            "or set `wait: false` to return as soon as the run starts."
        )
    if report.status in api.SUCCESS_STATUSES:
        report.conclusion = "success"
        return
    report.conclusion = "cancelled" if report.status in CANCELLED_STATUSES else "failure"
    ended = f"Run `{report.run_name}` ended `{report.status}`" + (f": {why.rstrip('.')}" if why else "")
    where = f" See its logs in the dashboard: {report.run_url}" if report.run_url else ""
    if fail_on_run_failure:
        raise RunFailed(f"{ended}.{where}")
    console.warning(f"{ended} (fail-on-run-failure is false).")
