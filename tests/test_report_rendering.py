"""The report and the job summary as a reviewer sees them: the trend's
rules by tables, then the Markdown rendered the way GitHub renders it
(cmarkgfm, GitHub's cmark fork) and each Mermaid chart parsed by Mermaid's
own parser (Node.js, `make mermaid`). In-process; the trend from runs on a
real server is in test_judging.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from test_judge import HISTORY, NOW, RUN, judged

from zenml_action import evaluation, judge, judge_report, trend
from zenml_action.judge import ParameterDiff
from zenml_action.report import FailureLog, Report, summary_markdown
from zenml_action.trend import PastRun

pytestmark = pytest.mark.offline

MERMAID = Path(__file__).parent / "support" / "mermaid"
HOSTILE_NAME = 'acc"uracy`` ]\n%%{init: {"theme": "dark"}}%%\n```\n<script>alert(1)</script> #quot; ; x-axis [a]'


def charts(markdown: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)^```$", markdown, flags=re.M | re.S)


# -- the trend's rules -------------------------------------------------------------


@pytest.mark.parametrize(
    ("metrics", "gated", "expected"),
    [
        ({"b": 1, "a": 2, "d": 3, "c": 4}, [], ["a", "b", "c"]),  # no gate: the first few by name
        ({"a": 1, "b": 2}, ["b", "x", "b"], ["b", "x"]),  # the gated ones, once, in the gate's order
        ({}, [], []),
        ({}, [f"m{i}" for i in range(9)], [f"m{i}" for i in range(trend.MAX_CHARTS)]),
    ],
)
def test_charted_metrics(metrics: dict[str, float], gated: list[str], expected: list[str]) -> None:
    assert trend.charted_metrics(metrics, gated) == expected


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (0.958, "0.958"),
        (1e-05, "0.00001"),  # Mermaid's grammar has no exponent
        (1234567.0, "1234570"),  # six significant digits, as in the tables
        (-2.5, "-2.5"),
        (3.0, "3"),
        (0.1 + 0.2, "0.3"),
    ],
)
def test_plain_number(value: float, written: str) -> None:
    assert trend.plain_number(value) == written


@pytest.mark.parametrize(
    ("metric", "title"),
    [
        ("accuracy", "accuracy"),
        ("eval/loss (val)", "eval/loss (val)"),
        ('a"b`c#d;e%f<g>h\nx', "a?b?c?d?e?f?g?h?x"),
        ("m" * 100, "m" * 57 + "..."),
    ],
)
def test_chart_title_holds_only_safe_characters(metric: str, title: str) -> None:
    assert trend.chart_title(metric) == title


def test_runs_are_labelled_by_when_they_were_created_and_this_run_last() -> None:
    same_minute = datetime(2026, 11, 28, 9, 30, 59)
    history = [PastRun("c", created=same_minute), PastRun("b", created=same_minute), PastRun("a")]
    found = trend.trend(history, PastRun("this"), [])
    assert [r.id for r in found.runs] == ["a", "b", "c", "this"]
    assert found.labels == ("run 1", "11-28 09:30", "11-28 09:30 #2", "this run")


def test_at_most_the_last_ten_runs() -> None:
    history = [PastRun(str(i), metrics={"a": float(i)}) for i in range(15)]  # newest first
    found = trend.trend(history, PastRun("this", metrics={"a": -1.0}), ["a"])
    assert found.series[0].values == (9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0)


TREND_CASES: dict[str, tuple[dict[str, Any], list[str], list[str]]] = {
    # No compare-to of a branch: no trend at all.
    "no-history": ({}, [], ["Trend", "mermaid"]),
    "could-not-list": (
        {"history_note": "the baseline's runs could not be listed (HTTP 500)"},
        ["No trend: the baseline's runs could not be listed (HTTP 500)"],
        ["mermaid"],
    ),
    # The first run of the branch: one point each, no chart, one line.
    "first-run": (
        {"history": []},
        ["No trend: fewer than 2 runs logged accuracy, f1, loss, precision (no earlier run of `compare-to`: main, and this run)."],
        ["mermaid", "**Trend**"],
    ),
    "one-earlier-run": (
        {"history": HISTORY[:1], "rules": "f1 >= 0.5"},
        ["**Trend** over the last 1 run of `compare-to`: main and this run", "line [0.97, 0.95]"],
        ["No trend"],
    ),
    # Without a gate: the first few metrics by name.
    "no-gate": ({"history": HISTORY, "rules": "", "gate": None}, ['title "accuracy"', 'title "f1"', 'title "loss"'], []),
    # A failed run logged nothing to follow.
    "failed-run": (
        {"history": HISTORY, "metrics": {}, "rules": "", "gate": None},
        ["No trend: this run logged no metrics to follow."],
        ["mermaid"],
    ),
}


@pytest.mark.parametrize(("changes", "expected", "absent"), TREND_CASES.values(), ids=TREND_CASES.keys())
def test_trend_section(changes: dict[str, Any], expected: list[str], absent: list[str]) -> None:
    report = judge_report.render_report(judged(**changes), NOW)
    for text in expected:
        assert text in report, report
    for text in absent:
        assert text not in report, report


def test_the_result_carries_the_charted_series() -> None:
    value = judge.result(judged(history=HISTORY, rules="accuracy >= 0.9\nloss <= 1"), NOW)
    assert value["trend"] == {
        "note": "",
        "runs": [
            {"id": "r3", "name": "oldest", "created": "2026-11-27T09:30:00+00:00", "this": False},
            {"id": "r2", "name": "older", "created": "2026-11-28T09:30:00+00:00", "this": False},
            {"id": HISTORY[0].id, "name": HISTORY[0].name, "created": "2026-11-29T09:00:00+00:00", "this": False},
            {"id": RUN.id, "name": RUN.name, "created": None, "this": True},
        ],
        "series": [  # the gated metrics; null where a run did not log one
            {"metric": "accuracy", "values": [None, 0.94, 0.95, 0.958]},
            {"metric": "loss", "values": [None, 0.31, 0.3, 0.25]},
        ],
    }
    assert judge.result(judged(), NOW)["trend"] is None  # a reader of the first v1 finds nothing missing


@pytest.mark.parametrize(
    ("diffs", "rows"),
    [
        # The pipeline parameter and the step parameter it became: one row.
        (
            [ParameterDiff("lr", 1, 2), ParameterDiff("steps.train.lr", 1, 2), ParameterDiff("steps.tune.lr", 1, 2)],
            [("lr", ["train", "tune"])],
        ),
        # A step that overrode the value differs on its own.
        ([ParameterDiff("lr", 1, 2), ParameterDiff("steps.train.lr", 5, 2)], [("lr", []), ("steps.train.lr", [])]),
        # A step parameter with no pipeline parameter of its name.
        ([ParameterDiff("steps.train.depth", 3, 5)], [("steps.train.depth", [])]),
        # Not set on one side, on both levels.
        ([ParameterDiff("x", judge.UNSET, 1), ParameterDiff("steps.s.x", judge.UNSET, 1)], [("x", ["s"])]),
    ],
)
def test_differing_parameters_are_shown_once(diffs: list[ParameterDiff], rows: list[tuple[str, list[str]]]) -> None:
    assert [(d.name, steps) for d, steps in judge_report.folded_parameters(diffs)] == rows


# -- the size limits -----------------------------------------------------------------


def test_the_charts_shrink_first_and_the_report_says_so() -> None:
    def report(lines: int, history: list[PastRun]) -> str:
        log = tuple(f"{i:05} " + "x" * 200 for i in range(lines))
        return judge_report.render_report(judged(history=history, failures=[FailureLog("the run", "boom", log)]), NOW)

    # The longest log shown whole: the charts made room for it.
    shown = next(text for n in range(320, 250, -1) if "shortened" not in (text := report(n, HISTORY)))

    assert len(shown.encode("utf-16-le")) // 2 <= judge_report.MAX_REPORT_LENGTH
    assert "mermaid" not in shown
    assert "No trend: the charts are left out to fit GitHub's limit" in shown
    assert "| 00000 " in shown and "shortened" not in shown, "the log is whole once the charts are left out"


def test_the_summary_stays_within_githubs_limit() -> None:
    """GitHub shows nothing of a step summary over 1 MiB."""
    huge = "<&|`" * 300
    metadata = {f"key{i}-{huge}": huge for i in range(1_000)}
    report = Report(
        target=huge, pipeline=huge, run_id="r", run_name=huge, status="completed", conclusion="success",
        sent={f"p{i}": huge for i in range(1_000)}, metadata=metadata, error=huge,
    )
    report.judged = judge_report.outputs(
        judged(
            metrics={f"m{i}{huge}": float(i) for i in range(300)},
            history=HISTORY,
            parameters=[ParameterDiff(f"p{i}", huge, i) for i in range(300)],
            failures=[FailureLog(huge, huge, (huge,) * 300)],
        ),
        NOW,
    )
    assert len(summary_markdown(report).encode()) < 1024 * 1024


# -- rendered as GitHub renders it ---------------------------------------------------


class Elements(HTMLParser):
    """The elements of rendered HTML, with the text of each `<pre>`."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.pre: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.stack.append(tag)
        if tag == "pre":
            self.pre.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if "pre" in self.stack:
            self.pre[-1] += data

    def count(self, tag: str, **attrs: str) -> int:
        return sum(1 for name, have in self.tags if name == tag and all(have.get(k) == v for k, v in attrs.items()))


def rendered(markdown: str) -> Elements:
    # GitHub's pipeline: raw HTML kept, then filtered (the tagfilter
    # extension neutralizes <script>, <iframe>... as GitHub does).
    html = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
    elements = Elements()
    elements.feed(html)
    elements.close()
    return elements


def full_summary(**changes: Any) -> tuple[str, str]:
    base = {
        "run": replace(RUN, duration_seconds=61, source="trainer-prod (snapshot)"),
        "history": HISTORY,
        "github": {"github.repository": "octo/repo", "github.workflow_run_url": "https://github.com/octo/repo/actions/runs/1"},
    }
    judgement = judged(**{**base, **changes})
    report = Report(
        target="trainer-prod (snapshot)", pipeline=RUN.pipeline, run_id=RUN.id, run_name=RUN.name, run_url=RUN.url,
        status="completed", conclusion="success", duration_seconds=61,
        sent={"parameters": {"model_type": "gradient_boosting"}}, metadata={**judgement.metrics, "note": "hello"},
    )
    report.judged = judge_report.outputs(judgement, NOW)
    return report.judged["report"], summary_markdown(report)


RENDER_CASES: dict[str, dict[str, Any]] = {
    "judged": {},
    "hostile-metric-names": {"metrics": {HOSTILE_NAME: 0.9, "accuracy": 0.5}, "rules": ""},
    "hostile-history": {
        "history": [PastRun("h1", HOSTILE_NAME, None, {HOSTILE_NAME: 1e-9, "accuracy": -1e12}), *HISTORY],
        "metrics": {HOSTILE_NAME: 2.0, "accuracy": 1e300},
        "rules": "",
    },
    "failed": {"metrics": {}, "rules": "", "gate": None, "failures": [FailureLog("step `x`", "<b>boom</b>", ("| a |", "```"))]},
}


@pytest.mark.parametrize("changes", RENDER_CASES.values(), ids=RENDER_CASES.keys())
def test_tables_details_and_charts_survive_githubs_markdown(changes: dict[str, Any]) -> None:
    report, summary = full_summary(**changes)
    assert summary.startswith(report) and summary.count("\n### ") == 0  # one header
    for markdown, folds in ((report, 1), (summary, 3)):
        page = rendered(markdown)
        # Every table the Markdown has is a table (none broken into text),
        # each folded section is a <details> holding its table.
        assert page.count("table") == len(re.findall(r"^\|[-:|]+\|$", markdown, flags=re.M)), markdown
        assert page.count("details") == page.count("summary") == folds, markdown
        # The charts are `mermaid` code blocks GitHub draws, whole.
        blocks = charts(markdown)
        assert page.count("pre", lang="mermaid") == len(blocks)
        assert [text for text in page.pre if text.startswith("xychart-beta")] == blocks
        # Nothing else from the server became HTML.
        allowed = {"h3", "table", "thead", "tbody", "tr", "th", "td", "p", "a", "strong", "em", "code", "pre",
                   "details", "summary", "blockquote", "br"}
        assert {tag for tag, _ in page.tags} <= allowed, page.tags
        assert all(attrs.get("href", "").startswith("https://") for tag, attrs in page.tags if tag == "a")


# -- Mermaid's own parser ----------------------------------------------------------


def mermaid_parse(diagrams: list[str]) -> list[dict[str, Any]]:
    """Each diagram through Mermaid's parser (tests/support/mermaid)."""
    if not (MERMAID / "node_modules" / "mermaid").is_dir() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("Mermaid's parser is not installed: `make mermaid` installs it")
        pytest.skip("Mermaid's parser is not installed: run `make mermaid`")
    done = subprocess.run(
        ["node", str(MERMAID / "check.mjs")], input=json.dumps(diagrams), capture_output=True, text=True, timeout=60, check=True
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def test_every_chart_parses_with_mermaids_parser() -> None:
    diagrams = [chart for changes in RENDER_CASES.values() for chart in charts(full_summary(**changes)[0])]
    ten_runs = [PastRun(str(i), f"r{i}", NOW - timedelta(days=i), {"m": i * 0.1 - 0.5}) for i in range(12)]
    diagrams += charts(judge_report.render_report(judged(history=ten_runs, metrics={"m": 0.3}, rules="m >= 0"), NOW))
    assert len(diagrams) == 7
    # A control: what Mermaid's grammar refuses, the parser here refuses too.
    broken = ['xychart-beta\n    title "a"b"\n    x-axis ["x", "y"]\n    line [1, 2]\n', "xychart-beta\n    line [1e-05, 2]\n"]

    results = mermaid_parse(diagrams + broken)

    assert [r["ok"] for r in results] == [True] * len(diagrams) + [False, False], results
    assert {r["type"] for r in results[: len(diagrams)]} == {"xychart"}


def test_charts_carry_utc_labels() -> None:
    past = [PastRun("p", created=datetime(2026, 11, 28, 23, 30, tzinfo=UTC) + timedelta(hours=1), metrics={"f1": 0.9})]
    report = judge_report.render_report(judged(history=past, rules="f1 >= 0"), NOW)
    assert 'x-axis ["11-29 00:30", "this run"]' in report


@pytest.mark.parametrize(
    ("compare_to", "found", "note"),
    [
        ("main", evaluation.Found(history=()), ""),  # listed: the trend says the rest
        ("previous", evaluation.Found(note="looking the baseline up failed (HTTP 500)", unknown=True),
         "the baseline's runs could not be listed (looking the baseline up failed (HTTP 500))"),
        ("main", evaluation.Found(note="no baseline: the run went to a local ZenML store"), "the run went to a local ZenML store"),
        # Only a branch or `previous` has a trend.
        ("model:clf@production", evaluation.Found(note="no baseline yet"), ""),
        ("11111111-1111-1111-1111-111111111111", evaluation.Found(), ""),
        ("", evaluation.Found(), ""),
    ],
)
def test_why_a_trend_has_no_runs(compare_to: str, found: evaluation.Found, note: str) -> None:
    assert evaluation._history_note(judge.parse_compare_to(compare_to), found) == note
