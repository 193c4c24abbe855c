"""Judging a finished run: metrics, the comparison with the baseline, the
report and the `result` JSON (in-process; pure rules, by tables)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from zenml_action import gate, judge, judge_report
from zenml_action.errors import InputError
from zenml_action.judge import UNSET, Baseline, Judgement, MetricRow, ParameterDiff, RunInfo
from zenml_action.report import FailureLog
from zenml_action.trend import PastRun

pytestmark = pytest.mark.offline

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "result-v1.json").read_text())
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

# -- metrics ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_metadata", "expected"),
    [
        ({"accuracy": 0.9, "f1": 1}, {"accuracy": 0.9, "f1": 1.0}),
        ({"metrics": {"val": {"loss": 0.2}, "acc": 0.8}}, {"metrics.val.loss": 0.2, "metrics.acc": 0.8}),
        ({"converged": True, "accuracy": 0.9}, {"accuracy": 0.9}),  # bools are not metrics
        ({"github.sha": "abc", "note": "x", "tags": [1, 2], "none": None}, {}),
        ({"nan": float("nan"), "inf": float("inf"), "ok": -3}, {"ok": -3.0}),
        ({"empty": {}}, {}),
        ({}, {}),
    ],
)
def test_numeric_metrics(run_metadata: dict[str, Any], expected: dict[str, float]) -> None:
    metrics = judge.numeric_metrics(run_metadata)
    assert metrics == expected
    assert all(type(v) is float for v in metrics.values())


# -- the comparison -----------------------------------------------------------


@pytest.mark.parametrize(
    ("this", "baseline", "rules", "expected"),
    [
        # No rule: the change, no verdict.
        ({"acc": 0.9}, {"acc": 0.8}, "", [MetricRow("acc", 0.9, 0.8, 0.1, "")]),  # 0.1, not 0.09999999999999998
        # `>=`: higher is better.
        ({"acc": 0.9}, {"acc": 0.8}, "acc >= 0.5", [MetricRow("acc", 0.9, 0.8, pytest.approx(0.1), "better")]),
        ({"acc": 0.7}, {"acc": 0.8}, "acc > baseline", [MetricRow("acc", 0.7, 0.8, pytest.approx(-0.1), "worse")]),
        # `<=`: lower is better, so a falling loss is better.
        ({"loss": 0.2}, {"loss": 0.3}, "loss <= 1", [MetricRow("loss", 0.2, 0.3, pytest.approx(-0.1), "better")]),
        ({"loss": 0.4}, {"loss": 0.3}, "loss < baseline", [MetricRow("loss", 0.4, 0.3, pytest.approx(0.1), "worse")]),
        ({"loss": 0.3}, {"loss": 0.3}, "loss < baseline", [MetricRow("loss", 0.3, 0.3, 0.0, "same")]),
        # `==`/`!=` and rules that pull both ways give no direction.
        ({"n": 3.0}, {"n": 2.0}, "n == 3", [MetricRow("n", 3.0, 2.0, 1.0, "")]),
        ({"n": 3.0}, {"n": 2.0}, "n >= 1\nn <= 5", [MetricRow("n", 3.0, 2.0, 1.0, "")]),
        # A metric only one of them has.
        (
            {"acc": 0.9, "new": 1.0},
            {"acc": 0.9, "old": 2.0},
            "acc >= 0",
            [
                MetricRow("acc", 0.9, 0.9, 0.0, "same"),
                MetricRow("new", 1.0, None, None, ""),
                MetricRow("old", None, 2.0, None, ""),
            ],
        ),
        # No baseline at all.
        ({"b": 1.0, "a": 2.0}, None, "a >= 1", [MetricRow("a", 2.0, None, None, ""), MetricRow("b", 1.0, None, None, "")]),
    ],
)
def test_compare(
    this: dict[str, float], baseline: dict[str, float] | None, rules: str, expected: list[MetricRow]
) -> None:
    assert judge.compare(this, baseline, gate.parse(rules)) == expected


@pytest.mark.parametrize(
    ("this", "baseline", "expected"),
    [
        ({"model_type": "rf", "seed": 1}, {"model_type": "rf", "seed": 1}, []),
        ({"model_type": "rf"}, {"model_type": "gb"}, [ParameterDiff("model_type", "rf", "gb")]),
        ({"lr": 1}, {"lr": 1.0}, []),  # the same number
        ({"flag": True}, {"flag": 1}, [ParameterDiff("flag", True, 1)]),  # not the same setting
        ({"a": 1}, {}, [ParameterDiff("a", 1, UNSET)]),
        ({}, {"b": None}, [ParameterDiff("b", UNSET, None)]),
        (
            {"steps": {"train": {"depth": 3, "n": 10}}},
            {"steps": {"train": {"depth": 5, "n": 10}}},
            [ParameterDiff("steps.train.depth", 3, 5)],
        ),
        ({"layers": [1, 2]}, {"layers": [1, 3]}, [ParameterDiff("layers", [1, 2], [1, 3])]),
    ],
)
def test_differing_parameters(
    this: dict[str, Any], baseline: dict[str, Any], expected: list[ParameterDiff]
) -> None:
    assert judge.differing_parameters(this, baseline) == expected


# -- the report ---------------------------------------------------------------

RUN = RunInfo(
    id="11111111-1111-1111-1111-111111111111",
    name="training_pipeline-2026_11_29",
    url="https://zenml.example.com/projects/default/runs/11111111-1111-1111-1111-111111111111",
    status="completed",
    pipeline="training_pipeline",
)
BASELINE_RUN = Baseline(
    kind="run",
    id="22222222-2222-2222-2222-222222222222",
    name="training_pipeline-2026_11_28",
    url="https://zenml.example.com/projects/default/runs/22222222-2222-2222-2222-222222222222",
    created=datetime(2026, 11, 29, 9, 0),  # as ZenML writes it: UTC, no zone
    metrics={"accuracy": 0.95, "f1": 0.97, "loss": 0.30},
)
METRICS = {"accuracy": 0.958, "f1": 0.95, "loss": 0.25}
RULES = "accuracy >= 0.9\nf1 >= baseline - 0.01\nloss <= baseline\nprecision > 0.5"


def judged(**changes: Any) -> Judgement:
    """A completed run with a branch baseline and a gate, changed as asked."""
    rules = gate.parse(changes.pop("rules", RULES))
    baseline = changes.get("baseline", BASELINE_RUN)
    metrics = changes.get("metrics", METRICS)
    base: dict[str, Any] = {
        "run": RUN,
        "metrics": metrics,
        "compare_to": "main",
        "baseline": baseline,
        "parameters": [ParameterDiff("model_type", "gradient_boosting", "random_forest")],
        "rules": rules,
        "gate": gate.evaluate(rules, metrics, gate.BaselineFacts(baseline.metrics if baseline else None)),
        "github": {"github.repository": "octo/repo", "github.sha": "0" * 40},
    }
    return Judgement(**{**base, **changes})


HISTORY = [  # newest first, as listed; the newest is the baseline
    PastRun(BASELINE_RUN.id, BASELINE_RUN.name, datetime(2026, 11, 29, 9, 0), BASELINE_RUN.metrics),
    PastRun("r2", "older", datetime(2026, 11, 28, 9, 30), {"accuracy": 0.94, "loss": 0.31}),
    PastRun("r3", "oldest", datetime(2026, 11, 27, 9, 30), {"f1": 0.96}),
]


def test_report_of_a_judged_run() -> None:
    report = judge_report.render_report(
        judged(
            run=replace(RUN, duration_seconds=183.4, source="trainer-prod (snapshot)"),
            history=HISTORY,
            parameters=[
                ParameterDiff("model_type", "gradient_boosting", "random_forest"),
                ParameterDiff("steps.train_model.depth", 3, 5),
                ParameterDiff("steps.train_model.model_type", "gradient_boosting", "random_forest"),
            ],
        ),
        NOW,
    )
    assert report == (
        "### ❌ ZenML run completed, gate failed\n\n"
        "| | |\n|---|---|\n"
        "| Run | [training\\_pipeline-2026\\_11\\_29](https://zenml.example.com/projects/default/runs/11111111-1111-1111-1111-111111111111)"
        " (ID 11111111-1111-1111-1111-111111111111) |\n"
        "| Pipeline | training\\_pipeline |\n"
        "| Started from | trainer-prod (snapshot) |\n"
        "| Status | completed |\n"
        "| Duration | 3 min 3 s |\n"
        "| Baseline | [training\\_pipeline-2026\\_11\\_28](https://zenml.example.com/projects/default/runs/22222222-2222-2222-2222-222222222222), "
        "created 3 hours ago (2026-11-29 09:00 UTC), from `compare-to`: main |\n"
        "| Gate | ❌ failed (2 passed, 1 failed, 1 missing) |\n\n"
        "**Metrics**\n\n"
        "| Metric | This run | Baseline | Change |\n|---|--:|--:|--:|\n"
        "| accuracy | 0.958 | 0.95 | +0.008 ✅ better |\n"
        "| f1 | 0.95 | 0.97 | -0.02 ⚠️ worse |\n"
        "| loss | 0.25 | 0.3 | -0.05 ✅ better |\n\n"
        "**Trend** over the last 3 runs of `compare-to`: main and this run\n\n"
        "```mermaid\n"
        "xychart-beta\n"
        '    title "accuracy"\n'
        '    x-axis ["11-28 09:30", "11-29 09:00", "this run"]\n'
        "    line [0.94, 0.95, 0.958]\n"
        "```\n\n"
        "```mermaid\n"
        "xychart-beta\n"
        '    title "f1"\n'
        '    x-axis ["11-27 09:30", "11-29 09:00", "this run"]\n'
        "    line [0.96, 0.97, 0.95]\n"
        "```\n\n"
        "```mermaid\n"
        "xychart-beta\n"
        '    title "loss"\n'
        '    x-axis ["11-28 09:30", "11-29 09:00", "this run"]\n'
        "    line [0.31, 0.3, 0.25]\n"
        "```\n\n"
        "No trend for precision: fewer than 2 of these runs logged it.\n\n"
        "**Gate**\n\n"
        "| Rule | Outcome | Details |\n|---|---|---|\n"
        "| `accuracy >= 0.9` | ✅ passed | this run 0.958 |\n"
        "| `f1 >= baseline - 0.01` | ❌ failed | this run 0.95, baseline 0.97, so the threshold is 0.96 |\n"
        "| `loss <= baseline` | ✅ passed | this run 0.25, baseline 0.3 |\n"
        "| `precision > 0.5` | ❌ not logged | this run logged no metric \\`precision\\`. It logged: accuracy, f1, loss |\n\n"
        "**Parameters that differ from the baseline**\n\n"
        "| Parameter | This run | Baseline |\n|---|---|---|\n"
        "| model\\_type (and step train\\_model) | gradient\\_boosting | random\\_forest |\n"
        "| steps.train\\_model.depth | 3 | 5 |\n\n"
        "<details><summary>GitHub context</summary>\n\n"
        "| Key | Value |\n|---|---|\n"
        "| github.repository | octo/repo |\n"
        "| github.sha | 0000000000000000000000000000000000000000 |\n\n"
        "</details>\n"
    )


@pytest.mark.parametrize(
    ("changes", "expected", "absent"),
    [
        # No baseline found: the report says so, and why.
        (
            {"baseline": None, "baseline_note": "no completed run of this pipeline from `main` yet"},
            [
                "| Baseline | none for `compare-to`: main: no completed run of this pipeline from \\`main\\` yet |",
                "| Metric | This run |\n|---|--:|\n| accuracy | 0.958 |",
                "| `f1 >= baseline - 0.01` | ⏭️ skipped | skipped: there is no baseline yet (on-missing-baseline: pass) |",
                "| Gate | ❌ failed (1 passed, 2 skipped, 1 missing) |",
            ],
            ["**Parameters", "| Change |"],
        ),
        # No compare-to, no gate: just the run and its metrics.
        (
            {"baseline": None, "compare_to": "", "rules": "", "gate": None, "parameters": []},
            ["| Status | completed |", "| loss | 0.25 |"],
            ["Baseline", "Gate"],
        ),
        # A model version as the baseline: its ID is shown, no link needed.
        (
            {
                "compare_to": "model:breast_cancer_classifier@production",
                "baseline": Baseline(
                    "model_version", "33333333-3333-3333-3333-333333333333", "breast_cancer_classifier version 3",
                    metrics={"accuracy": 0.9},
                ),
                "parameters": [],
            },
            [
                "| Baseline | model version breast\\_cancer\\_classifier version 3 (ID 33333333-3333-3333-3333-333333333333), "
                "from `compare-to`: model:breast\\_cancer\\_classifier@production |",
                "| f1 | 0.95 | — |  |",
            ],
            ["**Parameters"],
        ),
        # Same parameters: said in words.
        ({"parameters": []}, ["The parameters are the same as the baseline's."], ["**Parameters"]),
        # A parameter one run does not have.
        (
            {"parameters": [ParameterDiff("depth", 3, UNSET)]},
            ["| depth | 3 | *(not set)* |"],
            [],
        ),
        # A failed run: not judged, and why it failed.
        (
            {
                "run": RunInfo(RUN.id, RUN.name, RUN.url, "failed", RUN.pipeline),
                "metrics": {},
                "gate": None,
                "gate_note": "not evaluated: the run failed",
                "failures": [FailureLog("step `train_model`", "ValueError: bad", ("line 1", "Traceback | x"))],
            },
            [
                "### ❌ ZenML run failed\n",
                "| Status | failed |",
                "| Gate | not evaluated: the run failed |",
                "This run logged no metrics (numeric metadata).",
                "**Failed: step \\`train\\_model\\`** ValueError: bad",
                "| line 1 |\n| Traceback \\| x |",
            ],
            ["**Gate**", "✅", "| ❌", "**Metrics**"],
        ),
        # A run with no link (a local store): its name, as text.
        ({"run": RunInfo(RUN.id, RUN.name, "", "completed")}, ["| Run | training\\_pipeline-2026\\_11\\_29 (ID 11111111-1111-1111-1111-111111111111) |"], ["| Pipeline"]),
        # An age of days, and less than a minute.
        ({"baseline": BASELINE_RUN.__class__("run", "x", created=NOW - timedelta(days=2, hours=3))}, ["created 2 days ago"], []),
        ({"baseline": BASELINE_RUN.__class__("run", "x", created=NOW - timedelta(seconds=5))}, ["created less than a minute ago"], []),
    ],
    ids=["no-baseline", "plain", "model-version", "same-parameters", "unset-parameter", "failed-run", "no-link", "days", "seconds"],
)
def test_report_cases(changes: dict[str, Any], expected: list[str], absent: list[str]) -> None:
    report = judge_report.render_report(judged(**changes), NOW)
    for text in expected:
        assert text in report
    for text in absent:
        assert text not in report


HOSTILE = "<img src=x onerror=alert(1)> | [click](https://evil.example) `code` **bold** \n| injected | row |"


@pytest.mark.parametrize(
    "changes",
    [
        {"metrics": {HOSTILE: 1.0}, "rules": ""},
        {"parameters": [ParameterDiff(HOSTILE, HOSTILE, [HOSTILE])]},
        {"run": RunInfo(RUN.id, HOSTILE, "javascript:alert(1)", HOSTILE, HOSTILE)},
        {"run": RunInfo(RUN.id, "run", "https://x.example/a) [evil](https://evil.example", "completed")},
        {"baseline": None, "baseline_note": HOSTILE, "compare_to": HOSTILE},
        {"baseline": Baseline("run", HOSTILE, HOSTILE, metrics={HOSTILE: 1.0})},
        {"failures": [FailureLog(HOSTILE, HOSTILE, (HOSTILE, HOSTILE), HOSTILE)]},
        {"metrics": {"accuracy": 1.0}, "rules": "nope >= 1", "gate": None},  # rebuilt below
    ],
)
def test_report_shows_server_and_user_text_as_text(changes: dict[str, Any]) -> None:
    """Names, values and logs come from the server and the user: none of
    them can add HTML, a link, a code span or a table row."""
    if "rules" in changes and changes.get("gate", 1) is None:
        metrics = {HOSTILE: 0.5}
        rules = gate.parse(changes["rules"])
        changes = {"metrics": metrics, "rules": changes["rules"], "gate": gate.evaluate(rules, metrics, gate.BaselineFacts())}
    report = judge_report.render_report(judged(**changes), NOW)
    assert "<img" not in report
    assert "](https://evil" not in report
    assert "javascript:" not in report
    assert "`code`" not in report
    assert "**bold**" not in report
    assert "\n| injected" not in report
    for line in report.splitlines():
        if line.startswith("|"):
            # Every row has as many unescaped pipes as its header.
            assert line.replace("\\|", "").count("|") in (3, 4, 5, 2)


def log_lines(count: int, width: int = 200) -> tuple[str, ...]:
    return tuple(f"{i:05} " + "x" * width for i in range(count))


@pytest.mark.parametrize(
    ("changes", "expected", "absent"),
    [
        # Fits: nothing shortened.
        ({"failures": [FailureLog("the run", "boom", log_lines(100))]}, ["| 00000 "], ["shortened", "cut"]),
        # A long log: its first lines go, its end stays, and the report says so.
        (
            {"failures": [FailureLog("the run", "boom", log_lines(1000))]},
            ["| 00999 ", "The log excerpt is shortened to its last "],
            ["| 00000 ", "Tables are cut"],
        ),
        # A long log and thousands of metrics: the log goes, then the tables are cut.
        (
            {
                "metrics": {f"m{i:05}": float(i) for i in range(5000)},
                "rules": "",
                "failures": [FailureLog("the run", "boom", log_lines(1000))],
            },
            ["shortened to its last 0 lines", "Tables are cut to their first ", "more (the `result` output has them all) |"],
            ["| 00999 "],
        ),
        # An enormous error message: cut at a line, and said so.
        (
            {"failures": [FailureLog("the run", "E" * 200_000, ())]},
            ["The report is cut here to fit GitHub's comment limit"],
            [],
        ),
        # Emoji count twice (GitHub counts UTF-16 code units).
        ({"failures": [FailureLog("the run", "boom", tuple("😀" * 100 for _ in range(500)))]}, ["shortened"], []),
    ],
    ids=["fits", "long-log", "log-and-tables", "huge-error", "emoji"],
)
def test_report_size_cap(changes: dict[str, Any], expected: list[str], absent: list[str]) -> None:
    report = judge_report.render_report(judged(**changes), NOW)
    assert len(report.encode("utf-16-le")) // 2 <= judge_report.MAX_REPORT_LENGTH
    for text in expected:
        assert text in report
    for text in absent:
        assert text not in report


def test_shortened_log_keeps_as_many_last_lines_as_fit() -> None:
    judgement = judged(failures=[FailureLog("the run", "boom", log_lines(1000))])
    report = judge_report.render_report(judgement, NOW)
    kept = int(report.split("shortened to its last ")[1].split()[0])
    assert 100 < kept < 1000
    assert f"| {999 - kept + 1:05} " in report and f"| {999 - kept:05} " not in report
    # One more line would not have fitted.
    assert len(report) + 210 > judge_report.MAX_REPORT_LENGTH


# -- the result JSON -----------------------------------------------------------

RESULT_CASES = {
    "judged": {},
    "no-baseline": {"baseline": None, "baseline_note": "none yet"},
    "model-version": {"baseline": Baseline("model_version", "mv", "m version 1", created=NOW, metrics={"f1": 0.9})},
    "no-gate": {"rules": "", "gate": None},
    "failed-run": {
        "run": RunInfo(RUN.id, status="failed"),
        "metrics": {},
        "gate": None,
        "failures": [FailureLog("step `x`", "boom", ("a", "b"), "")],
    },
    "unset-parameters": {"parameters": [ParameterDiff("a", UNSET, {"x": [1]}), ParameterDiff("b", None, UNSET)]},
}


@pytest.mark.parametrize("changes", RESULT_CASES.values(), ids=RESULT_CASES.keys())
def test_result_matches_its_schema(changes: dict[str, Any]) -> None:
    outputs = judge_report.outputs(judged(**changes), NOW)
    value = json.loads(outputs["result"])
    jsonschema.validate(value, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert value["schema"] == "zenml-action-result/v1"


def test_result_carries_the_reports_facts() -> None:
    value = judge.result(judged(), NOW)
    assert value["run"]["id"] == RUN.id
    assert value["metrics"] == METRICS
    assert value["baseline"]["kind"] == "run"
    assert value["baseline"]["age_seconds"] == 3 * 3600
    assert value["baseline"]["created"] == "2026-11-29T09:00:00+00:00"
    assert [(r["metric"], r["verdict"]) for r in value["comparison"]] == [
        ("accuracy", "better"), ("f1", "worse"), ("loss", "better")
    ]
    assert value["parameters_differ"] == [{"name": "model_type", "this": "gradient_boosting", "baseline": "random_forest"}]
    assert value["gate"]["result"] == "failed"
    assert [(r["rule"], r["outcome"]) for r in value["gate"]["rules"]] == [
        ("accuracy >= 0.9", "passed"),
        ("f1 >= baseline - 0.01", "failed"),
        ("loss <= baseline", "passed"),
        ("precision > 0.5", "missing"),
    ]
    f1 = value["gate"]["rules"][1]
    assert (f1["this"], f1["baseline"], f1["threshold"]) == (0.95, 0.97, pytest.approx(0.96))
    assert value["github"] == {"github.repository": "octo/repo", "github.sha": "0" * 40}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, {"baseline-run-id": BASELINE_RUN.id, "gate-result": "failed"}),
        ({"rules": "accuracy >= 0.9"}, {"baseline-run-id": BASELINE_RUN.id, "gate-result": "passed"}),
        ({"baseline": None}, {"baseline-run-id": "", "gate-result": "failed"}),
        # A model-version baseline has no run ID: its ID is in the report and result.
        ({"baseline": Baseline("model_version", "mv-id", "m")}, {"baseline-run-id": "", "gate-result": "failed"}),
        ({"gate": None}, {"baseline-run-id": BASELINE_RUN.id, "gate-result": ""}),
    ],
)
def test_outputs(changes: dict[str, Any], expected: dict[str, str]) -> None:
    outputs = judge_report.outputs(judged(**changes), NOW)
    assert {k: outputs[k] for k in expected} == expected
    assert json.loads(outputs["metrics"]) == METRICS
    assert outputs["report"].startswith("### ")


def test_result_for_a_failed_run_says_the_gate_was_not_evaluated() -> None:
    value = judge.result(judged(gate=None, gate_note="not evaluated: the run failed"), NOW)
    assert value["gate"] == {"result": "", "note": "not evaluated: the run failed", "rules": []}


# -- the `compare-to` input ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("  ", None),
        ("main", judge.CompareTo("branch", "refs/heads/main")),
        ("release/1.x", judge.CompareTo("branch", "refs/heads/release/1.x")),
        ("refs/heads/previous", judge.CompareTo("branch", "refs/heads/previous")),
        ("previous", judge.CompareTo("previous")),
        ("2F0C2B4E-0000-4000-8000-000000000001", judge.CompareTo("run", "2f0c2b4e-0000-4000-8000-000000000001")),
        ("model:breast_cancer_classifier@production", judge.CompareTo("model", "breast_cancer_classifier", "production")),
        ("model:team@org/clf@staging", judge.CompareTo("model", "team@org/clf", "staging")),
        ("model:clf@latest", judge.CompareTo("model", "clf", "latest")),
    ],
)
def test_compare_to(text: str, expected: judge.CompareTo | None) -> None:
    assert judge.parse_compare_to(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("model:clf", "`model:clf` names no model version: write `model:NAME@STAGE`."),
        ("model:@production", "names no model version"),
        ("model:clf@prod", "`prod` is not a model stage. Use one of production, staging, archived, latest."),
        ("model:clf@", "`` is not a model stage"),
        ("my branch", "`my branch` is not a branch name."),
        ("main..dev", "is not a branch name"),
        ("feature/", "is not a branch name"),
        ("a:b", "is not a branch name"),
        ("`rm -rf`", "`'rm -rf'` is not a branch name"),
    ],
)
def test_malformed_compare_to(text: str, problem: str) -> None:
    with pytest.raises(InputError) as info:
        judge.parse_compare_to(text)
    assert info.value.input_name == "compare-to"
    assert problem in str(info.value)
