"""After a run, for both modes: record where it came from (the GitHub
context, as run metadata), find the baseline `compare-to` names, judge the
run with the `gate`, and put the result into the report. The requests are
here; the pure rules in `judge.py`, the rendering in `judge_report.py`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from zenml_action import api, deadline, gate, judge, judge_report, provenance, trend
from zenml_action.client import ZenMLClient
from zenml_action.errors import ActionError, NotFound
from zenml_action.github import Console

if TYPE_CHECKING:
    from zenml_action.runs import Action


def attach_context(client: ZenMLClient, project_id: str, run_id: str, context: Mapping[str, str], console: Console) -> None:
    """Record the GitHub context on the run, so the dashboard links back to
    the workflow run and later runs can find this one by branch. A failure
    costs only that: it is reported, not fatal."""
    if not context or not run_id:
        return
    try:
        client.call(provenance.attach_run_metadata(project_id, run_id, dict(context)))
    except ActionError as exc:
        console.warning(f"Could not record the GitHub context on run {run_id}: {exc}")


def differing_parameters(
    client: ZenMLClient | None, run: Mapping[str, Any], baseline_run: Mapping[str, Any] | None
) -> tuple[list[judge.ParameterDiff], str]:
    """The parameters that differ, pipeline-level and each step's (from the
    runs' snapshots, where the server has them), or why they were not compared."""
    if client is None or baseline_run is None:
        return [], ""
    deadline.entering("comparing the run's parameters with the baseline's")
    parameters = []
    for each in (run, baseline_run):
        snapshot_id = api.dig(each, "resources", "snapshot", "id")
        try:
            snapshot = client.call(api.get_snapshot(str(snapshot_id))) if snapshot_id else None
        except ActionError:
            return [], "The parameters could not be compared: a run's snapshot could not be read."
        parameters.append(api.run_parameters(each, snapshot))
    return judge.differing_parameters(*parameters), ""


@dataclass(frozen=True)
class Found:
    """The baseline lookup's answer: the baseline, or why there is none;
    `unknown` when it could not be determined (an error, a record that was
    tampered with): the gate then fails closed."""

    baseline: judge.Baseline | None = None
    note: str = ""
    run: dict[str, Any] | None = None  # the baseline run, to compare parameters
    unknown: bool = False
    history: tuple[trend.PastRun, ...] | None = None  # as `Judgement.history`, from the same listing


def find_baseline(client: ZenMLClient | None, wanted: judge.CompareTo, run: Mapping[str, Any], context: Mapping[str, str]) -> Found:
    if client is None:
        return Found(note="no baseline: the run went to a local ZenML store (no server), which keeps no history between CI jobs")
    deadline.entering("looking the baseline up")
    try:
        return _find_baseline(client, wanted, run, context)
    except NotFound as exc:
        if wanted.kind != "run":
            raise
        return Found(note=f"the baseline run {wanted.value} does not exist on the server ({exc})", unknown=True)
    except ActionError as exc:
        return Found(note=f"looking the baseline up failed ({exc})", unknown=True)


def _past_run(run: Mapping[str, Any]) -> trend.PastRun:
    return trend.PastRun(str(run["id"]), str(run.get("name") or ""), api.created_at(run), judge.numeric_metrics(api.run_metadata(run)))


def _find_baseline(client: ZenMLClient, wanted: judge.CompareTo, run: Mapping[str, Any], context: Mapping[str, str]) -> Found:
    if wanted.kind == "model":
        version = api.decode_model_version(client.call(api.model_version_in_stage(wanted.value, wanted.stage)))
        if version is None:
            held = "no version" if wanted.stage == "latest" else f"no version in stage `{wanted.stage}`"
            return Found(note=f"no baseline yet: model `{wanted.value}` has {held}")
        name = f"{wanted.value} version {version.get('name', '?')} ({wanted.stage})"
        metrics = judge.numeric_metrics(api.run_metadata(version))
        return Found(judge.Baseline("model_version", str(version["id"]), name, "", api.created_at(version), metrics))
    if wanted.kind == "run":
        found = client.call(api.get_run(wanted.value, hydrate=True))
        if not isinstance(found, dict) or not found.get("id"):
            return Found(note=f"the server's answer for run {wanted.value} was not a run", unknown=True)
        return _baseline_run(client, found)
    if not (repository := context.get("github.repository", "")):
        return Found(note="the repository is not known (GITHUB_REPOSITORY is not set)", unknown=True)
    # Never without the pipeline: another pipeline's run is no baseline.
    # 0.86 on: `body.pipeline_id` or `resources.pipeline`; 0.85: `body.pipeline`.
    pipeline_id = str(
        api.dig(run, "body", "pipeline_id") or api.dig(run, "resources", "pipeline", "id") or api.dig(run, "body", "pipeline", "id") or ""
    )
    if not pipeline_id:
        return Found(note="the run's pipeline is not known (reading the finished run failed)", unknown=True)
    previous = wanted.kind == "previous"
    baseline_of = f"{repository}@" if previous else f"{repository}@{wanted.value}"
    listed = client.call(provenance.list_baseline_runs(baseline_of, pipeline_id, any_branch=previous))
    this_run = str(run.get("id") or "")
    found, refused = provenance.decode_baseline_run(listed, baseline_of, exclude_run_id=this_run, any_branch=previous)
    recorded = provenance.recorded_runs(listed, baseline_of, exclude_run_id=this_run, any_branch=previous)
    history = tuple(_past_run(r) for r in recorded)
    if found is not None:
        return replace(_baseline_run(client, found), history=history)
    if refused:
        claimed = f"{refused} run(s) claimed to be the baseline"
        said = "but the action's own record on them says otherwise (metadata a pipeline wrote itself)"
        return Found(note=f"{claimed} {said}", unknown=True, history=history)
    where = "from this repository" if previous else f"from `{wanted.value}` (a push, dispatch or schedule)"
    return Found(note=f"no baseline yet: no completed run of this pipeline started by the action {where}", history=history)


def _baseline_run(client: ZenMLClient, found: dict[str, Any]) -> Found:
    url = api.dashboard_run_url({}, client.base_url, "", str(found["id"]))
    metrics = judge.numeric_metrics(api.run_metadata(found))
    return Found(judge.Baseline("run", str(found["id"]), str(found.get("name") or ""), url, api.created_at(found), metrics), run=found)


def _history_note(wanted: judge.CompareTo | None, found: Found) -> str:
    """Why a trend asked for (`compare-to` a branch or `previous`) has no runs."""
    if wanted is None or wanted.kind not in ("branch", "previous") or found.history is not None:
        return ""
    if not found.unknown:
        return found.note.removeprefix("no baseline: ")
    return "the baseline's runs could not be listed" + (f" ({found.note})" if found.note else "")


def judge_run(action: Action, run: Mapping[str, Any]) -> str:
    """Fill in the report's judgement; the gate's error message when a rule
    failed ("" otherwise). A run that did not complete is not judged."""
    client, report, console, inputs = action.client, action.report, action.console, action.inputs
    rules, context = inputs.gate, inputs.github
    metrics = judge.numeric_metrics(report.metadata)
    found = Found()
    if inputs.compare_to is not None:
        found = find_baseline(client, inputs.compare_to, run, context)
        shown = f"no baseline: {found.note}" if found.unknown else found.note
        console.info(f"Baseline: {found.baseline.name or found.baseline.id}" if found.baseline else shown[0].upper() + shown[1:] + ".")
    completed = report.status in api.SUCCESS_STATUSES
    baseline_metrics = dict(found.baseline.metrics) if found.baseline else None
    unknown = found.note if found.unknown else ""
    facts = gate.BaselineFacts(baseline_metrics, unknown, missing_passes=inputs.on_missing_baseline == "pass")
    result = gate.evaluate(rules, metrics, facts) if rules and completed else None
    gate_note = "" if completed or not rules else f"not evaluated: the run ended `{report.status or report.conclusion}`"
    parameters, parameters_note = differing_parameters(client, run, found.run)
    judgement = judge.Judgement(
        run=judge.RunInfo(report.run_id, report.run_name, report.run_url, report.status, report.pipeline,
                          report.duration_seconds, report.target),
        metrics=metrics, compare_to=inputs.compare_to_text, baseline=found.baseline,
        baseline_note=f"could not be determined: {found.note}" if found.unknown else found.note,
        parameters=parameters, parameters_note=parameters_note,
        rules=rules, gate=result, gate_note=gate_note,
        failures=tuple(report.failure_logs), github=dict(context), promotion=report.promotion,
        history=found.history, history_note=_history_note(inputs.compare_to, found),
    )
    report.judgement = judgement  # rendered again once the promotion is decided (promote.py)
    report.judged = judge_report.outputs(judgement, datetime.now(UTC))
    return result.error_message() if result is not None and result.result == "failed" else ""
