"""Why a run failed: decoding the server's answers and formatting what the
user sees (pure rules, in-process). The real behaviour, on a server that
executes runs, is in test_executed_runs.py."""

from __future__ import annotations

import pytest

from zenml_action.failures import (
    decode_failed_steps,
    decode_log,
    error_line,
    group_title,
    reason,
    step_url,
    tail,
)
from zenml_action.report import FailureLog, Report, summary_markdown

pytestmark = pytest.mark.offline

TRACEBACK = """Traceback (most recent call last):
  File "/app/pipelines/training.py", line 310, in train_model
    model = build_model(model_type)
ValueError: Unknown model_type 'svm_deluxe': choose one of random_forest, gradient_boosting, logistic_regression."""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # 0.98: entries; chunks of one long entry share an id.
        ([{"message": "Step train_model has started."}, {"message": "boom"}], ["Step train_model has started.", "boom"]),
        (
            [
                {"id": "a", "message": "first half ", "chunk_index": 0, "total_chunks": 2},
                {"id": "a", "message": "second half", "chunk_index": 1, "total_chunks": 2},
            ],
            ["first half second half"],
        ),
        ([{"message": "two\nlines"}], ["two", "lines"]),
        # Older servers answer one string.
        ("line one\nline two\n", ["line one", "line two"]),
        (None, []),
        ({"detail": "odd"}, []),
        ([42, {"message": None}], []),
        # A chunk index that is no number: a new line, not a crash.
        ([{"id": "a", "message": "x"}, {"id": "a", "message": "y", "chunk_index": "1e9x"}], ["x", "y"]),
        ([{"id": "a", "message": "x"}, {"id": "a", "message": "y", "chunk_index": [1]}], ["x", "y"]),
    ],
    ids=["entries", "chunks", "multi-line-entry", "string", "null", "object", "junk", "chunk-text", "chunk-list"],
)
def test_decode_log(body: object, expected: list[str]) -> None:
    assert decode_log(body) == expected


@pytest.mark.parametrize(
    ("lines", "max_lines", "max_bytes", "expected"),
    [
        (["a", "b", "c"], 2, 100, ["b", "c"]),
        (["aaaa", "bbbb", "cccc"], 10, 10, ["bbbb", "cccc"]),
        (["x" * 50], 10, 20, ["…" + "x" * 16]),
        ([], 10, 100, []),
        (["a"], 0, 100, []),
    ],
    ids=["line-cap", "byte-cap", "one-long-line-keeps-its-end", "empty", "no-lines"],
)
def test_tail_is_capped_in_lines_and_bytes(lines: list[str], max_lines: int, max_bytes: int, expected: list[str]) -> None:
    assert tail(lines, max_lines, max_bytes) == expected


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (TRACEBACK.splitlines(), "ValueError: Unknown model_type 'svm_deluxe': choose one of random_forest, gradient_boosting, logistic_regression."),
        (["requests.exceptions.HTTPError: 404 Client Error"], "requests.exceptions.HTTPError: 404 Client Error"),
        (["KeyboardInterrupt"], "KeyboardInterrupt"),
        (["ValueError: first", "RuntimeError: second"], "RuntimeError: second"),
        (["all went fine", "Error count: 0 is not an exception line"], ""),
        (["MyStepFailed: custom"], "MyStepFailed: custom"),
    ],
    ids=["traceback", "dotted", "no-message", "last-wins", "none", "custom-suffix"],
)
def test_error_line(lines: list[str], expected: str) -> None:
    assert error_line(lines) == expected


def test_failed_steps_carry_their_exception_from_the_server() -> None:
    body = {
        "items": [
            {"id": "s1", "name": "train_model", "metadata": {"exception_info": {"traceback": TRACEBACK}}},
            {"id": "s2", "name": "evaluate"},
            {"name": "no-id"},
        ]
    }
    steps = decode_failed_steps(body)
    assert [(s.id, s.name) for s in steps] == [("s1", "train_model"), ("s2", "evaluate")]
    assert steps[0].error.startswith("ValueError: Unknown model_type 'svm_deluxe'")
    assert steps[1].error == ""


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        ([FailureLog("step `train_model`", "ValueError: bad.")], "step `train_model` failed: ValueError: bad"),
        (
            [FailureLog("step `a`", "KeyError: 'x'"), FailureLog("step `b`", "")],
            "step `a` failed: KeyError: 'x'; step `b` failed",
        ),
        ([FailureLog("the run", "RuntimeError: ssh refused")], "the run failed: RuntimeError: ssh refused"),
        ([FailureLog("the run", "", (), "no log")], ""),
        ([], ""),
    ],
    ids=["one-step", "several-steps", "run-log", "nothing-known", "none"],
)
def test_reason_for_the_error_annotation(failures: list[FailureLog], expected: str) -> None:
    # No trailing full stop: the annotation goes on with ". See its logs".
    assert reason(failures) == expected


@pytest.mark.parametrize(
    ("where", "shown", "total", "expected"),
    [
        ("step `train_model`", 60, 200, "Log of failed step `train_model` (last 60 of 200 lines)"),
        ("step `train_model`", 12, 12, "Log of failed step `train_model` (12 lines)"),
        ("the run", 5, 5, "Log of the run (5 lines)"),
    ],
)
def test_group_title(where: str, shown: int, total: int, expected: str) -> None:
    assert group_title(where, shown, total) == expected


@pytest.mark.parametrize(
    ("run_url", "expected"),
    [
        ("http://z/projects/default/runs/r1", "http://z/projects/default/runs/r1?nodeId=s1"),
        ("http://z/runs/r1?tab=dag", "http://z/runs/r1?tab=dag&nodeId=s1"),
        ("", ""),
    ],
)
def test_step_url(run_url: str, expected: str) -> None:
    assert step_url(run_url, "s1") == expected


def test_summary_shows_the_log_lines_escaped_one_row_each() -> None:
    report = Report(target="t", run_id="r", status="failed", conclusion="failure")
    report.failure_logs.append(
        FailureLog(
            "step `train_model`",
            "ValueError: <b>bad</b> | *x*",
            ("| injected | row |", "[link](http://evil)", "![img](http://evil/x.png)", ""),
        )
    )
    markdown = summary_markdown(report)
    assert "**Failed: step \\`train\\_model\\`** ValueError: &lt;b&gt;bad&lt;/b&gt; \\| \\*x\\*" in markdown
    assert "| \\| injected \\| row \\| |" in markdown
    assert "| \\[link\\](http&#58;//evil) |" in markdown
    assert "<b>" not in markdown and "[link](" not in markdown and "![img](" not in markdown
    # An empty log line still makes a well-formed row.
    assert "|   |" in markdown


def test_summary_note_when_the_server_had_no_log() -> None:
    report = Report(target="t", run_id="r", status="failed", conclusion="failure")
    report.failure_logs.append(FailureLog("step `load`", "", (), "The server could not serve the log of step `load`; see it in the dashboard: http://z/r?nodeId=s"))
    markdown = summary_markdown(report)
    assert "> The server could not serve the log of step \\`load\\`" in markdown
    assert "Last lines" not in markdown
