"""The `gate` input: rules a finished run's metrics must meet, one a line
as GRAMMAR says (METRIC names nested metadata keys joined with `.`, as in
the `metrics` output), with blank lines and `#` comments. The rules are read
by the small grammar below, never evaluated as code."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from zenml_action.errors import InputError
from zenml_action.github import quoted

OPERATORS: Final = (">=", ">", "<=", "<", "==", "!=")

_METRIC = r"[A-Za-z0-9_./\-]+"
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"  # ASCII digits only
# Longest operators first, so that `>=` is not read as `>` then `=`.
_RULE = re.compile(rf"(?P<metric>{_METRIC})\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>.*)")
_ABSOLUTE = re.compile(rf"(?P<sign>[+-]?)\s*(?P<number>{_NUMBER})")
_RELATIVE = re.compile(rf"baseline(?:\s*(?P<sign>[+-])\s*(?P<number>{_NUMBER}))?")
# What a user may have meant as an operator, to name it in the error.
_OPERATOR_LIKE = re.compile(r"[<>=!]+|[^\sA-Za-z0-9_./\-]")

GRAMMAR: Final = (
    "Write one rule a line as `METRIC OP VALUE`: METRIC made of letters, digits, `_`, `.`, `-`, `/`; "
    "OP one of >= > <= < == !=; VALUE a number, `baseline`, `baseline + N` or `baseline - N`. "
    "For example `accuracy >= 0.9` or `f1 >= baseline - 0.01`."
)

# Two values this close are equal for every operator: `baseline + 0.01`
# is computed in binary floating point (0.93 + 0.01 = 0.9400000000000001),
# and a metric that equals its threshold must meet `>=` and fail `>`.
REL_TOLERANCE: Final = 1e-9
ABS_TOLERANCE: Final = 1e-12


@dataclass(frozen=True)
class Rule:
    metric: str
    op: str
    value: float  # the number itself, or the offset added to the baseline's value
    relative: bool  # True: VALUE is `baseline` (+/- value)
    line: int  # 1-based line of the `gate` input
    text: str  # the rule as written, without its comment

    @property
    def direction(self) -> int:
        """+1 when the rule wants the metric high, -1 when low, 0 neither."""
        return {">=": 1, ">": 1, "<=": -1, "<": -1}.get(self.op, 0)


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"  # on `baseline` without a baseline value
    MISSING = "missing"  # the run did not log the metric: counts as failed


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    outcome: Outcome
    actual: float | None = None  # this run's value
    baseline: float | None = None  # the baseline's value, if the rule uses it
    threshold: float | None = None  # what `actual` was compared with
    # The values compared ("this run 0.9, baseline 0.92, ..."), or why the
    # rule was skipped or could not be checked.
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.FAILED, Outcome.MISSING)

    @property
    def message(self) -> str:
        said = {Outcome.PASSED: ": passed ({})", Outcome.FAILED: " not met: {}"}.get(self.outcome, ": {}")
        return f"`{self.rule.text}`{said.format(self.detail)}."


@dataclass(frozen=True)
class GateResult:
    rules: tuple[RuleResult, ...]

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.rules if r.failed)

    @property
    def result(self) -> str:
        """The `gate-result` output: `failed`, `passed`, or
        `passed-without-baseline` when rules on `baseline` were skipped
        because no baseline exists yet (`on-missing-baseline: pass`): a
        check for `passed` does not take that for a pass."""
        if self.failures:
            return "failed"
        return "passed-without-baseline" if any(r.outcome == Outcome.SKIPPED for r in self.rules) else "passed"

    def error_message(self) -> str:
        """One message for the `::error`, each failed rule with its values."""
        if not (failures := self.failures):
            return ""
        lines = [f"- line {r.rule.line}: {r.message}" for r in failures]
        return "\n".join([f"The gate failed: {len(failures)} of {len(self.rules)} rules not met.", *lines])


def parse(text: str) -> tuple[Rule, ...]:
    """The rules of the `gate` input, in order; raises `InputError` naming
    the first malformed line."""
    # No METRIC or VALUE holds `#`, so everything after one is a comment.
    lines = (raw.split("#", 1)[0].strip() for raw in text.splitlines())
    return tuple(_parse_line(line, number) for number, line in enumerate(lines, start=1) if line)


def _parse_line(line: str, number: int) -> Rule:
    match = _RULE.fullmatch(line)
    if not match:
        raise _malformed(number, line, _why_not_a_rule(line))
    metric, op, value_text = match["metric"], match["op"], match["value"].strip()
    if not value_text:
        raise _malformed(number, line, f"there is no value after `{op}`.")
    if value_text[0] in "<>=!":
        raise _malformed(number, line, f"`{op}{value_text[0]}` is not an operator.")
    relative = _RELATIVE.fullmatch(value_text)
    found = _ABSOLUTE.fullmatch(value_text) or relative
    if not found:
        problem = "is not a value: use a number, `baseline`, `baseline + N` or `baseline - N`."
        raise _malformed(number, line, f"{quoted(value_text)} {problem}")
    # `baseline` alone has no number: an offset of 0.
    value = float(found["number"] or 0) * (-1 if found["sign"] == "-" else 1)
    if not math.isfinite(value):
        raise _malformed(number, line, f"{quoted(value_text)} is too large a number.")
    return Rule(metric, op, value, relative is not None, number, line)


def _why_not_a_rule(line: str) -> str:
    head = re.match(_METRIC, line)
    if not head:
        return "it does not start with a metric name."
    rest = line[head.end() :].lstrip()
    if not rest:
        return "there is no operator and no value."
    if rest[0].isalnum() or rest[0] in "_./-":
        if any(op in rest for op in OPERATORS):
            # `val accuracy >= 0.9`: white space inside the name.
            return f"{quoted(line[: head.end()] + ' ' + rest.split()[0])} is not a metric name (no spaces allowed)."
        return f"there is no operator after {quoted(line[: head.end()])} (use one of {' '.join(OPERATORS)})."
    found = _OPERATOR_LIKE.match(rest)
    shown = found.group(0) if found else rest[:1]
    return f"{quoted(shown)} is not an operator (use one of {' '.join(OPERATORS)})."


def _malformed(number: int, line: str, problem: str) -> InputError:
    return InputError("gate", f"line {number} ({quoted(line)}): {problem}", GRAMMAR)


@dataclass(frozen=True)
class BaselineFacts:
    """What the gate knows of the baseline. Fail closed: a baseline that
    could not be determined (`unknown`: why) fails every rule on it; one that
    does not exist yet, or lacks the metric, fails them unless
    `on-missing-baseline: pass` (`missing_passes`)."""

    metrics: Mapping[str, float] | None = None  # None: no baseline
    unknown: str = ""
    missing_passes: bool = True


def evaluate(rules: tuple[Rule, ...] | list[Rule], metrics: Mapping[str, float], baseline: BaselineFacts) -> GateResult:
    return GateResult(tuple(_evaluate_rule(rule, metrics, baseline) for rule in rules))


def _evaluate_rule(rule: Rule, metrics: Mapping[str, float], facts: BaselineFacts) -> RuleResult:
    if rule.metric not in metrics:
        return RuleResult(rule, Outcome.MISSING, detail=_missing(rule, metrics))
    actual = metrics[rule.metric]
    baseline_value = None
    if rule.relative:
        if facts.unknown:
            return RuleResult(rule, Outcome.FAILED, actual, detail=f"the baseline could not be determined ({facts.unknown})")
        absent = "there is no baseline yet" if facts.metrics is None else f"the baseline has no `{rule.metric}`"
        if facts.metrics is None or rule.metric not in facts.metrics:
            if facts.missing_passes:
                return RuleResult(rule, Outcome.SKIPPED, actual, detail=f"skipped: {absent} (on-missing-baseline: pass)")
            return RuleResult(rule, Outcome.FAILED, actual, detail=f"{absent} (on-missing-baseline: fail)")
        baseline_value = facts.metrics[rule.metric]
    threshold = rule.value if baseline_value is None else baseline_value + rule.value
    passed = compare(actual, rule.op, threshold)
    # Values that read the same at six digits but failed are shown in full.
    shown: Callable[[float], str] = number if passed or number(actual) != number(threshold) else repr
    values = f"this run {shown(actual)}"
    if baseline_value is not None:
        values += f", baseline {shown(baseline_value)}"
        if rule.value:
            values += f", so the threshold is {shown(threshold)}"
    outcome = Outcome.PASSED if passed else Outcome.FAILED
    return RuleResult(rule, outcome, actual, baseline_value, threshold, values)


def compare(actual: float, op: str, threshold: float) -> bool:
    # Equality within REL_TOLERANCE/ABS_TOLERANCE (see there why): floats
    # are never compared with a bare `==`.
    close = math.isclose(actual, threshold, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)
    above, below = not close and actual > threshold, not close and actual < threshold
    return {  # a KeyError on any other operator: the grammar allows none
        "==": close, "!=": not close, ">=": close or above, "<=": close or below, ">": above, "<": below
    }[op]


def _missing(rule: Rule, metrics: Mapping[str, float]) -> str:
    message = f"this run logged no metric `{rule.metric}`."
    if guesses := difflib.get_close_matches(rule.metric, list(metrics), n=3, cutoff=0.6):
        message += " Did you mean " + " or ".join(f"`{g}`" for g in guesses) + "?"
    names = sorted(metrics)
    more = f" and {len(names) - 20} more" if len(names) > 20 else ""
    logged = f"It logged: {', '.join(names[:20])}{more}" if names else "It logged no numeric metadata at all"
    return f"{message} {logged}"


def number(value: float) -> str:  # a metric as people read it
    return f"{value:.6g}"
