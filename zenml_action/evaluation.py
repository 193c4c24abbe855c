"""After a run, for both modes: record where it came from (the GitHub
context, as run metadata), find the baseline `compare-to` names, judge the
run with the `gate`, and put the result into the report (`judge.py` holds
the pure rules and the rendering; this module does the requests)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from zenml_action import api, deadline, gate, judge
from zenml_action.client import ZenMLClient
from zenml_action.errors import ActionError
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
        client.call(api.attach_run_metadata(project_id, run_id, dict(context)))
    except ActionError as exc:
        console.warning(f"Could not record the GitHub context on run {run_id}: {exc}")


def parameters_of(client: ZenMLClient, run: Mapping[str, Any]) -> dict[str, Any]:
    """A run's parameters, pipeline-level and each step's (from the run's
    snapshot, where the server has one), for comparing two runs."""
    snapshot_id = api.dig(run, "resources", "snapshot", "id")
    snapshot = None
    if snapshot_id:
        try:
            snapshot = client.call(api.get_snapshot(str(snapshot_id)))
        except ActionError:
            snapshot = None
    return api.run_parameters(run, snapshot)


def differing_parameters(
    client: ZenMLClient | None, run: Mapping[str, Any], baseline_run: Mapping[str, Any] | None
) -> list[judge.ParameterDiff]:
    if client is None or baseline_run is None:
        return []
    deadline.entering("comparing the run's parameters with the baseline's")
    return judge.differing_parameters(parameters_of(client, run), parameters_of(client, baseline_run))


def find_baseline(
    client: ZenMLClient | None, wanted: judge.CompareTo, run: Mapping[str, Any], context: Mapping[str, str], base_url: str
) -> tuple[judge.Baseline | None, str, dict[str, Any] | None]:
    """The baseline, why there is none, and the baseline run (for a run)."""
    if client is None:
        return None, "no baseline: the run went to a local ZenML store (no server), which keeps no history between CI jobs", None
    deadline.entering("looking the baseline up")
    run_id = str(run.get("id") or "")
    pipeline_id = str(api.dig(run, "body", "pipeline_id") or api.dig(run, "resources", "pipeline", "id") or "")
    try:
        if wanted.kind == "model":
            version = api.decode_model_version(client.call(api.model_version_in_stage(wanted.value, wanted.stage)))
            if version is None:
                return None, f"no baseline: model `{wanted.value}` has no version in stage `{wanted.stage}`", None
            name = f"{wanted.value} version {version.get('name', '?')} ({wanted.stage})"
            return judge.Baseline("model_version", str(version["id"]), name, "", api.created_at(version),
                                  judge.numeric_metrics(api.run_metadata(version))), "", None
        if wanted.kind == "run":
            found: dict[str, Any] | None = client.call(api.get_run(wanted.value, hydrate=True))
        else:
            key, value = ("github.ref", wanted.value) if wanted.kind == "branch" else (
                "github.repository", context.get("github.repository", ""))
            if not value:
                return None, "no baseline: the repository is not known (GITHUB_REPOSITORY is not set)", None
            listed = client.call(api.list_runs_by_metadata(key, value, pipeline_id=pipeline_id))
            found = api.decode_baseline_run(listed, exclude_run_id=run_id, repository=context.get("github.repository", ""))
    except ActionError as exc:
        return None, f"no baseline: looking it up failed ({exc})", None
    if not isinstance(found, dict) or not found.get("id"):
        where = {"branch": f"from `{wanted.value}`", "previous": "from this repository"}.get(wanted.kind, "")
        return None, f"no baseline: no completed run of this pipeline started by the action {where}".rstrip(), None
    baseline_url = api.dashboard_run_url({}, base_url, "", str(found["id"]))
    return judge.Baseline("run", str(found["id"]), str(found.get("name") or ""), baseline_url, api.created_at(found),
                          judge.numeric_metrics(api.run_metadata(found))), "", found


def judge_run(action: Action, run: Mapping[str, Any]) -> str:
    """Fill in the report's judgement; the gate's error message when a rule
    failed ("" otherwise). A run that did not complete is not judged."""
    client, report, console = action.client, action.report, action.console
    wanted, compare_to, rules = action.inputs.compare_to, action.inputs.compare_to_text, action.inputs.gate
    context = action.inputs.github
    metrics = judge.numeric_metrics(report.metadata)
    baseline, note, baseline_run = None, "", None
    if wanted is not None:
        baseline, note, baseline_run = find_baseline(client, wanted, run, context, client.base_url if client else "")
        console.info(f"Baseline: {baseline.name or baseline.id}" if baseline else note[0].upper() + note[1:] + ".")
    completed = report.status in api.SUCCESS_STATUSES
    result = gate.evaluate(rules, metrics, dict(baseline.metrics) if baseline else None) if rules and completed else None
    gate_note = "" if completed or not rules else f"not evaluated: the run ended `{report.status or report.conclusion}`"
    judgement = judge.Judgement(
        run=judge.RunInfo(report.run_id, report.run_name, report.run_url, report.status, report.pipeline),
        metrics=metrics,
        compare_to=compare_to,
        baseline=baseline,
        baseline_note=note,
        parameters=differing_parameters(client, run, baseline_run),
        rules=rules,
        gate=result,
        gate_note=gate_note,
        failures=tuple(report.failure_logs),
        github=dict(context),
    )
    report.judged = judge.outputs(judgement, datetime.now(UTC))
    return result.error_message() if result is not None and result.result == "failed" else ""
