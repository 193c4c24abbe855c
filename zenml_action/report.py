"""What the action found out, turned into step outputs and a job summary."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zenml_action.github import markdown_text, shorten


@dataclass(frozen=True)
class FailureLog:
    """Why part of a run failed, for the summary: a failed step (or the run
    itself when no step failed), its error and the last lines of its log."""

    where: str  # "step `train_model`" or "the run"
    error: str = ""
    last_lines: tuple[str, ...] = ()
    note: str = ""  # why no log is shown, with where to find it


JUDGED_OUTPUTS = ("metrics", "baseline-run-id", "gate-result", "report", "result")


@dataclass
class Report:
    """Filled in as the action goes, so outputs are written as far as known
    even when it fails half-way."""

    target: str = ""
    pipeline: str = ""
    run_id: str = ""
    run_name: str = ""
    run_url: str = ""
    status: str = ""
    conclusion: str = ""
    snapshot_id: str = ""
    duration_seconds: float | None = None
    sent: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    failure_logs: list[FailureLog] = field(default_factory=list)
    # The judgement's outputs (metrics, baseline-run-id, gate-result, report,
    # result: evaluation.py), once the run was judged.
    judged: dict[str, str] = field(default_factory=dict)
    # The steps as the wait last saw them: name, status, seconds
    # (progress.steps_summary).
    steps: list[tuple[str, str, float | None]] = field(default_factory=list)

    def outputs(self) -> dict[str, str]:
        if not (self.run_id or self.conclusion):
            return {}
        return {
            "run-id": self.run_id,
            "run-name": self.run_name,
            "run-url": self.run_url,
            "status": self.status,
            "conclusion": self.conclusion,
            "snapshot-id": self.snapshot_id,
            "duration-seconds": "" if self.duration_seconds is None else f"{self.duration_seconds:.0f}",
            "metadata": strict_json(self.metadata) if self.metadata else "",
            **{name: self.judged.get(name, "") for name in JUDGED_OUTPUTS},
        }


def finite(value: Any) -> Any:
    """The value with every NaN or infinity written as text: strict JSON
    has no such numbers, and strict readers refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def strict_json(value: Any) -> str:
    return json.dumps(finite(value), sort_keys=True, default=str, allow_nan=False)


# -- Markdown: the job summary and the `report` output are each a `document`;
# values from users and the server are shown as text (`cell`), the only links
# go to addresses the action built (`link`).


def cell(value: Any) -> str:
    """A Markdown table cell that shows the value as text: no HTML, no
    links, no breaking out of the row."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return " ".join(markdown_text(text).split())


def link(text: str, url: str) -> str:
    """A link to an http(s) address, escaped so that it ends neither the
    link nor the table row; just the text for any other address."""
    label = cell(text)
    if not url.startswith(("https://", "http://")):
        return label
    href = html.escape(url, quote=True)
    for char, escaped in (("(", "%28"), (")", "%29"), (" ", "%20"), ("|", "%7C")):
        href = href.replace(char, escaped)
    return f"[{label}]({href})"


def row(*cells: str) -> str:
    return f"| {' | '.join(cells)} |"


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], numbers: Collection[str] = ()) -> list[str]:
    """A section holding a table under its bold title (none if ""); the
    `numbers` columns are right-aligned."""
    lines = [f"**{title}**", ""] if title else []
    lines += [row(*columns), "|" + "|".join("--:" if name in numbers else "---" for name in columns) + "|"]
    return lines + [row(*cells) for cells in rows]


# A table from someone else's data (run metadata, a configuration) keeps the
# job summary far below GitHub's 1 MiB limit, past which it shows nothing.
MAX_TABLE_ROWS = 100
MAX_CELL = 500


def capped_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    shown = [[shorten(value, MAX_CELL) for value in cells] for cells in rows[:MAX_TABLE_ROWS]]
    lines = table(title, columns, shown)
    if len(rows) > MAX_TABLE_ROWS:
        lines.append(f"… and {len(rows) - MAX_TABLE_ROWS} more (the step's outputs have them all).")
    return lines


def document(title: str, facts: Iterable[tuple[str, str]], sections: Iterable[Sequence[str]]) -> str:
    """A heading, a two-column table of facts (name, Markdown), then each
    section after a blank line."""
    lines = [f"### {title}", "", "| | |", "|---|---|", *(row(name, value) for name, value in facts)]
    for section in sections:
        lines += ["", *section]
    return "\n".join(lines) + "\n"


def failure_sections(failure: FailureLog) -> list[list[str]]:
    """A failed step's error and the last lines of its log, each line a
    table cell: escaped like every other value, one row per line."""
    sections = [[f"**Failed: {cell(failure.where)}**" + (f" {cell(failure.error)}" if failure.error else "")]]
    if failure.last_lines:
        sections.append(table("", ["Last lines of its log"], [[cell(line) or " "] for line in failure.last_lines]))
    if failure.note:
        sections.append([f"> {cell(failure.note)}"])
    return sections


_ICONS = {"success": "✅", "failure": "❌", "timeout": "⏱️", "cancelled": "🛑", "triggered": "🚀", "dry-run": "🧪"}


def summary_markdown(report: Report) -> str:
    if not (report.target or report.run_id or report.error):
        return ""
    facts = [("Template", report.target), ("Pipeline", report.pipeline)]
    if report.run_id:
        facts += [("Run", report.run_name or report.run_id), ("Run ID", report.run_id)]
    facts.append(("Status", report.status))
    if report.duration_seconds is not None:
        facts.append(("Duration", f"{report.duration_seconds:.0f} s"))
    shown = [(name, cell(value)) for name, value in facts if value]
    if report.run_url.startswith(("https://", "http://")):
        shown.append(("Dashboard", link("open run", report.run_url)))
    sections: list[Sequence[str]] = []
    for title, name, values in (("Run configuration sent", "Setting", report.sent), ("Run metadata", "Key", report.metadata)):
        if values:
            sections.append(capped_table(title, [name, "Value"], [(cell(k), cell(v)) for k, v in flatten(values)]))
    if report.error:
        sections.append([f"**Error:** {cell(report.error)}"])
    if report.judged.get("report"):
        # The results section (metrics, baseline, gate, a failed step's log):
        # the same Markdown as the `report` output.
        sections.append([report.judged["report"]])
    else:
        for failure in report.failure_logs:
            sections += failure_sections(failure)
    title = f"{_ICONS.get(report.conclusion, '❌')} ZenML run: {cell(report.conclusion or 'failed')}"
    return document(title, shown, sections) + "\n"


def flatten(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            rows += flatten(value, name)
        else:
            rows.append((name, value))
    return rows
