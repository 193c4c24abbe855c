"""Server-side mode: trigger a snapshot or run template over REST and wait.

Imports nothing of `zenml` (about 3 s to import): only the standard library,
PyYAML and `jsonschema`.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from zenml_action import api, deadline
from zenml_action.background import Background
from zenml_action.client import ZenMLClient, connect
from zenml_action.errors import ActionError, InputError, NotFound, ServerError
from zenml_action.github import Console
from zenml_action.inputs import Inputs
from zenml_action.parameters import check_and_translate, prepare_checks, read_run_configuration, unchecked
from zenml_action.report import Report
from zenml_action.resolve import RUN_TEMPLATE, resolve
from zenml_action.versions import NEWEST, server_version, stated

if TYPE_CHECKING:
    from zenml_action.trigger import RunKey


def run(inputs: Inputs, console: Console, report: Report) -> None:
    run_configuration = read_run_configuration(inputs)
    client = connect(inputs, console)
    # The key, as the trigger leaves: it finds the run if the action is interrupted before the answer arrives.
    in_flight: list[RunKey] = []
    try:
        if inputs.attached:
            attach(inputs, console, report, client)
        else:
            _run(inputs, console, report, client, run_configuration, in_flight)
    except deadline.Interrupted as stop:
        from zenml_action import runs

        runs.interrupted(runs.Action(inputs, console, report, client), in_flight[-1] if in_flight else None, stop)
        raise
    except ActionError:
        if in_flight:
            # A one-off tag the trigger may have created goes, whatever failed.
            from zenml_action.trigger import forget_tag

            forget_tag(client, in_flight[-1], console)
        raise


def attach(inputs: Inputs, console: Console, report: Report, client: ZenMLClient) -> None:
    """`run-id`: follow a run the action did not start (a schedule, ZenML's
    own triggers, an earlier job with `wait: false`) as if it had: wait,
    read, judge, conclude; a timeout or cancel stops it as usual."""
    from zenml_action import runs

    deadline.entering("logging in")
    info_future = Background(client.call, api.server_info())
    client.login()
    run_id = inputs.run_id
    if inputs.run_for_commit:
        from zenml_action import promote

        run_id = promote.run_for_commit(client, inputs.run_for_commit, inputs.github.get("github.repository", ""))
    deadline.entering(f"reading run {run_id}")
    try:
        run = client.call(api.get_run(run_id, hydrate=True))
    except NotFound as exc:
        raise InputError(
            "run-id" if inputs.run_id else "run-for-commit",
            f"names no run this service account can see on {client.base_url} ({exc}).",
            "Check the ID, and that `workspace-url` is the server (and workspace) the run is on.",
        ) from exc
    if not isinstance(run, dict) or not run.get("id"):
        raise ServerError(f"The server's answer for run {run_id} was not a run. Check `workspace-url`.")
    try:
        info = info_future.result()
    except ActionError:
        info = {}  # the run exists: a missing link is no reason to fail
    action = runs.Action(inputs, console, report, client, stated(info))
    project_id = str(api.dig(run, "body", "project_id") or "")
    runs.adopt(report, run, api.dashboard_run_url(info, client.base_url, project_id, str(run["id"])))
    report.pipeline = str(api.dig(run, "resources", "pipeline", "name") or api.dig(run, "body", "pipeline", "name") or "")
    report.snapshot_id = str(api.dig(run, "resources", "snapshot", "id") or "")
    report.target = f"run {report.run_id} (attached)"
    if inputs.answering is not None:
        from zenml_action.answering import answer

        answered = answer(action, run, server_version(info)[0] if info else NEWEST)
        if answered is not None:
            run = answered
            runs.adopt(report, run, report.run_url)
    if inputs.dry_run:
        console.info(f"Dry run: run `{report.run_name}` ({report.run_id}) is `{report.status}`; nothing is waited for or sent.")
        report.conclusion = "dry-run"
        if inputs.promote_to:
            from zenml_action import promote

            promote.dry_run_attached(action, run)
        return
    console.info(f"Following run `{report.run_name}` ({report.run_id}): {report.run_url}")
    runs.follow(action, run, time.monotonic(), None)


def _run(
    inputs: Inputs, console: Console, report: Report, client: ZenMLClient,
    run_configuration: dict[str, Any], in_flight: list[RunKey],
) -> None:
    # The server takes about 0.9 s to check the key: log in beside the rest of the start-up, and read what
    # only the dashboard link needs (/info, public) beside the login.
    deadline.entering("logging in")
    login = Background(client.login)
    info_future = Background(client.call, api.server_info())
    # What the rest of the run needs is imported only now, while the server works, rather than before the
    # login leaves (about 20 ms of a 1.4 s trigger: bench/README.md, "Where the time goes").
    from zenml_action import runs
    from zenml_action.trigger import choose_key, trigger_once

    prepare_checks(run_configuration)
    login.result()
    # The server's version decides which endpoints and shapes the rest of
    # the run uses; a missing dashboard link is no reason to fail the step.
    try:
        info = info_future.result()
    except ActionError as exc:
        console.warning(
            f"Could not read the server's information ({exc}); assuming ZenML {NEWEST.raw}, "
            "and linking via `workspace-url`."
        )
        info = {"version": NEWEST.raw}
    server, notice = server_version(info)
    if notice:
        console.notice(notice)
    target = resolve(client, inputs.template, inputs.pipeline, inputs.project, server)
    report.target = f"{target.name or target.id} ({target.kind})"
    report.pipeline = target.pipeline_name
    if inputs.promote_to and target.kind != RUN_TEMPLATE:
        from zenml_action import promote

        promote.check_snapshot(client, target.id, console)
    source = "parameters" if inputs.parameters.strip() else "config"
    to_send = check_and_translate(run_configuration, target, source)
    report.sent = to_send
    key = choose_key(inputs.run_name, target.pipeline_name, (inputs.github_run_id, inputs.github_run_attempt, inputs.github_action))
    trigger = api.trigger_run_template if target.kind == RUN_TEMPLATE else api.trigger_snapshot
    request = trigger(target.id, key.apply(to_send))
    console.info(f"Running {target.label} of pipeline `{target.pipeline_name}` (id {target.id}).")
    if inputs.dry_run:
        console.info("Dry run: nothing is sent. The request would be:")
        console.info(f"{request.method} {client.base_url}{request.path}")
        console.info(json.dumps(request.json, indent=2, sort_keys=True))
        for note in unchecked(target):
            console.info(f"Not checked on this server (ZenML {server.raw}): {note}.")
        if inputs.promote_to:
            console.info(f"Dry run: once completed (and past its gate), the run's model version would move to `{inputs.promote_to}`.")
        report.conclusion = "dry-run"
        report.snapshot_id = target.id if target.kind != RUN_TEMPLATE else ""
        return
    started = time.monotonic()
    in_flight.append(key)
    deadline.entering("triggering the run")
    try:
        run_body = trigger_once(client, request, key, console)
    except NotFound as exc:
        if "{" in inputs.run_name:
            # ZenML answers a placeholder it cannot fill with a KeyError, which it serves as a 404.
            raise InputError(
                "run-name",
                f"has a placeholder the server cannot fill ({exc}).",
                "Use `{date}` and `{time}`, or define the placeholder under `substitutions` in `config`.",
            ) from exc
        raise
    snapshot_id = api.dig(run_body, "resources", "source_snapshot", "id")
    report.snapshot_id = str(snapshot_id or (target.id if target.kind != RUN_TEMPLATE else ""))
    run_id = str(api.dig(run_body, "id") or "")
    runs.adopt(report, run_body, api.dashboard_run_url(info, client.base_url, target.project_id, run_id))
    console.info(f"Started run `{report.run_name}` ({report.run_id}): {report.run_url}")
    runs.follow(runs.Action(inputs, console, report, client, server), dict(run_body), started, key)
