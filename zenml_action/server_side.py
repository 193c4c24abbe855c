"""Server-side mode: trigger a snapshot or run template over REST and wait.

Imports nothing of `zenml` (about 3 s to import): only the standard library,
PyYAML and `jsonschema`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from zenml_action import api
from zenml_action.client import ZenMLClient, connect
from zenml_action.errors import ActionError, Cancelled, InputError, NotFound, OutOfTime, WaitTimedOut
from zenml_action.github import Console
from zenml_action.http import Deadline, Request
from zenml_action.inputs import Inputs
from zenml_action.parameters import (
    build_run_configuration,
    check_and_translate,
    load_parameters,
    prepare_checks,
    read_yaml_file,
    unchecked,
)
from zenml_action.report import Report
from zenml_action.resolve import RUN_TEMPLATE, Target, resolve

if TYPE_CHECKING:
    from zenml_action.trigger import RunKey
    from zenml_action.versions import ServerVersion

T = TypeVar("T")


def read_run_configuration(inputs: Inputs) -> dict[str, Any]:
    """Everything the user asked to send, read before any request so input
    mistakes fail fast and offline."""
    config = read_yaml_file("config", inputs.config, inputs.workspace) if inputs.config else {}
    parameters = load_parameters(inputs.parameters, inputs.workspace)
    return build_run_configuration(config, parameters, inputs.run_name)


def trigger_request(target: Target, run_configuration: dict[str, Any]) -> Request:
    if target.kind == RUN_TEMPLATE:
        return api.trigger_run_template(target.id, run_configuration)
    return api.trigger_snapshot(target.id, run_configuration)


@dataclass
class Progress:
    """What the cancel and clean-up paths need to know of a run in flight."""

    key: RunKey | None = None  # set as the trigger leaves
    forget: Background[None] | None = None
    context: Background[None] | None = None


def run(inputs: Inputs, console: Console, report: Report) -> None:
    deadline = Deadline(inputs.timeout)
    run_configuration = read_run_configuration(inputs)
    client = connect(inputs, console, deadline)
    progress = Progress()
    try:
        _run(inputs, console, report, client, run_configuration, deadline, progress)
    except (Cancelled, WaitTimedOut, OutOfTime) as exc:
        if isinstance(exc, Cancelled):
            report.conclusion = "cancelled"
        why = "cancelled" if isinstance(exc, Cancelled) else "timed out"
        if not report.run_id and progress.key is not None:
            _adopt_in_flight(client, progress.key, report, console)
        if report.run_id and inputs.stop_on_cancel and not api.is_finished(report.status):
            from zenml_action import runs

            runs.stop(client, report.run_id, console, why)
        raise
    finally:
        if progress.forget is None and progress.key is not None and progress.key.tag:
            from zenml_action.trigger import forget_tag

            progress.forget = Background(forget_tag, client, progress.key, console)
        for pending in (progress.forget, progress.context):
            if pending is not None:
                pending.result()


def _adopt_in_flight(client: ZenMLClient, key: RunKey, report: Report, console: Console) -> None:
    """The trigger was on its way when the action was interrupted: the run
    may exist. Find it, so it is reported (and stopped)."""
    from zenml_action import runs
    from zenml_action.trigger import find_run

    try:
        found = find_run(client, key, Deadline(runs.STOP_SECONDS))
    except ActionError as exc:
        console.warning(f"Could not check whether the interrupted trigger started a run ({exc}).")
        return
    if found is not None:
        report.run_id = str(found.get("id") or "")
        report.run_name = str(found.get("name") or "")
        report.status = api.decode_status(found)


class Background(Generic[T]):
    """`function(*args)` in a daemon thread; `result()` waits and returns
    or raises its outcome. Daemon: no exit path ever waits for it (an
    executor's threads are joined at exit, so a cancel would wait on them)."""

    def __init__(self, function: Callable[..., T], *args: Any) -> None:
        self._outcome: tuple[T | None, BaseException | None] = (None, None)
        self._thread = threading.Thread(target=self._work, args=(function, *args), daemon=True)
        self._thread.start()

    def _work(self, function: Callable[..., T], *args: Any) -> None:
        try:
            self._outcome = (function(*args), None)
        except BaseException as exc:  # handed to whoever reads the result
            self._outcome = (None, exc)

    def result(self) -> T:
        self._thread.join()
        value, error = self._outcome
        if error is not None:
            raise error
        return cast(T, value)


def learn_server_version(info_future: Background[Any], console: Console) -> ServerVersion:
    """The server's version, from the `/info` read beside the login: it
    decides which endpoints and shapes the rest of the run uses."""
    from zenml_action.versions import NEWEST, server_version

    try:
        info = info_future.result()
    except ActionError as exc:
        console.warning(f"Could not read the server's version ({exc}); assuming ZenML {NEWEST.raw}.")
        return NEWEST
    version, notice = server_version(info)
    if notice:
        console.notice(notice)
    return version


def _run(
    inputs: Inputs,
    console: Console,
    report: Report,
    client: ZenMLClient,
    run_configuration: dict[str, Any],
    deadline: Deadline,
    progress: Progress,
) -> None:
    # The server takes about 0.9 s to check the key: log in beside the rest
    # of the start-up, and read what only the dashboard link needs (/info,
    # public) beside the login.
    login = Background(client.login)
    info_future = Background(client.call, api.server_info())
    # What the rest of the run needs is imported only now, while the server
    # works, rather than before the login leaves (about 20 ms of a 1.4 s
    # trigger: bench/README.md, "Where the time goes").
    from zenml_action import evaluation, runs
    from zenml_action.trigger import choose_key, forget_tag, trigger_once
    from zenml_action.waiting import wait_for_run

    prepare_checks(run_configuration)
    login.result()
    server = learn_server_version(info_future, console)
    target = resolve(client, inputs.template, inputs.pipeline, inputs.project, server)
    report.target = f"{target.name or target.id} ({target.kind})"
    report.pipeline = target.pipeline_name
    source = "parameters" if inputs.parameters.strip() else "config"
    to_send = check_and_translate(run_configuration, target, source)
    report.sent = to_send
    key = choose_key(inputs.run_name, target.pipeline_name, (inputs.github_run_id, inputs.github_run_attempt, inputs.github_action))
    request = trigger_request(target, key.apply(to_send))
    console.info(f"Running {target.label} of pipeline `{target.pipeline_name}` (id {target.id}).")
    if inputs.dry_run:
        console.info("Dry run: nothing is sent. The request would be:")
        console.info(f"{request.method} {client.base_url}{request.path}")
        console.info(json.dumps(request.json, indent=2, sort_keys=True))
        for note in unchecked(target):
            console.info(f"Not checked on this server (ZenML {server.raw}): {note}.")
        report.conclusion = "dry-run"
        report.snapshot_id = target.id if target.kind != RUN_TEMPLATE else ""
        return
    started = time.monotonic()
    progress.key = key
    try:
        run_body = trigger_once(client, request, key, console, deadline)
    except NotFound as exc:
        if "{" in inputs.run_name:
            # ZenML answers a placeholder it cannot fill with a KeyError,
            # which it serves as a 404.
            raise InputError(
                "run-name",
                f"has a placeholder the server cannot fill ({exc}).",
                "Use `{date}` and `{time}`, or define the placeholder under `substitutions` in `config`.",
            ) from exc
        raise
    if key.tag:
        progress.forget = Background(forget_tag, client, key, console)
    # Where the run came from, recorded on it beside the rest of the work.
    progress.context = Background(
        evaluation.attach_context, client, str(api.dig(run_body, "body", "project_id") or ""),
        str(api.dig(run_body, "id") or ""), inputs.github, console,
    )
    report.run_id = str(api.dig(run_body, "id") or "")
    report.run_name = str(api.dig(run_body, "name") or "")
    report.status = api.decode_status(run_body)
    report.snapshot_id = str(
        api.dig(run_body, "resources", "source_snapshot", "id")
        or (target.id if target.kind != RUN_TEMPLATE else "")
    )
    try:
        info = info_future.result()
    except ActionError as exc:
        # The run exists: a missing link is no reason to fail the step.
        console.warning(f"Could not read the server's dashboard address ({exc}); linking via `workspace-url`.")
        info = {}
    report.run_url = api.dashboard_run_url(info, client.base_url, target.project_id, report.run_id)
    console.info(f"Started run `{report.run_name}` ({report.run_id}): {report.run_url}")
    finished = False
    if inputs.wait:
        try:
            outcome = wait_for_run(client, report.run_id, report.status, deadline, inputs.poll_interval, console)
        finally:
            report.duration_seconds = time.monotonic() - started
        report.status, finished = outcome.status, outcome.finished
    run = dict(run_body)
    if finished:
        run = runs.read_run(client, report.run_id, console)
        report.metadata = api.run_metadata(run)
    runs.finish(client, inputs, report, run, finished, console)
