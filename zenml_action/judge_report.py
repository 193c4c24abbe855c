"""The judgement as the one Markdown report (the `report` output, the
results section of the job summary, a pull-request comment) and the step
outputs it is the source of. Pure: facts in (`judge.Judgement`), text out."""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from zenml_action import judge, report
from zenml_action.api import SUCCESS_STATUSES
from zenml_action.gate import Outcome, Rule, number
from zenml_action.judge import UNSET, Judgement, MetricRow, ParameterDiff, same_setting
from zenml_action.report import cell, folded, link, table
from zenml_action.trend import mermaid_chart, utc

# GitHub refuses a comment longer than 65,536 characters; it counts them as
# JavaScript does (UTF-16 code units), so an emoji counts twice. The sticky
# comment action adds its own marker and header: room is left for them.
MAX_REPORT_LENGTH: Final = 65_536 - 1_536


def outputs(judgement: Judgement, now: datetime) -> dict[str, str]:
    baseline = judgement.baseline
    return {
        "metrics": json.dumps(dict(judgement.metrics), sort_keys=True),
        "baseline-run-id": baseline.id if baseline and baseline.kind == "run" else "",
        "gate-result": judgement.gate_result,
        "report": render_report(judgement, now),
        "result": judge.fitted_result(judge.result(judgement, now)),
    }


_VERDICT = {"better": "✅ better", "worse": "⚠️ worse", "same": "same"}
_OUTCOME = {
    Outcome.PASSED: "✅ passed", Outcome.FAILED: "❌ failed", Outcome.MISSING: "❌ not logged",
    Outcome.SKIPPED: "⏭️ skipped",
}
# The characters a rule can hold (the gate's grammar): safe in a code span.
_RULE_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-<>=!+ ")


def render_report(judgement: Judgement, now: datetime) -> str:
    """The results section: for the job summary and, as the `report`
    output, a pull-request comment. At most MAX_REPORT_LENGTH: the charts
    are left out first, then the log excerpt is shortened, then the longest
    tables, and the report says so."""
    full = _render(judgement, now, None, ())
    if _length(full) <= MAX_REPORT_LENGTH:
        return full
    fit = f"to fit GitHub's limit of {MAX_REPORT_LENGTH:,} characters for a comment"
    if (trend := judgement.trend) is not None and any(s.points >= 2 for s in trend.series):
        chart_note = f"the charts are left out {fit}; the `result` output has their series."
        return render_report(replace(judgement, history=None, history_note=chart_note), now)
    note = (
        f"The log excerpt is shortened to its last {{kept}} lines {fit}; the whole log is on the run's page."
    )
    longest = max((len(f.last_lines) for f in judgement.failures), default=0)
    text = _fitting(longest, lambda k: _render(_log_tail(judgement, k), now, None, [note.format(kept=k)]))
    if _length(text) <= MAX_REPORT_LENGTH:
        return text
    without_log, notes = _log_tail(judgement, 0), (note.format(kept=0),)
    table_note = "Tables are cut to their first {rows} rows to fit; the `result` output has them whole."
    biggest = max(len(judgement.rows), len(judgement.parameters), len(judgement.github))
    text = _fitting(biggest, lambda r: _render(without_log, now, r, (*notes, table_note.format(rows=r))))
    if _length(text) <= MAX_REPORT_LENGTH:
        return text
    # Still too long (huge error messages or notes): cut at a line.
    ending = "\n\n> The report is cut here to fit GitHub's comment limit; the `result` output has it whole.\n"
    units = text.encode("utf-16-le")[: 2 * (MAX_REPORT_LENGTH - _length(ending))]
    cut = units.decode("utf-16-le", "ignore")  # "ignore": half an emoji's surrogate pair
    return cut[: max(cut.rfind("\n"), 0)] + ending


def _length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fitting(most: int, render: Callable[[int], str]) -> str:
    """The rendering of the largest n in 0..most that fits, or of 0 when
    none does (a binary search: a rendering grows with n)."""
    # The first of 1..most that is too long, less one: the last that fits.
    last = bisect.bisect_left(range(1, most + 1), True, key=lambda n: _length(render(n)) > MAX_REPORT_LENGTH)
    return render(last)


def _log_tail(judgement: Judgement, kept: int) -> Judgement:
    tails = [replace(f, last_lines=tuple(f.last_lines[-kept:]) if kept else ()) for f in judgement.failures]
    return replace(judgement, failures=tails)


def _render(judgement: Judgement, now: datetime, table_rows: int | None, notes: Sequence[str]) -> str:
    """The report with each table cut to `table_rows` rows (None: whole)
    and the `notes` saying what was shortened."""
    run = judgement.run
    facts = [  # those with no value are left out
        ("Run", report.run_cell(run.name, run.id, run.url)),
        ("Pipeline", cell(run.pipeline)),
        ("Started from", cell(run.source)),
        ("Status", cell(run.status or "unknown")),
        ("Duration", "" if run.duration_seconds is None else report.duration_text(run.duration_seconds)),
        ("Baseline", _baseline_cell(judgement, now) if judgement.compare_to or judgement.baseline else ""),
        ("Gate", _gate_cell(judgement) if judgement.rules else ""),
        ("Promotion", report.promotion_cell(judgement.promotion) if judgement.promotion else ""),
    ]
    sections = [_metrics_section(judgement, table_rows), *_trend_sections(judgement)]
    if judgement.gate is not None:
        rows = [(_rule_cell(r.rule), _OUTCOME[r.outcome], cell(r.detail)) for r in judgement.gate.rules]
        sections.append(table("Gate", ["Rule", "Outcome", "Details"], rows))
    if judgement.baseline is not None and judgement.baseline.kind == "run":
        sections.append(_parameters_section(judgement, table_rows))
    for failure in judgement.failures:
        sections += report.failure_sections(failure)
    if judgement.github:
        github = sorted(judgement.github.items())
        # The workflow run's address is the action's own (built from the runner's variables).
        context = [(cell(k), link(v, v) if k == "github.workflow_run_url" else cell(v)) for k, v in github]
        sections.append(folded("GitHub context", table("", ["Key", "Value"], _cut(context, table_rows))))
    sections += [[f"> {cell(note)}"] for note in notes]
    return report.document(_title(judgement), [(name, value) for name, value in facts if value], sections)


def _title(judgement: Judgement) -> str:
    """What a reviewer needs first: did the run complete, did it pass."""
    status = judgement.run.status or "unknown"
    gate = judgement.gate_result
    stopped = status in ("stopped", "cancelled")
    icon = "🛑" if stopped else "✅" if status in SUCCESS_STATUSES and gate != "failed" else "❌"
    said = {"passed": "gate passed", "failed": "gate failed", "passed-without-baseline": "gate passed without a baseline"}
    return f"{icon} ZenML run {cell(status)}" + (f", {said[gate]}" if gate in said else "")


def _metrics_section(judgement: Judgement, table_rows: int | None) -> list[str]:
    if not judgement.rows:
        return ["This run logged no metrics (numeric metadata)."]
    columns = ["Metric", "This run", "Baseline", "Change"] if judgement.baseline else ["Metric", "This run"]
    rows = [(cell(r.metric), _number(r.this), _number(r.baseline), _change(r))[: len(columns)] for r in judgement.rows]
    return table("Metrics", columns, _cut(rows, table_rows), numbers={"This run", "Baseline", "Change"})


def _trend_sections(judgement: Judgement) -> list[list[str]]:
    """A chart of each charted metric over the baseline branch's last runs
    and this run; one line for what has fewer than two points."""
    trend = judgement.trend
    if trend is None:
        return [[f"No trend: {cell(judgement.history_note)}"]] if judgement.history_note else []
    if not trend.series:
        return [["No trend: this run logged no metrics to follow."]]
    past = len(trend.runs) - 1
    where = f"`compare-to`: {cell(judgement.compare_to)}" if judgement.compare_to else "the baseline"
    runs = f"the last {past} run{'' if past == 1 else 's'}" if past else "no earlier run"
    charts = [line for s in trend.series if s.points >= 2 for line in ["", *mermaid_chart(s, trend.labels)]]
    lonely = ", ".join(cell(s.metric) for s in trend.series if s.points < 2)
    if not charts:
        return [[f"No trend: fewer than 2 runs logged {lonely} ({runs} of {where}, and this run)."]]
    lines = [f"**Trend** over {runs} of {where} and this run", *charts]
    if lonely:
        lines += ["", f"No trend for {lonely}: fewer than 2 of these runs logged {'them' if ', ' in lonely else 'it'}."]
    return [lines]


def _change(row: MetricRow) -> str:
    change = "" if row.change is None else ("+" if row.change > 0 else "") + number(row.change)
    return " ".join(part for part in (change, _VERDICT.get(row.verdict, "")) if part)


def _parameters_section(judgement: Judgement, table_rows: int | None) -> list[str]:
    if judgement.parameters_note:
        return [cell(judgement.parameters_note)]
    if not judgement.parameters:
        return ["The parameters are the same as the baseline's."]
    rows = []
    for diff, steps in folded_parameters(judgement.parameters):
        name = cell(diff.name)
        if steps:
            name += f" (and step{'s' if len(steps) > 1 else ''} {', '.join(cell(s) for s in steps)})"
        rows.append((name, _value_cell(diff.this), _value_cell(diff.baseline)))
    columns = ["Parameter", "This run", "Baseline"]
    return table("Parameters that differ from the baseline", columns, _cut(rows, table_rows))


def folded_parameters(diffs: Sequence[ParameterDiff]) -> list[tuple[ParameterDiff, list[str]]]:
    """Each differing parameter once: a pipeline parameter and the step
    parameters it became (`steps.STEP.NAME`, the same values on both sides)
    are one row, which names those steps."""
    flat = {d.name: d for d in diffs if not d.name.startswith("steps.")}
    steps: dict[str, list[str]] = {}
    kept = []
    for diff in diffs:
        step, _, name = diff.name.removeprefix("steps.").partition(".")
        twin = flat.get(name) if diff.name.startswith("steps.") else None
        if twin and same_setting(twin.this, diff.this) and same_setting(twin.baseline, diff.baseline):
            steps.setdefault(name, []).append(step)
        else:
            kept.append(diff)
    return [(diff, steps.get(diff.name, [])) for diff in kept]


def _cut(rows: Sequence[Sequence[str]], limit: int | None) -> Sequence[Sequence[str]]:
    """The first `limit` rows (all when None), then a row of one cell
    saying how many were left out (Markdown leaves the others empty)."""
    if limit is None or len(rows) <= limit:
        return rows
    return [*rows[:limit], [f"… {len(rows) - limit} more (the `result` output has them all)"]]


def _baseline_cell(judgement: Judgement, now: datetime) -> str:
    asked = f"`compare-to`: {cell(judgement.compare_to)}" if judgement.compare_to else ""
    baseline = judgement.baseline
    if baseline is None:
        why = cell(judgement.baseline_note) if judgement.baseline_note else "none was found"
        return f"none for {asked}: {why}" if asked else f"none: {why}"
    what = link(baseline.name or baseline.id, baseline.url)
    if baseline.kind == "model_version":
        what = f"model version {what} (ID {cell(baseline.id)})"
    created = f", {_created(baseline.created, now)}" if baseline.created else ""
    return what + created + (f", from {asked}" if asked else "")


def _gate_cell(judgement: Judgement) -> str:
    gate = judgement.gate
    if gate is None:
        return f"not evaluated: {cell(judge.gate_note(judgement).removeprefix('not evaluated: '))}"
    counts = {o: sum(1 for r in gate.rules if r.outcome == o) for o in Outcome}
    summary = ", ".join(f"{n} {o.value}" for o, n in counts.items() if n)
    return f"{'✅ passed' if gate.result == 'passed' else '❌ failed'} ({summary})"


def _created(moment: datetime, now: datetime) -> str:
    when = utc(moment).strftime("%Y-%m-%d %H:%M")
    minutes = int((judge.age_seconds(moment, now) or 0.0) // 60)
    for size, unit in ((60 * 24, "day"), (60, "hour"), (1, "minute")):
        if minutes >= size:
            count = minutes // size
            return f"created {count} {unit}{'' if count == 1 else 's'} ago ({when} UTC)"
    return f"created less than a minute ago ({when} UTC)"


def _number(value: float | None) -> str:
    return "—" if value is None else number(value)


def _value_cell(value: Any) -> str:
    return "*(not set)*" if value is UNSET else cell(value)


def _rule_cell(rule: Rule) -> str:  # a code span unless the rule has a tab or other space
    return f"`{rule.text}`" if set(rule.text) <= _RULE_CHARACTERS else cell(rule.text)
