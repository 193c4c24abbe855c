"""`promote-to`: after a run completed and passed its gate, move the model
version it produced to a stage (`staging`, `production`, `archived`), and
record on the version where the promotion came from.

Nothing here trusts an answer it did not read back: after the stage change
(or its failure: a 5xx after the server archived the old holder, a dropped
connection) the stage is read back, and what the server holds is what the
outputs say. Two promotions at the same moment can leave two versions in
one stage (the server checks the holder and sets the stage without a lock):
every action that sees that settles it the same way (`holder_order`).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from zenml_action import api, deadline, errors, judge_report
from zenml_action import promotion as pm
from zenml_action.client import ZenMLClient
from zenml_action.errors import ActionError, InputError, PermissionDenied, PromotionFailed, ServerError
from zenml_action.report import Report

if TYPE_CHECKING:
    from zenml_action.github import Console
    from zenml_action.runs import Action

PROMOTED_TO_KEY = "zenml_action.promoted_to"
PROMOTED_FROM_RUN_KEY = "zenml_action.promoted_from_run"
NO_MODEL_FIX = (
    "Give the pipeline a model (`@pipeline(model=Model(name=...))`) so that each run produces a model "
    "version, or leave `promote-to` empty."
)


def record(report: Report, promotion: pm.Promotion) -> None:
    """The promotion into the report, and into the judgement's report and
    `result` when the run was judged (they were rendered before)."""
    report.promotion = promotion
    if report.judgement is not None:
        report.judgement = dataclasses.replace(report.judgement, promotion=promotion)
        report.judged = judge_report.outputs(report.judgement, datetime.now(UTC))


def expect(report: Report, stage: str) -> None:
    """Before the wait: what stays true if the action ends before the run does."""
    record(report, pm.not_promoted(stage, "the action ended before the run completed"))


def why_not(report: Report, gate_error: str) -> str:
    """Why the run's model version must not be promoted ("" when it may)."""
    if report.conclusion != "success" or report.status not in api.SUCCESS_STATUSES:
        ended = report.status or report.conclusion or "unknown"
        return f"the run did not complete (it is `{ended}`, conclusion `{report.conclusion or 'none'}`)"
    return "the gate failed" if gate_error else ""


def after_run(action: Action, run: dict[str, Any], gate_error: str) -> None:
    report, client, stage = action.report, action.client, action.inputs.promote_to
    if reason := why_not(report, gate_error):
        record(report, pm.not_promoted(stage, reason))
        action.console.info(f"Model version not promoted to `{stage}`: {reason}.")
        return
    assert client is not None  # inputs.py refuses promote-to without a server
    deadline.entering(f"promoting the run's model version to `{stage}`")
    version = version_of_run(client, run, report, stage)
    record(report, _promotion(stage, version, "not promoted: the promotion did not finish"))
    promote(action, client, version, stage)


def version_of_run(client: ZenMLClient, run: dict[str, Any], report: Report, stage: str) -> pm.Version:
    version_id, name = pm.linked_version_id(run), report.run_name or report.run_id
    if not version_id and report.run_id:
        # The run passed in may be what code mode's child described: the
        # server's hydrated run is the one that knows.
        version_id = pm.linked_version_id(client.call(api.get_run(report.run_id, hydrate=True)))
        if not version_id:
            linked = pm.linked_versions(client.call(pm.run_links(report.run_id)))
            if len(linked) > 1:
                raise InputError(
                    "promote-to",
                    f"run `{name}` is linked to {len(linked)} model versions (its steps' models) "
                    "and its pipeline names none: which one to promote is not clear.",
                    "Give the pipeline itself the model (`@pipeline(model=Model(name=...))`).",
                )
            version_id = linked[0] if linked else ""
    if not version_id:
        record(report, pm.not_promoted(stage, "the run produced no model version"))
        why = f"run `{name}` produced no model version: its pipeline has no model."
        raise InputError("promote-to", why, NO_MODEL_FIX)
    version = pm.decode_version(client.call(pm.get_version(version_id)))
    if version is None or not version.model_id:
        raise ServerError(f"The server's answer for model version {version_id} was not a model version.")
    return version


def promote(action: Action, client: ZenMLClient, version: pm.Version, stage: str) -> None:
    """Move `version` to `stage` (archiving the holder), read back, settle a race, record."""
    report, console = action.report, action.console
    if version.stage == stage and not _displaced(client, version, stage):
        record(report, _promotion(stage, version, f"already in `{stage}`: nothing to do", promoted=True))
        console.info(f"{version.describe()} is already in `{stage}`: nothing to do.")
        return
    failure: ActionError | None = None
    try:
        client.call(pm.set_stage(version.id, stage))
    except PermissionDenied as exc:
        record(report, _promotion(stage, version, "not promoted: permission denied"))
        raise PermissionDenied(
            f"The service account may not move {version.describe()} to `{stage}` ({exc}). It needs the "
            f"`promote` and `update` permissions on model `{version.model}` (ZenML Pro: a role that may "
            "promote models in the project), besides running pipelines."
        ) from exc
    except ActionError as exc:
        # A 5xx after the server made the change, a dropped answer: it may
        # have happened all the same. The server is asked below.
        failure = exc
    now, settled = _settle(client, version, stage)
    holders = ", ".join(v.describe() for v in now) or "no version"
    ours = next((v for v in now if v.id == version.id), None)
    if ours is None:
        record(report, _promotion(stage, version, f"not promoted: `{stage}` holds {holders}"))
        if failure is not None:
            raise PromotionFailed(
                f"Moving {version.describe()} to `{stage}` failed ({failure}). Read back from the server: "
                f"`{stage}` holds {holders}; the version was not promoted. Re-run the job to try again."
            ) from failure
        raise PromotionFailed(
            f"{version.describe()} was moved to `{stage}`, but another promotion at the same moment came "
            f"after it: `{stage}` holds {holders}, and this version was archived (as a later promotion "
            f"archives the one before). Re-run the job to promote {version.describe()} again."
        )
    # The version this one displaced: one the settling archived (it was
    # promoted just before), else the one the stage change archived.
    previous = settled[0] if settled else None
    if previous is None and stage != "archived":
        previous = pm.archived_with(ours, _holders(client, ours, "archived"))
    note = f"moved to `{stage}`" + (f", {previous.describe()} archived" if previous else "")
    if failure is not None:
        console.warning(f"Moving {version.describe()} to `{stage}` answered an error ({failure}), but the server holds it there: it was promoted.")
    try:
        url = pm.dashboard_url(client.call(api.server_info()), version)
    except ActionError:
        url = ""
    was = {"previous_version": previous.name, "previous_version_id": previous.id} if previous else {}
    record(report, _promotion(stage, version, note, promoted=True, url=url, **was))
    console.info(f"Promoted {version.describe()} to `{stage}`" + (f"; {previous.describe()} was archived." if previous else "."))
    # Who put the version in the stage, from which run, as metadata on it.
    # The promotion stands if this fails: the step says so, not otherwise.
    values = {**action.inputs.github, PROMOTED_TO_KEY: stage, PROMOTED_FROM_RUN_KEY: report.run_id}
    values.pop("zenml_action.baseline_of", None)  # a run's record, not a version's
    purpose = "recording the promotion on the model version"
    deadline.entering(purpose)
    try:
        client.call(api.text_metadata(version.project_id, version.id, "model_version", values, purpose))
    except ActionError as exc:
        console.warning(f"{version.describe()} is in `{stage}`, but recording who promoted it failed: {exc}")


def _settle(client: ZenMLClient, version: pm.Version, stage: str) -> tuple[list[pm.Version], list[pm.Version]]:
    """The versions in `stage` once a race is settled, and those the settling
    archived: all holders but the last changed (by any action that sees it;
    archiving twice changes nothing). Of `archived`, the version itself."""
    deadline.entering(f"reading back which model version is in `{stage}`")
    if stage == "archived":
        read = pm.decode_version(client.call(pm.get_version(version.id)))
        return [read] if read is not None and read.stage == stage else [], []
    holders = _holders(client, version, stage)
    if len(holders) <= 1:
        return holders, []
    stays = max(holders, key=pm.holder_order)
    others = [v for v in holders if v.id != stays.id]
    for other in others:
        client.call(pm.set_stage(other.id, "archived"))
    return _holders(client, version, stage), [v for v in others if v.id != version.id]


def _holders(client: ZenMLClient, version: pm.Version, stage: str) -> list[pm.Version]:
    return pm.decode_versions(client.call(pm.versions_in_stage(version.model_id, stage)))


def _displaced(client: ZenMLClient, version: pm.Version, stage: str) -> list[pm.Version]:
    """The versions a move to `stage` archives (none for `archived`: any number hold it)."""
    return [v for v in _holders(client, version, stage) if v.id != version.id] if stage != "archived" else []


def _promotion(stage: str, version: pm.Version, note: str, **more: Any) -> pm.Promotion:
    found = pm.Promotion(stage, model=version.model, version=version.name, version_id=version.id, note=note)
    return dataclasses.replace(found, **more)


# -- before the run: which run, and can it be promoted at all -----------------


def run_for_commit(client: ZenMLClient, sha: str, repository: str) -> str:
    """The newest completed run the action started for commit `sha` here:
    made from it, or from a pull request whose head it is (run metadata)."""
    deadline.entering(f"looking for the run of commit {sha[:12]}")
    pages = [client.call(pm.runs_for_commit(key, sha)) for key in pm.COMMIT_KEYS]
    found = pm.newest_for_repository(pages, repository)
    if found is None:
        where = f" in `{repository}`" if repository else ""
        raise errors.NotFound(
            f"Input `run-for-commit`: no completed run started by this action for commit {sha}{where}. "
            "Check that the commit's workflow ran the pipeline with this action (it records `github.sha` on "
            "the run) and that the run completed; give the pull request's head commit "
            "(`github.event.pull_request.head.sha`)."
        )
    return str(found["id"])


def check_snapshot(client: ZenMLClient, snapshot_id: str, console: Console) -> None:
    """Before the trigger: a snapshot whose configuration names no model
    would run for nothing (its run could not be promoted)."""
    try:
        snapshot = client.call(api.get_snapshot(snapshot_id))
    except ActionError as exc:
        console.debug(f"could not read the snapshot's model ({exc}): checked after the run")
        return
    if pm.model_configured(snapshot) is False:
        why = f"snapshot {snapshot_id} has no model in its configuration: its runs produce no model version."
        raise InputError("promote-to", why, NO_MODEL_FIX)


def dry_run_attached(action: Action, run: dict[str, Any]) -> None:
    """`dry-run` on a run that exists: which version would move where; nothing is sent."""
    report, client, stage = action.report, action.client, action.inputs.promote_to
    assert client is not None
    if report.status not in api.SUCCESS_STATUSES:
        what = f"the run is `{report.status or 'unknown'}`: its model version is promoted only once it completed"
        record(report, dataclasses.replace(pm.not_promoted(stage, what), dry_run=True))
        action.console.info(f"Dry run: {what}.")
        return
    version = version_of_run(client, run, report, stage)
    others = _displaced(client, version, stage)
    if version.stage == stage and not others:
        what = f"{version.describe()} is already in `{stage}`: nothing would change"
    else:
        archived = f", archiving {', '.join(v.describe() for v in others)}" if others else ""
        what = f"would move {version.describe()} from `{version.stage or 'no stage'}` to `{stage}`{archived}"
    record(report, _promotion(stage, version, f"dry run: {what}", dry_run=True))
    action.console.info(f"Dry run: {what}; nothing is sent.")
