"""The `gate` input: its grammar and how each rule is judged (in-process)."""

from __future__ import annotations

import pytest

from zenml_action import gate
from zenml_action.errors import InputError
from zenml_action.gate import BaselineFacts, Outcome, Rule

pytestmark = pytest.mark.offline

# -- the grammar --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("accuracy >= 0.9", [("accuracy", ">=", 0.9, False)]),
        ("accuracy>=0.9", [("accuracy", ">=", 0.9, False)]),
        ("loss < 0.5", [("loss", "<", 0.5, False)]),
        ("loss <= .5", [("loss", "<=", 0.5, False)]),
        ("epochs == 10", [("epochs", "==", 10.0, False)]),
        ("epochs != 3", [("epochs", "!=", 3.0, False)]),
        ("delta > -0.25", [("delta", ">", -0.25, False)]),
        ("delta > - 0.25", [("delta", ">", -0.25, False)]),
        ("lr < 1e-3", [("lr", "<", 0.001, False)]),
        ("lr < +2E2", [("lr", "<", 200.0, False)]),
        ("f1 >= baseline", [("f1", ">=", 0.0, True)]),
        ("f1 >= baseline - 0.01", [("f1", ">=", -0.01, True)]),
        ("f1 >= baseline-0.01", [("f1", ">=", -0.01, True)]),
        ("loss <= baseline + 0.05", [("loss", "<=", 0.05, True)]),
        # Nested keys joined with `.`, and the other allowed characters.
        ("metrics.val/acc-top_1 >= 0.5", [("metrics.val/acc-top_1", ">=", 0.5, False)]),
        # A metric may be called `baseline`: only VALUE gives it a meaning.
        ("baseline >= 1", [("baseline", ">=", 1.0, False)]),
        (
            "\n  # the model must stay good\naccuracy >= 0.9   # absolute\n\n f1 >= baseline - 0.01\n",
            [("accuracy", ">=", 0.9, False), ("f1", ">=", -0.01, True)],
        ),
        ("", []),
        ("# only a comment\n\n", []),
        ("accuracy >= 0.9\r\n\tf1 >= 0.8\r\n", [("accuracy", ">=", 0.9, False), ("f1", ">=", 0.8, False)]),
    ],
)
def test_rules_that_parse(text: str, expected: list[tuple[str, str, float, bool]]) -> None:
    rules = gate.parse(text)
    assert [(r.metric, r.op, r.value, r.relative) for r in rules] == expected


def test_rules_keep_their_line_and_text() -> None:
    rules = gate.parse("# header\n\naccuracy >= 0.9  # why\n  f1>=baseline\n")
    assert [(r.line, r.text) for r in rules] == [(3, "accuracy >= 0.9"), (4, "f1>=baseline")]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("accuracy = 0.9", "line 1 (`accuracy = 0.9`): `=` is not an operator"),
        ("accuracy => 0.9", "`=>` is not an operator"),
        ("accuracy >> 0.9", "`>>` is not an operator"),
        ("accuracy >== 0.9", "`>==` is not an operator"),
        ("accuracy : 0.9", "`:` is not an operator"),
        ("accuracy 0.9", "there is no operator after `accuracy`"),
        ("accuracy", "there is no operator and no value"),
        ("accuracy >=", "there is no value after `>=`"),
        (">= 0.9", "it does not start with a metric name"),
        ("val accuracy >= 0.9", "`val accuracy` is not a metric name"),
        ("acc:top1 >= 0.9", "`:` is not an operator"),
        ("accuracy >= ninety", "`ninety` is not a value"),
        ("accuracy >= nan", "`nan` is not a value"),
        ("accuracy >= inf", "`inf` is not a value"),
        ("accuracy >= 0.9 0.8", "`0.9 0.8` is not a value"),
        ("accuracy >= 0.9%", "`0.9%` is not a value"),
        ("accuracy >= baseline * 1.1", "`baseline * 1.1` is not a value"),
        ("accuracy >= Baseline", "`Baseline` is not a value"),
        ("accuracy >= baseline +", "`baseline +` is not a value"),
        ("accuracy >= other_metric", "`other_metric` is not a value"),
        ("accuracy >= 1e999", "`1e999` is too large a number"),
        ("accuracy >= __import__('os').system('id')", "is not a value"),
        # The first malformed line is named, not the first line.
        ("accuracy >= 0.9\n\nf1 >= high", "line 3 (`f1 >= high`)"),
        # A long line is shortened in the message; backticks cannot break its code span.
        ("accuracy >= " + "9" * 200 + "x", "..."),
        ("acc`uracy >= 1", "`'` is not an operator"),
        ("accuracy ≥ 0.9", "`≥` is not an operator"),
        ("accuracy >= ٠.٩", "`٠.٩` is not a value"),  # digits, but not ASCII ones
        ("accuracy >= 0x10", "`0x10` is not a value"),
        ("accuracy >= 1_000", "`1_000` is not a value"),
    ],
)
def test_malformed_rules_name_the_line_and_the_fix(text: str, problem: str) -> None:
    with pytest.raises(InputError) as info:
        gate.parse(text)
    assert info.value.input_name == "gate"
    message = str(info.value)
    assert message.startswith("Input `gate`: line ")
    assert problem in message
    assert "`METRIC OP VALUE`" in message  # the fix: the grammar, with examples
    assert "accuracy >= 0.9" in message
    assert len(message) < 800


# -- judging ------------------------------------------------------------------

METRICS = {"accuracy": 0.95, "f1": 0.90, "loss": 0.20, "epochs": 10.0, "metrics.val/acc": 0.5}
BASELINE = {"accuracy": 0.93, "f1": 0.92, "loss": 0.25}


@pytest.mark.parametrize(
    ("rule", "baseline", "outcome", "detail"),
    [
        ("accuracy >= 0.9", BASELINE, Outcome.PASSED, "`accuracy >= 0.9`: passed (this run 0.95)."),
        ("accuracy >= 0.95", None, Outcome.PASSED, "passed"),  # equal meets >=
        ("accuracy > 0.95", None, Outcome.FAILED, "`accuracy > 0.95` not met: this run 0.95."),
        ("accuracy >= 0.96", None, Outcome.FAILED, "`accuracy >= 0.96` not met: this run 0.95."),
        ("loss < 0.3", None, Outcome.PASSED, "passed"),
        ("loss <= 0.1", None, Outcome.FAILED, "this run 0.2"),
        ("epochs == 10", None, Outcome.PASSED, "passed"),
        ("epochs != 10", None, Outcome.FAILED, "not met"),
        ("epochs == 10.000000000001", None, Outcome.PASSED, "passed"),  # within tolerance
        ("metrics.val/acc >= 0.5", None, Outcome.PASSED, "passed"),
        # Against the baseline: both values and the threshold are shown.
        ("accuracy >= baseline", BASELINE, Outcome.PASSED, "passed (this run 0.95, baseline 0.93)."),
        ("f1 >= baseline", BASELINE, Outcome.FAILED, "`f1 >= baseline` not met: this run 0.9, baseline 0.92."),
        (
            "f1 >= baseline - 0.01",
            BASELINE,
            Outcome.FAILED,
            "`f1 >= baseline - 0.01` not met: this run 0.9, baseline 0.92, so the threshold is 0.91.",
        ),
        ("f1 >= baseline - 0.03", BASELINE, Outcome.PASSED, "threshold is 0.89"),
        # 0.93 + 0.02 is 0.9500000000000001 in binary: still equal to 0.95.
        ("accuracy >= baseline + 0.02", BASELINE, Outcome.PASSED, "passed"),
        ("accuracy > baseline + 0.02", BASELINE, Outcome.FAILED, "not met"),
        ("loss <= baseline", BASELINE, Outcome.PASSED, "passed"),  # a falling loss
        # Skipped, with the reason.
        ("f1 >= baseline - 0.01", None, Outcome.SKIPPED, ": skipped: there is no baseline yet (on-missing-baseline: pass)."),
        ("epochs <= baseline", BASELINE, Outcome.SKIPPED, "`epochs <= baseline`: skipped: the baseline has no `epochs`"),
        # A metric the run did not log fails, with what it did log.
        (
            "acuracy >= 0.9",
            BASELINE,
            Outcome.MISSING,
            "`acuracy >= 0.9`: this run logged no metric `acuracy`. Did you mean `accuracy`? "
            "It logged: accuracy, epochs, f1, loss, metrics.val/acc.",
        ),
        ("precision >= baseline", None, Outcome.MISSING, "logged no metric `precision`. It logged: accuracy"),
    ],
)
def test_each_rule_outcome(
    rule: str, baseline: dict[str, float] | None, outcome: Outcome, detail: str
) -> None:
    (result,) = gate.evaluate(gate.parse(rule), METRICS, BaselineFacts(baseline)).rules
    assert result.outcome == outcome
    assert detail in result.message


def test_values_that_only_differ_past_six_digits_are_shown_in_full() -> None:
    (result,) = gate.evaluate(gate.parse("accuracy >= 0.9500001"), METRICS, BaselineFacts()).rules
    assert result.outcome == Outcome.FAILED
    assert "this run 0.95." in result.message and "0.9500001" in result.rule.text


def test_missing_metric_when_nothing_was_logged() -> None:
    (result,) = gate.evaluate(gate.parse("accuracy >= 0.9"), {}, BaselineFacts()).rules
    assert result.failed
    assert "It logged no numeric metadata at all." in result.message


def test_many_metrics_are_listed_up_to_twenty() -> None:
    metrics = {f"m{i:02}": 1.0 for i in range(30)}
    (result,) = gate.evaluate(gate.parse("x >= 1"), metrics, BaselineFacts()).rules
    assert "m19 and 10 more." in result.message


@pytest.mark.parametrize(
    ("rules", "baseline", "result", "failed_lines"),
    [
        ("accuracy >= 0.9\nloss < 0.3", None, "passed", []),
        # Skipped is not failed, and not plainly passed either.
        ("accuracy >= 0.9\nf1 >= baseline", None, "passed-without-baseline", []),
        ("f1 >= baseline", None, "passed-without-baseline", []),
        ("accuracy >= 0.99\nf1 >= baseline\nnope > 1", BASELINE, "failed", [1, 2, 3]),
        ("accuracy >= 0.9\n# c\nf1 >= baseline - 0.01", BASELINE, "failed", [3]),
    ],
)
def test_overall_result(
    rules: str, baseline: dict[str, float] | None, result: str, failed_lines: list[int]
) -> None:
    judged = gate.evaluate(gate.parse(rules), METRICS, BaselineFacts(baseline))
    assert judged.result == result
    assert [r.rule.line for r in judged.failures] == failed_lines
    message = judged.error_message()
    if failed_lines:
        assert message.startswith(f"The gate failed: {len(failed_lines)} of {len(judged.rules)} rules not met.")
        for line in failed_lines:
            assert f"- line {line}: " in message
    else:
        assert message == ""


def test_error_message_lists_both_values() -> None:
    judged = gate.evaluate(gate.parse("accuracy >= 0.99\nf1 >= baseline - 0.01"), METRICS, BaselineFacts(BASELINE))
    assert judged.error_message() == (
        "The gate failed: 2 of 2 rules not met.\n"
        "- line 1: `accuracy >= 0.99` not met: this run 0.95.\n"
        "- line 2: `f1 >= baseline - 0.01` not met: this run 0.9, baseline 0.92, so the threshold is 0.91."
    )


# The gate fails closed: only a baseline that truly does not exist yet (or
# lacks the metric) may skip a rule on it, and only when the user said so.
NO_BASELINE, UNKNOWN = BaselineFacts(None), BaselineFacts(None, unknown="HTTP 503 after retries")


@pytest.mark.parametrize(
    ("facts", "outcome", "result", "detail"),
    [
        (BaselineFacts(BASELINE), Outcome.PASSED, "passed", "baseline 0.93"),
        (NO_BASELINE, Outcome.SKIPPED, "passed-without-baseline", "there is no baseline yet (on-missing-baseline: pass)"),
        (BaselineFacts(None, missing_passes=False), Outcome.FAILED, "failed", "there is no baseline yet (on-missing-baseline: fail)"),
        (BaselineFacts({"f1": 0.9}), Outcome.SKIPPED, "passed-without-baseline", "the baseline has no `accuracy`"),
        (BaselineFacts({"f1": 0.9}, missing_passes=False), Outcome.FAILED, "failed", "the baseline has no `accuracy`"),
        (UNKNOWN, Outcome.FAILED, "failed", "the baseline could not be determined (HTTP 503 after retries)"),
        (BaselineFacts(None, unknown="x", missing_passes=True), Outcome.FAILED, "failed", "could not be determined"),
    ],
    ids=["found", "none-yet-pass", "none-yet-fail", "lacks-metric-pass", "lacks-metric-fail", "unknown", "unknown-ignores-pass"],
)
def test_a_rule_on_the_baseline_per_baseline_state(facts: BaselineFacts, outcome: Outcome, result: str, detail: str) -> None:
    judged = gate.evaluate(gate.parse("accuracy >= baseline"), METRICS, facts)
    assert (judged.rules[0].outcome, judged.result) == (outcome, result)
    assert detail in judged.rules[0].message


@pytest.mark.parametrize(
    ("op", "direction"), [(">=", 1), (">", 1), ("<=", -1), ("<", -1), ("==", 0), ("!=", 0)]
)
def test_rule_direction(op: str, direction: int) -> None:
    rule: Rule = gate.parse(f"m {op} 1")[0]
    assert rule.direction == direction
