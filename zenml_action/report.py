"""What the action found out, turned into step outputs and a job summary."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from zenml_action.github import markdown_text


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
            "metadata": json.dumps(self.metadata, sort_keys=True, default=str) if self.metadata else "",
            **{name: self.judged.get(name, "") for name in JUDGED_OUTPUTS},
        }


def cell(value: Any) -> str:
    """A Markdown table cell that shows the value as text: no HTML, no
    links, no breaking out of the row."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return " ".join(markdown_text(text).split())


def summary_markdown(report: Report) -> str:
    if not (report.target or report.run_id or report.error):
        return ""
    icon = {"success": "✅", "failure": "❌", "timeout": "⏱️", "cancelled": "🛑", "triggered": "🚀", "dry-run": "🧪"}
    title = f"{icon.get(report.conclusion, '❌')} ZenML run: {cell(report.conclusion or 'failed')}"
    rows = [("Template", report.target), ("Pipeline", report.pipeline)]
    if report.run_id:
        rows.append(("Run", report.run_name or report.run_id))
        rows.append(("Run ID", report.run_id))
    rows.append(("Status", report.status))
    if report.duration_seconds is not None:
        rows.append(("Duration", f"{report.duration_seconds:.0f} s"))
    lines = [f"### {title}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {cell(value)} |" for name, value in rows if value]
    if report.run_url.startswith(("https://", "http://")):
        # The URL is built by the action from the server's own address and
        # IDs; it is still escaped so it can only be a link.
        lines.append(f"| Dashboard | [open run]({html.escape(report.run_url, quote=True).replace('(', '%28').replace(')', '%29').replace(' ', '%20')}) |")
    if report.sent:
        lines += ["", "**Run configuration sent**", "", "| Setting | Value |", "|---|---|"]
        lines += [f"| {cell(k)} | {cell(v)} |" for k, v in flatten(report.sent)]
    if report.metadata:
        lines += ["", "**Run metadata**", "", "| Key | Value |", "|---|---|"]
        lines += [f"| {cell(k)} | {cell(v)} |" for k, v in flatten(report.metadata)]
    if report.error:
        lines += ["", f"**Error:** {cell(report.error)}"]
    if report.judged.get("report"):
        # The results section (metrics, baseline, gate, a failed step's log):
        # the same Markdown as the `report` output.
        lines += ["", report.judged["report"]]
    else:
        for failure in report.failure_logs:
            lines += failure_markdown(failure)
    return "\n".join(lines) + "\n\n"


def flatten(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            rows += flatten(value, name)
        else:
            rows.append((name, value))
    return rows


def failure_markdown(failure: FailureLog) -> list[str]:
    """A failed step's error and the last lines of its log, each line a
    table cell: escaped like every other value, one row per line."""
    lines = ["", f"**Failed: {cell(failure.where)}**" + (f" {cell(failure.error)}" if failure.error else "")]
    if failure.last_lines:
        lines += ["", "| Last lines of its log |", "|---|"]
        lines += [f"| {cell(line) or ' '} |" for line in failure.last_lines]
    if failure.note:
        lines += ["", f"> {cell(failure.note)}"]
    return lines
