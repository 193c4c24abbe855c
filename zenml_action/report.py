"""What the action found out, turned into step outputs and a job summary."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zenml_action.github import markdown_text, shorten
from zenml_action.promotion import Promotion
from zenml_action.promotion import outputs as promotion_outputs

if TYPE_CHECKING:
    from zenml_action.judge import Judgement


@dataclass(frozen=True)
class FailureLog:
    where: str  # "step `train_model`" or "the run"
    error: str = ""
    last_lines: tuple[str, ...] = ()
    note: str = ""  # why no log is shown, with where to find it


JUDGED_OUTPUTS = ("metrics", "baseline-run-id", "gate-result", "report", "result")
ASKED_OUTPUTS = ("wait-condition-id", "question", "answer-schema")


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
    judged: dict[str, str] = field(default_factory=dict)  # JUDGED_OUTPUTS: evaluation.py
    # The question a run waits to have answered (`answering.py`): its outputs, and its Markdown.
    asked: dict[str, str] = field(default_factory=dict)
    asked_section: list[str] = field(default_factory=list)
    judgement: Judgement | None = None  # what `judged` was rendered from
    promotion: Promotion | None = None  # `promote-to`: promote.py
    steps: list[tuple[str, str, float | None]] = field(default_factory=list)  # name, status, seconds

    def outputs(self) -> dict[str, str]:
        if not (self.run_id or self.conclusion):
            return {}
        # A run waiting for an answer (nothing judged): its `report` shows the question.
        asked_report = ""
        if self.asked_section:
            facts = [("Run", cell(self.run_name or self.run_id)), ("Status", cell(self.status))]
            asked_report = document("⏸️ ZenML run waiting for input", facts, [self.asked_section])
        plain = ("run-id", "run-name", "run-url", "status", "conclusion", "snapshot-id")
        return {
            **{name: getattr(self, name.replace("-", "_")) for name in plain},
            "duration-seconds": "" if self.duration_seconds is None else f"{self.duration_seconds:.0f}",
            "metadata": strict_json(self.metadata) if self.metadata else "",
            **{name: self.judged.get(name, "") for name in JUDGED_OUTPUTS},
            **promotion_outputs(self.promotion),
            **{name: self.asked.get(name, "") for name in ASKED_OUTPUTS},
            **({"report": asked_report} if asked_report else {}),
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


# -- Markdown: the job summary and the `report` output are each a `document`; values from users and the server
# are shown as text (`cell`), the only links go to addresses the action built (`link`).


def cell(value: Any) -> str:
    """A Markdown table cell that shows the value as text: no HTML, no
    links, no breaking out of the row."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return " ".join(markdown_text(text).split())


def link(text: str, url: str) -> str:
    """A link to an http(s) address, escaped so that it ends neither the
    link nor the table row; just the text for any other address."""
    if not url.startswith(("https://", "http://")):
        return cell(text)
    return f"[{cell(text)}]({html.escape(url, quote=True).translate(_HREF_ESCAPES)})"


_HREF_ESCAPES = str.maketrans({"(": "%28", ")": "%29", " ": "%20", "|": "%7C"})


def row(*cells: str) -> str:
    return f"| {' | '.join(cells)} |"


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], numbers: Collection[str] = ()) -> list[str]:
    """A table under its bold title (none if ""), `numbers` columns right-aligned."""
    lines = [f"**{title}**", ""] if title else []
    lines += [row(*columns), "|" + "|".join("--:" if name in numbers else "---" for name in columns) + "|"]
    return lines + [row(*cells) for cells in rows]


# A table from someone else's data (run metadata, a configuration) keeps the
# job summary far below GitHub's 1 MiB limit, past which it shows nothing.
MAX_TABLE_ROWS = 100
MAX_CELL = 500


def folded_table(summary: str, columns: Sequence[str], pairs: Sequence[tuple[str, Any]]) -> list[str]:
    rows = [[shorten(cell(value), MAX_CELL) for value in pair] for pair in pairs[:MAX_TABLE_ROWS]]
    lines = table("", columns, rows)
    if len(pairs) > MAX_TABLE_ROWS:
        lines.append(f"… and {len(pairs) - MAX_TABLE_ROWS} more (the step's outputs have them all).")
    return folded(summary, lines)


def document(title: str, facts: Iterable[tuple[str, str]], sections: Iterable[Sequence[str]]) -> str:
    """A heading, a table of facts (name, Markdown), each section after a blank line."""
    lines = [f"### {title}", "", "| | |", "|---|---|", *(row(name, value) for name, value in facts)]
    lines += [line for section in sections for line in ("", *section)]
    return "\n".join(lines) + "\n"


def promotion_cell(promotion: Promotion) -> str:
    """What `promote-to` did, in one table cell (the version linked where it has a page)."""
    icon = "✅" if promotion.promoted else ("🧪" if promotion.dry_run else "⏭️")
    subject = link(promotion.subject, promotion.url)
    return f"{icon} {subject} → `{cell(promotion.stage)}`: {cell(promotion.note)}"


def folded(summary: str, lines: Sequence[str]) -> list[str]:
    """A section folded under `summary` (the action's own words); the blank
    lines let the Markdown inside render."""
    return [f"<details><summary>{html.escape(summary)}</summary>", "", *lines, "", "</details>"]


def run_cell(name: str, run_id: str, url: str) -> str:
    """The run, linked to its dashboard page if any, with its ID when it has a name."""
    shown = link(name or run_id, url)
    return f"{shown} (ID {cell(run_id)})" if name and run_id else shown


def duration_text(seconds: float) -> str:
    """42 s, 3 min 5 s, 2 h 4 min."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def failure_sections(failure: FailureLog) -> list[list[str]]:
    """A failed step's error and the last lines of its log, each line a
    table cell: escaped like every other value, one row per line."""
    sections = [[f"**Failed: {cell(failure.where)}**" + (f" {cell(failure.error)}" if failure.error else "")]]
    if failure.last_lines:
        sections.append(table("", ["Last lines of its log"], [[cell(line) or " "] for line in failure.last_lines]))
    if failure.note:
        sections.append([f"> {cell(failure.note)}"])
    return sections


_ICONS = {"success": "✅", "failure": "❌", "timeout": "⏱️", "cancelled": "🛑", "triggered": "🚀", "dry-run": "🧪", "waiting-for-input": "⏸️"}
# Run metadata the judged report shows already: the metrics, and the GitHub
# context the action recorded (in its own folded block).
_RECORDED_PREFIXES = ("github.", "zenml_action.")


def summary_markdown(report: Report) -> str:
    """The job summary. A judged run's is its report and, folded, what only
    the summary has room for: the configuration sent and the rest of the
    run's metadata. Otherwise the facts known so far."""
    if not (report.target or report.run_id or report.error):
        return ""
    judged = report.judged.get("report", "")
    sections: list[Sequence[str]] = [[f"**Error:** {cell(report.error)}"]] if report.error else []
    if report.asked_section:
        sections.append(report.asked_section)
    if report.sent:
        sections.append(folded_table("Run configuration sent", ["Setting", "Value"], flatten(report.sent)))
    metadata = [(k, v) for k, v in flatten(report.metadata) if not (judged and _shown_in_report(k, v))]
    if metadata:
        title = "Other run metadata" if judged else "Run metadata"
        sections.append(folded_table(title, ["Key", "Value"], metadata))
    if judged:
        return judged + "".join("\n" + "\n".join(section) + "\n" for section in sections) + "\n"
    facts = [("Run", run_cell(report.run_name, report.run_id, report.run_url))] if report.run_id else []
    shown = (("Pipeline", report.pipeline), ("Started from", report.target), ("Status", report.status))
    facts += [(name, cell(value)) for name, value in shown if value]
    if report.duration_seconds is not None:
        facts.append(("Duration", duration_text(report.duration_seconds)))
    if report.promotion is not None:
        facts.append(("Promotion", promotion_cell(report.promotion)))
    sections += [section for failure in report.failure_logs for section in failure_sections(failure)]
    title = f"{_ICONS.get(report.conclusion, '❌')} ZenML run: {cell(report.conclusion or 'failed')}"
    return document(title, facts, sections) + "\n"


def _shown_in_report(key: str, value: Any) -> bool:
    """A metric (as `judge.numeric_metrics` finds them) or the GitHub record."""
    if key.startswith(_RECORDED_PREFIXES):
        return True
    try:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))
    except OverflowError:  # an int too large for a float
        return False


def flatten(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        rows += flatten(value, name) if isinstance(value, dict) and value else [(name, value)]
    return rows
