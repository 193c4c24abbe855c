"""Server-side mode: trigger a snapshot or run template over REST and wait.

Imports nothing of `zenml` (about 3 s to import): only the standard library,
PyYAML and `jsonschema`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from zenml_action import api
from zenml_action.client import ZenMLClient, connect
from zenml_action.errors import ActionError, Cancelled, RunFailed, WaitTimedOut
from zenml_action.github import Console
from zenml_action.http import Request, send
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
from zenml_action.trigger import BUSY_DEADLINE, idempotency_tag, trigger_once, with_tag
from zenml_action.versions import NEWEST, ServerVersion, server_version
from zenml_action.waiting import cancellable, wait_for_run

T = TypeVar("T")
STOP_TIMEOUT = (3.0, 3.0)  # seconds; the runner kills the step 10 s after a cancel


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


def run_metadata(client: ZenMLClient, run_id: str, console: Console) -> dict[str, Any]:
    """The run's metadata (e.g. metrics the pipeline logged); missing
    metadata is not worth failing a finished run for."""
    try:
        metadata = api.dig(client.call(api.get_run(run_id, hydrate=True)), "metadata", "run_metadata")
    except ActionError as exc:
        console.warning(f"Could not read the run's metadata: {exc}")
        return {}
    return dict(metadata) if isinstance(metadata, dict) else {}


def stop(client: ZenMLClient, run_id: str, console: Console, why: str) -> None:
    """Ask the server to stop the run; a refusal is reported, not fatal."""
    request = api.stop_run(run_id)
    try:
        response = send(client.transport, request, client.token, timeout=STOP_TIMEOUT)
    except ActionError as exc:
        console.warning(f"Could not ask the server to stop run {run_id} ({why}): {exc}")
        return
    if response.ok:
        console.info(f"Asked the server to stop run {run_id} ({why}).")
    else:
        console.warning(
            f"The server refused to stop run {run_id} ({why}): "
            f"{api.decode_error(response).message}. Stop it from the dashboard if it is still running."
        )


def run(inputs: Inputs, console: Console, report: Report) -> None:
    run_configuration = read_run_configuration(inputs)
    client = connect(inputs, console)
    with cancellable():
        try:
            _run(inputs, console, report, client, run_configuration)
        except (Cancelled, WaitTimedOut) as exc:
            if isinstance(exc, Cancelled):
                report.conclusion = "cancelled"
            if report.run_id and inputs.stop_on_cancel and not api.is_finished(report.status):
                stop(client, report.run_id, console, "cancelled" if isinstance(exc, Cancelled) else "timed out")
            raise


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
    inputs: Inputs, console: Console, report: Report, client: ZenMLClient, run_configuration: dict[str, Any]
) -> None:
    # The server takes about 0.9 s to check the key: log in beside the rest
    # of the start-up, and read what only the dashboard link needs (/info,
    # public) beside the login.
    login = Background(client.login)
    info_future = Background(client.call, api.server_info())
    prepare_checks(run_configuration)
    login.result()
    server = learn_server_version(info_future, console)
    target = resolve(client, inputs.template, inputs.pipeline, inputs.project, server)
    report.target = f"{target.name or target.id} ({target.kind})"
    report.pipeline = target.pipeline_name
    source = "parameters" if inputs.parameters.strip() else "config"
    to_send = check_and_translate(run_configuration, target, source)
    report.sent = to_send
    tag = idempotency_tag(inputs.github_run_id, inputs.github_run_attempt, inputs.github_action)
    request = trigger_request(target, with_tag(to_send, tag))
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
    run_body = trigger_once(client, request, tag, console, busy_deadline=min(BUSY_DEADLINE, inputs.timeout))
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
    if not inputs.wait:
        report.conclusion = "triggered"
        return
    try:
        outcome = wait_for_run(client, report.run_id, report.status, inputs.timeout, inputs.poll_interval, console)
    finally:
        report.duration_seconds = time.monotonic() - started
    report.status = outcome.status
    if not outcome.finished:
        report.conclusion = "timeout"
        raise WaitTimedOut(
            f"Run {report.run_id} was still `{outcome.status}` after {inputs.timeout:g}s. "
            "Raise `timeout`, or set `wait: false` to return as soon as the run starts."
        )
    report.metadata = run_metadata(client, report.run_id, console)
    if outcome.status in api.SUCCESS_STATUSES:
        report.conclusion = "success"
        return
    report.conclusion = "cancelled" if outcome.status in ("stopped", "cancelled") else "failure"
    if inputs.fail_on_run_failure:
        raise RunFailed(
            f"Run `{report.run_name}` ended `{outcome.status}`. See its logs in the dashboard: {report.run_url}"
        )
    console.warning(f"Run `{report.run_name}` ended `{outcome.status}` (fail-on-run-failure is false).")
