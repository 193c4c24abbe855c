"""How a finished run did, as pure values: its metrics next to the
baseline's, the gate's outcome, and the `result` (JSON) that says so."""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from zenml_action.errors import InputError
from zenml_action.gate import GateResult, Rule
from zenml_action.gate import compare as meets
from zenml_action.github import quoted, shorten
from zenml_action.promotion import Promotion
from zenml_action.report import FailureLog, flatten, strict_json
from zenml_action.trend import PastRun, Trend, as_json, charted_metrics, trend, utc

RESULT_SCHEMA: Final = "zenml-action-result/v1"  # schemas/result-v1.json

MODEL_STAGES: Final = ("production", "staging", "archived", "latest")
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
# What git allows in a branch name, less what no one uses on purpose.
_BRANCH = re.compile(r"[A-Za-z0-9._/+\-@]+")
COMPARE_TO_FORMS: Final = (
    "Use a branch name (e.g. `main`), `previous`, a run ID, or `model:NAME@STAGE` "
    f"with STAGE one of {', '.join(MODEL_STAGES)} (e.g. `model:breast_cancer_classifier@production`)."
)


@dataclass(frozen=True)
class CompareTo:
    """The baseline asked for: the newest completed run of the pipeline
    from a `branch` (`value`: the ref, `refs/heads/NAME`) or from the same
    repository (`previous`); the `run` with ID `value`; the newest version
    of `model` `value` in `stage` (`latest`: whatever its stage)."""

    kind: Literal["branch", "previous", "run", "model"]
    value: str = ""
    stage: str = ""


def parse_compare_to(text: str) -> CompareTo | None:
    """The `compare-to` input (None when empty); InputError when malformed.
    A branch called `previous` is written `refs/heads/previous`."""
    text = text.strip()
    if not text:
        return None
    if text == "previous":
        return CompareTo("previous")
    if _UUID.fullmatch(text):
        return CompareTo("run", str(uuid.UUID(text)))
    if text.startswith("model:"):
        name, at, stage = text.removeprefix("model:").rpartition("@")
        if not at or not name.strip():
            problem = f"{quoted(text)} names no model version: write `model:NAME@STAGE`."
            raise InputError("compare-to", problem, COMPARE_TO_FORMS)
        if stage not in MODEL_STAGES:
            fix = f"Use one of {', '.join(MODEL_STAGES)}."
            raise InputError("compare-to", f"{quoted(stage)} is not a model stage.", fix)
        return CompareTo("model", name.strip(), stage)
    if not _BRANCH.fullmatch(text) or ".." in text or text.endswith((".", "/", ".lock")):
        raise InputError("compare-to", f"{quoted(text)} is not a branch name.", COMPARE_TO_FORMS)
    return CompareTo("branch", text if text.startswith("refs/") else f"refs/heads/{text}")


def numeric_metrics(run_metadata: Mapping[str, Any]) -> dict[str, float]:
    """The run's numeric metadata, flat: nested keys joined with `.`.
    Booleans are not metrics, and NaN or infinite values are left out (JSON,
    the `metrics` output's format, cannot write them)."""
    metrics: dict[str, float] = {}
    for name, value in flatten(dict(run_metadata)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        with contextlib.suppress(OverflowError):  # an integer past a float's range
            if math.isfinite(float(value)):
                metrics[name] = float(value)
    return metrics


@dataclass(frozen=True)
class MetricRow:
    metric: str
    this: float | None  # None: only the baseline has it
    baseline: float | None  # None: no baseline, or it lacks the metric
    change: float | None  # this - baseline
    # `better` / `worse` / `same` in the direction of the rules that name
    # the metric; "" when no rule gives a direction (or they disagree).
    verdict: str = ""


def compare(
    this: Mapping[str, float], baseline: Mapping[str, float] | None, rules: Iterable[Rule] = ()
) -> list[MetricRow]:
    """One row per metric of either run, in name order."""
    baseline, rules = baseline or {}, list(rules)
    rows = []
    for metric in sorted(set(this) | set(baseline)):
        value, base = this.get(metric), baseline.get(metric)
        # Rounded to 12 digits: 0.958 - 0.95 is 0.008000000000000007 in binary.
        change = None if value is None or base is None else float(f"{value - base:.12g}")
        verdict = ""
        wanted = {r.direction for r in rules if r.metric == metric and r.direction}
        if change is not None and len(wanted) == 1:
            same = meets(value or 0.0, "==", base or 0.0)
            verdict = "same" if same else "better" if change * wanted.pop() > 0 else "worse"
        rows.append(MetricRow(metric, value, base, change, verdict))
    return rows


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()  # a parameter one of the two runs does not have


@dataclass(frozen=True)
class ParameterDiff:
    name: str  # nested names joined with `.`
    this: Any
    baseline: Any


def differing_parameters(this: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[ParameterDiff]:
    """The parameters (nested keys joined with `.`) whose values differ
    between two runs' configurations, or that only one of them has."""
    mine, theirs = dict(flatten(dict(this))), dict(flatten(dict(baseline)))
    pairs = [ParameterDiff(n, mine.get(n, UNSET), theirs.get(n, UNSET)) for n in sorted(mine | theirs)]
    return [d for d in pairs if UNSET in (d.this, d.baseline) or not same_setting(d.this, d.baseline)]


def same_setting(a: Any, b: Any) -> bool:
    # 1 and 1.0 are the same setting; True and 1 are not. UNSET is only itself.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a is b or bool(a == b)


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str = ""
    url: str = ""
    status: str = ""
    pipeline: str = ""
    duration_seconds: float | None = None
    source: str = ""  # what started it: "NAME (snapshot)", "FILE:FUNCTION (code)"


@dataclass(frozen=True)
class Baseline:
    kind: Literal["run", "model_version"]
    id: str  # the run's ID, or the model version's
    name: str = ""  # the run's name, or "MODEL version N (STAGE)"
    url: str = ""
    created: datetime | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Judgement:
    run: RunInfo
    metrics: Mapping[str, float] = field(default_factory=dict)
    compare_to: str = ""  # the `compare-to` input as given
    baseline: Baseline | None = None
    baseline_note: str = ""  # why there is no baseline
    parameters: Sequence[ParameterDiff] = ()
    parameters_note: str = ""  # why the parameters were not compared
    rules: Sequence[Rule] = ()  # the gate's rules, evaluated or not
    gate: GateResult | None = None  # None: no gate, or not evaluated
    gate_note: str = ""  # why the gate was not evaluated
    failures: Sequence[FailureLog] = ()
    github: Mapping[str, str] = field(default_factory=dict)
    promotion: Promotion | None = None  # `promote-to`, once decided
    # The baseline branch's last completed runs, newest first (`compare-to`
    # a branch or `previous`); None: no trend asked for, or (with
    # `history_note` saying why) the runs could not be listed.
    history: Sequence[PastRun] | None = None
    history_note: str = ""

    @property
    def rows(self) -> list[MetricRow]:
        # No rows when this run logged no metrics (a failed run): a table
        # of the baseline's alone says nothing about it.
        if not self.metrics:
            return []
        return compare(self.metrics, self.baseline.metrics if self.baseline else None, self.rules)

    @property
    def trend(self) -> Trend | None:
        if self.history is None:
            return None
        this = PastRun(self.run.id, self.run.name, None, self.metrics)
        return trend(self.history, this, charted_metrics(self.metrics, [r.metric for r in self.rules]))

    @property
    def gate_result(self) -> str:
        """The `gate-result` output: "" when no gate, or not evaluated."""
        return self.gate.result if self.gate else ""


# A step output is at most 1 MB, and a job's outputs together 50 MB; the
# metadata behind `result` is someone else's and can be any size.
MAX_RESULT_LENGTH: Final = 512 * 1024


def fitted_result(data: dict[str, Any]) -> str:
    """`result` as strict JSON within MAX_RESULT_LENGTH: the long lists
    shortened first, then the long strings; `truncated` names what was."""
    text = strict_json(data)
    cut: list[str] = []
    for key, keep in (("parameters_differ", 50), ("comparison", 200), ("failures", 5), ("metrics", 200)):
        if len(text) <= MAX_RESULT_LENGTH:
            break
        value = data.get(key)
        if not isinstance(value, list | dict) or len(value) <= keep:
            continue
        data[key] = value[:keep] if isinstance(value, list) else dict(sorted(value.items())[:keep])
        cut.append(key)
        data["truncated"] = cut
        text = strict_json(data)
    if len(text) > MAX_RESULT_LENGTH:
        data = _shortened_strings(data, 1000)
        data["truncated"] = [*cut, "strings"]
        text = strict_json(data)
    return text


def _shortened_strings(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return shorten(value, limit)
    if isinstance(value, dict):
        return {k: _shortened_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_shortened_strings(v, limit) for v in value]
    return value


def result(judgement: Judgement, now: datetime) -> dict[str, Any]:
    """The report's facts as data, described by schemas/result-v1.json."""
    baseline = judgement.baseline
    return {
        "schema": RESULT_SCHEMA,
        "run": {key: getattr(judgement.run, key) for key in ("id", "name", "url", "status", "pipeline")},
        "github": dict(judgement.github),
        "metrics": dict(judgement.metrics),
        "compare_to": judgement.compare_to,
        "baseline": None if baseline is None else {
            "kind": baseline.kind, "id": baseline.id, "name": baseline.name, "url": baseline.url,
            "created": utc(baseline.created).isoformat() if baseline.created else None,
            "age_seconds": age_seconds(baseline.created, now), "metrics": dict(baseline.metrics),
        },
        "baseline_note": judgement.baseline_note,
        "comparison": [dict(vars(row)) for row in judgement.rows],  # metric, this, baseline, change, verdict
        # A parameter one run does not have has no key on that side.
        "parameters_differ": [
            {key: value for key, value in vars(p).items() if value is not UNSET} for p in judgement.parameters
        ],
        "gate": {
            "result": judgement.gate_result,
            "note": gate_note(judgement),
            "rules": [
                {"line": r.rule.line, "rule": r.rule.text, "metric": r.rule.metric, "op": r.rule.op,
                 "outcome": r.outcome.value, "this": r.actual, "baseline": r.baseline,
                 "threshold": r.threshold, "detail": r.detail}
                for r in (judgement.gate.rules if judgement.gate else ())
            ],
        },
        "failures": [{**vars(f), "last_lines": list(f.last_lines)} for f in judgement.failures],
        # Added within v1: absent when `promote-to` is not set.
        **({"promotion": asdict(judgement.promotion)} if judgement.promotion else {}),
        "trend": {"note": "", **as_json(found)} if (found := judgement.trend) else (
            {"note": judgement.history_note, "runs": [], "series": []} if judgement.history_note else None
        ),
    }


def age_seconds(created: datetime | None, now: datetime) -> float | None:
    return None if created is None else max(0.0, (now - utc(created)).total_seconds())


def gate_note(judgement: Judgement) -> str:
    if judgement.gate is not None or not judgement.rules:
        return ""
    return judgement.gate_note or "not evaluated: the run did not complete"
