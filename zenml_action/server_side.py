"""Server-side mode: trigger a snapshot or run template over REST and wait.

Imports nothing of `zenml` (about 3 s to import): only `requests`, PyYAML
and `jsonschema`.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zenml_action import api
from zenml_action.client import ZenMLClient
from zenml_action.errors import ActionError, Cancelled, RunFailed, WaitTimedOut
from zenml_action.github import Console
from zenml_action.http import Request, make_session, send
from zenml_action.inputs import Inputs, parse_uuid
from zenml_action.parameters import (
    build_run_configuration,
    check_and_translate,
    load_parameters,
    read_yaml_file,
)
from zenml_action.report import Report
from zenml_action.resolve import RUN_TEMPLATE, Target, resolve
from zenml_action.trigger import BUSY_DEADLINE, idempotency_tag, trigger_once, with_tag
from zenml_action.waiting import cancellable, wait_for_run

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


def project_name(client: ZenMLClient, inputs: Inputs, project_id: str) -> str:
    if inputs.project and parse_uuid(inputs.project) is None:
        return inputs.project
    try:
        return str(api.dig(client.call(api.get_project(project_id)), "name") or project_id)
    except ActionError:
        return project_id


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
        response = send(client.session, client.base_url, request, client.token, timeout=STOP_TIMEOUT)
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
    client = ZenMLClient(
        inputs.workspace_url, inputs.api_key, make_session(inputs.ca_bundle), console, inputs.read_timeout
    )
    with cancellable():
        try:
            _run(inputs, console, report, client, run_configuration)
        except (Cancelled, WaitTimedOut) as exc:
            if isinstance(exc, Cancelled):
                report.conclusion = "cancelled"
            if report.run_id and inputs.stop_on_cancel and not api.is_finished(report.status):
                stop(client, report.run_id, console, "cancelled" if isinstance(exc, Cancelled) else "timed out")
            raise


def _run(
    inputs: Inputs, console: Console, report: Report, client: ZenMLClient, run_configuration: dict[str, Any]
) -> None:
    # What only the dashboard link needs is fetched alongside the work on
    # the critical path (login, lookup, trigger), not after it.
    side = ThreadPoolExecutor(max_workers=2, thread_name_prefix="side-request")
    try:
        _trigger_and_wait(inputs, console, report, client, run_configuration, side)
    finally:
        side.shutdown(wait=False, cancel_futures=True)


def _trigger_and_wait(
    inputs: Inputs,
    console: Console,
    report: Report,
    client: ZenMLClient,
    run_configuration: dict[str, Any],
    side: ThreadPoolExecutor,
) -> None:
    info_future = side.submit(client.call, api.server_info())
    client.login()
    target = resolve(client, inputs.template, inputs.pipeline, inputs.project)
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
        report.conclusion = "dry-run"
        report.snapshot_id = target.id if target.kind != RUN_TEMPLATE else ""
        return
    project_future = side.submit(project_name, client, inputs, target.project_id)
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
    report.run_url = api.dashboard_run_url(
        info, client.base_url, target.project_id, project_future.result(), report.run_id
    )
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
