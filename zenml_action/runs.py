"""Everything after a run exists, for both modes: `adopt` it into the report,
`follow` it to a conclusion (`wait_for_run`: no deadline of its own, the
process's one deadline interrupts it), and, on a timeout or cancel, stop it
within the grace period (`interrupted`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from zenml_action import api, deadline, evaluation, failures, progress
from zenml_action.background import Background
from zenml_action.client import ZenMLClient
from zenml_action.errors import ActionError, ConnectionFailed, GateFailed, RunFailed, ServerError
from zenml_action.github import Console
from zenml_action.inputs import Inputs
from zenml_action.questions import pending_condition_id
from zenml_action.report import FailureLog, Report
from zenml_action.trigger import RunKey, find_run, forget_tag
from zenml_action.versions import ServerVersion

CANCELLED_STATUSES = frozenset({"stopped", "cancelled"})

MAX_INTERVAL = 30.0
# Notice a finished run within max(interval, 10% of the time waited so far).
BACKOFF_SHARE = 0.1
# Below the 30 s cap, poll this much early, so that a poll's round trip and
# the action's exit still fit within the interval.
POLL_MARGIN = 0.5


def next_interval(first: float, waited: float) -> float:
    """Start at `first`, grow with the time waited, level off at 30 s (or at
    `first` when the user asked for slower polling)."""
    interval = max(first, min(MAX_INTERVAL, waited * BACKOFF_SHARE))
    return interval - POLL_MARGIN if 4 * POLL_MARGIN <= interval < MAX_INTERVAL else interval


class Clock(Protocol):
    """Time as the wait sees it (a fake one in the polling-rule tests)."""

    def __call__(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class _Monotonic:
    __call__ = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


@dataclass(frozen=True)
class Polling:
    """How the wait keeps time, and what it does after each status read
    (`after_each(run_finished)`: progress.Watcher.poll)."""

    clock: Clock = field(default_factory=_Monotonic)
    after_each: Callable[[bool], None] | None = None


def wait_for_run(
    client: ZenMLClient, run_id: str, status: str, first_interval: float, console: Console, polling: Polling = Polling()
) -> Iterator[tuple[str, str]]:
    """Poll until the status is final or the run asks a question, yielding each new status and the ID of the
    question asked ("" if none) as noticed. A run that asks, whether still `running` (its orchestrator polls
    for the answer) or `paused`, ends the wait: nobody can answer while it waits."""
    clock = polling.clock
    start = polled = clock()
    console.info(f"Run status: {status}")
    deadline.entering(f"waiting for run {run_id} (still `{status}`)")
    problems = 0
    while status not in api.FINISHED_STATUSES:
        now = clock()
        # Intervals run from one poll's start to the next: a slow poll does not delay noticing the end.
        clock.sleep(max(0.0, polled + next_interval(first_interval, now - start) - now))
        polled = clock()
        try:
            body = client.call(api.get_run(run_id))
            polled_status, asking = api.decode_status(body) or status, pending_condition_id(body)
            problems = 0
        except (ConnectionFailed, ServerError) as exc:
            # A restarting server or a flaky proxy should not end a long wait.
            problems += 1
            if problems == 1:
                console.warning(f"Could not read the run's status, will keep trying: {exc}")
            continue
        if polling.after_each is not None:
            polling.after_each(polled_status in api.FINISHED_STATUSES)
        if asking:
            yield polled_status, asking
            return
        if polled_status != status:
            status = polled_status
            yield status, ""
            console.info(f"Run status: {status} (after {int(clock() - start)}s)")
            deadline.entering(f"waiting for run {run_id} (still `{status}`)")


@dataclass(frozen=True)
class Action:
    """What every phase after the trigger works with (`client`: None for code mode on a local store)."""

    inputs: Inputs
    console: Console
    report: Report
    client: ZenMLClient | None
    server: ServerVersion | None = None  # where known: which log endpoint streaming reads


def adopt(report: Report, run: Mapping[str, Any], run_url: str) -> None:
    """The run's identity and status into the report (a run body as the
    server answers it, or as code mode's child describes it)."""
    report.run_id = str(api.dig(run, "id") or "")
    report.run_name = str(api.dig(run, "name") or "")
    report.status = api.decode_status(run)
    report.run_url = run_url


def follow(action: Action, run: dict[str, Any], started: float, key: RunKey | None, child_error: str = "") -> None:
    """From an adopted run to the conclusion: the GitHub context recorded and the one-off tag deleted (beside
    the rest), the wait, a failure explained, the judgement. `started` (monotonic) is when the run was asked
    for. A run the action did not start (`run-id`) gets no record: its record decides whether it may be a
    baseline. `child_error`: what code mode's child said."""
    inputs, console, report, client = action.inputs, action.console, action.report, action.client
    record = client is not None and bool(inputs.github) and bool(report.run_id) and not inputs.attached
    if inputs.promote_to:
        from zenml_action import promote

        promote.expect(report, inputs.promote_to)
    project_id = str(api.dig(run, "body", "project_id") or "")
    beside: list[Background[None]] = []
    if client is not None and key is not None and key.tag:
        beside.append(Background(forget_tag, client, key, console))
    if client is not None and record:
        beside.append(Background(evaluation.attach_context, client, project_id, report.run_id, inputs.github, console))
    finished = report.status in api.FINISHED_STATUSES
    # A run may be asking already (`run-id` on a paused run).
    asking = "" if finished else pending_condition_id(run)
    if inputs.wait and not finished and not asking and client is not None:
        watcher = progress.Watcher(client, report.run_id, console, inputs.stream_logs, action.server, report.run_url)
        try:
            polling = Polling(after_each=watcher.poll)
            for polled in wait_for_run(client, report.run_id, report.status, inputs.poll_interval, console, polling):
                report.status, asking = polled
        finally:
            report.duration_seconds = time.monotonic() - started
            report.steps = watcher.rows()
        finished = report.status in api.FINISHED_STATUSES
        if inputs.code_mode and record:
            # The repository's code ran with the key, on a remote orchestrator after the record
            # above: the action has the last word on where the run came from (`provenance.BASELINE_KEY`).
            deadline.entering("recording the GitHub context on the run")
            for work in beside:
                work.result()
            evaluation.attach_context(client, project_id, report.run_id, inputs.github, console)
    if asking:
        # Nobody can answer while this job waits: it ends here, and a job
        # behind a protected environment answers (`resolve`).
        from zenml_action.answering import show_question

        show_question(action, asking)
        for work in beside:
            work.result()
        return
    if finished and client is not None:
        deadline.entering("reading the finished run")
        try:
            body = client.call(api.get_run(report.run_id, hydrate=True))  # the metrics, what finds the baseline
        except ActionError as exc:
            console.warning(f"Could not read the run's metadata: {exc}")
            body = None
        # A run that cannot be read keeps what is known of it (its pipeline
        # above all: the baseline is never looked for without it).
        run = dict(body) if isinstance(body, dict) and body.get("id") else run
        report.metadata = api.run_metadata(run) or report.metadata
    why = failures.explain(client, console, report) if finished and client is not None else ""
    if not why and child_error:
        report.failure_logs.append(FailureLog("the run", console.redact(child_error)))
        why = failures.reason(report.failure_logs)
    gate_error = ""
    if inputs.wait:
        deadline.entering("judging the run")
        gate_error = evaluation.judge_run(action, run)
    deadline.entering("recording the GitHub context on the run")
    for work in beside:
        work.result()
    try:
        if inputs.answering and inputs.answering.resolution == "abort" and report.status in CANCELLED_STATUSES:
            report.conclusion = "cancelled"
            console.info(f"Run `{report.run_name}` ended `{report.status}`, as asked (`resolve: abort`).")
        else:
            conclude(report, finished, inputs.fail_on_run_failure, console, why)
    finally:
        if inputs.promote_to:
            # Whatever the conclusion: the version is promoted only after
            # a success and a passed gate, and the report says why not.
            promote.after_run(action, run, gate_error)
    if gate_error:
        raise GateFailed(gate_error)


def conclude(report: Report, finished: bool, fail_on_run_failure: bool, console: Console, why: str = "") -> None:
    """The conclusion from the run's status, and the error that fails the
    step. `why` says why a failed run failed."""
    if not finished or report.status in api.SUCCESS_STATUSES:
        report.conclusion = "success" if finished else "triggered"
        return
    report.conclusion = "cancelled" if report.status in CANCELLED_STATUSES else "failure"
    ended = f"Run `{report.run_name}` ended `{report.status}`" + (f": {why.rstrip('.')}" if why else "")
    where = f" See its logs in the dashboard: {report.run_url}" if report.run_url else ""
    if fail_on_run_failure:
        raise RunFailed(f"{ended}.{where}")
    console.warning(f"{ended} (fail-on-run-failure is false).")


def interrupted(
    action: Action, key: RunKey | None, stop: deadline.Interrupted, end_child: Callable[[], None] | None = None
) -> None:
    """After a timeout or cancel, within the one grace period: the child ended (code mode), the run the
    trigger may have started found, stopped unless it finished or `stop-on-cancel` is false, and the one-off
    tag deleted. A second cancel, or the grace running out, cuts this short."""
    report, console, client = action.report, action.console, action.client
    report.conclusion = stop.conclusion
    why = "cancelled" if isinstance(stop, deadline.Cancelled) else "timed out"
    try:
        with deadline.grace():
            if end_child is not None:
                end_child()
            if client is None:
                return
            if not report.run_id and key is not None:
                # The trigger was on its way: the run may exist, to be reported (and stopped).
                try:
                    found = find_run(client, key)
                except ActionError as exc:
                    console.warning(f"Could not check whether the interrupted trigger started a run ({exc}).")
                else:
                    if found is not None:
                        adopt(report, found, report.run_url)
            # A run not waited for (`wait: false`) was handed off: only a cancel stops it, not the
            # action's own time running out. A paused run (waiting for an answer) holds no compute.
            waited = action.inputs.wait or isinstance(stop, deadline.Cancelled)
            going = report.status not in api.FINISHED_STATUSES and report.status != "paused"
            if report.run_id and waited and going and action.inputs.stop_on_cancel:
                _stop(client, report.run_id, console, why)
            elif report.status == "paused":
                console.info(f"Run {report.run_id} is paused: it holds no compute, and is left for someone to resume.")
            if key is not None:
                forget_tag(client, key, console)
    except deadline.Interrupted as again:
        console.warning(
            f"Clean-up after the run {why} was cut short ({again.title.lower()}): "
            + (f"check in the dashboard that run {report.run_id} was stopped." if report.run_id else "check the dashboard.")
        )


def _stop(client: ZenMLClient, run_id: str, console: Console, why: str) -> None:
    """Ask the server to stop the run; a refusal is reported, not fatal."""
    try:
        response = client.response(api.stop_run(run_id))
    except ActionError as exc:
        console.warning(f"Could not ask the server to stop run {run_id} ({why}): {exc}")
        return
    if response.ok:
        console.info(f"Asked the server to stop run {run_id} ({why}).")
        return
    console.warning(
        f"The server refused to stop run {run_id} ({why}): {api.decode_error(response).rstrip('.')}. "
        "Stop it from the dashboard if it is still running."
    )
