"""Where the metrics are going: the last runs of the baseline's branch (the
listing that found the baseline, no request more) and this run, as series
of values per metric, and as Mermaid `xychart-beta` blocks that GitHub
draws in a job summary or a pull-request comment. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

# The runs of the baseline listed (`provenance.list_baseline_runs`), this
# run not counted.
MAX_HISTORY: Final = 10
# Without a gate, the first metrics by name; with one, each gated metric up
# to this many charts (the result carries the same series).
UNGATED_CHARTS: Final = 3
MAX_CHARTS: Final = 6


@dataclass(frozen=True)
class PastRun:
    """A completed run of the baseline's branch, from the listing."""

    id: str
    name: str = ""
    created: datetime | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Series:
    """One metric over the runs (oldest first, this run last): a value per
    run, None where that run did not log the metric."""

    metric: str
    values: tuple[float | None, ...]

    @property
    def points(self) -> int:
        return sum(1 for v in self.values if v is not None)


@dataclass(frozen=True)
class Trend:
    """The runs (oldest first, this run last, labelled for the x axis) and
    each charted metric's series over them."""

    runs: tuple[PastRun, ...]
    labels: tuple[str, ...]
    series: tuple[Series, ...]


def charted_metrics(metrics: Mapping[str, float], gated: Sequence[str]) -> list[str]:
    """The metrics a trend shows: the gated ones in the gate's order, or
    without a gate the first few of this run's by name."""
    return (list(dict.fromkeys(gated)) if gated else sorted(metrics)[:UNGATED_CHARTS])[:MAX_CHARTS]


def trend(history: Sequence[PastRun], this: PastRun, metrics: Sequence[str]) -> Trend:
    """`history` newest first, as listed; the series of `metrics` over it
    (the last MAX_HISTORY runs) and this run."""
    runs = (*reversed(history[:MAX_HISTORY]), this)
    series = tuple(Series(m, tuple(run.metrics.get(m) for run in runs)) for m in metrics)
    return Trend(runs, _labels(runs), series)


def _labels(runs: Sequence[PastRun]) -> tuple[str, ...]:
    """When each run was created (UTC, to the minute); this run last. Two
    runs of the same minute are told apart by a count."""
    labels: list[str] = []
    for index, run in enumerate(runs[:-1]):
        label = utc(run.created).strftime("%m-%d %H:%M") if run.created else f"run {index + 1}"
        seen = sum(1 for earlier in labels if earlier == label or earlier.startswith(f"{label} #"))
        labels.append(f"{label} #{seen + 1}" if seen else label)
    return (*labels, "this run")


def utc(moment: datetime) -> datetime:
    # ZenML's timestamps are UTC, written without a zone.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# A metric's name is someone else's text: in a chart's title only these
# characters (no quote to end the string, no `#`, `;` or `%%` Mermaid reads,
# no `<` for its HTML labels, no backtick to end the Markdown fence).
_TITLE_UNSAFE = re.compile(r"[^A-Za-z0-9 _.:/()+\-=]")
MAX_TITLE: Final = 60


def chart_title(metric: str) -> str:
    title = " ".join(_TITLE_UNSAFE.sub("?", metric).split())
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 3] + "..."


def plain_number(value: float) -> str:
    """Six significant digits without an exponent: Mermaid's grammar has
    none (`1e-05` is a parse error)."""
    text = format(Decimal(f"{value:.6g}"), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def mermaid_chart(series: Series, labels: Sequence[str]) -> list[str]:
    """A fenced `mermaid` block: the metric over the runs that logged it."""
    shown = [(label, value) for label, value in zip(labels, series.values, strict=True) if value is not None]
    axis = ", ".join(f'"{label}"' for label, _ in shown)
    line = ", ".join(plain_number(value) for _, value in shown)
    title = f'    title "{chart_title(series.metric)}"'
    return ["```mermaid", "xychart-beta", title, f"    x-axis [{axis}]", f"    line [{line}]", "```"]


def as_json(found: Trend) -> dict[str, Any]:
    """The trend in the `result` output (schemas/result-v1.json)."""
    runs = [
        {"id": run.id, "name": run.name, "created": utc(run.created).isoformat() if run.created else None}
        for run in found.runs
    ]
    return {
        "runs": [run | {"this": index == len(runs) - 1} for index, run in enumerate(runs)],
        "series": [{"metric": s.metric, "values": list(s.values)} for s in found.series],
    }
