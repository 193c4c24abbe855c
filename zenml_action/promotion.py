"""What `promote-to` did, as facts: the step outputs, the `result` JSON and
the report's sentence are all made from one `Promotion` (pure)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from zenml_action.errors import InputError
from zenml_action.github import quoted

# The stages a version can be moved to (ZenML's ModelStages, less `none`
# and `latest`, which no version is moved to).
PROMOTION_STAGES: Final = ("staging", "production", "archived")


@dataclass(frozen=True)
class Promotion:
    """Also `promotion` in the `result` output (schemas/result-v1.json)."""

    stage: str  # the `promote-to` input
    promoted: bool = False  # the version holds `stage` (now, or already did)
    model: str = ""
    version: str = ""  # the version's name (its number unless named)
    version_id: str = ""
    previous_version: str = ""  # the version that held the stage and was archived
    previous_version_id: str = ""
    url: str = ""  # the version's dashboard page, where the server has one
    note: str = ""  # what happened, or why nothing was promoted
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def subject(self) -> str:
        """`breast_cancer_classifier` version 3, or what is known of it."""
        if self.model and self.version:
            return f"`{self.model}` version {self.version}"
        return f"model version {self.version_id}" if self.version_id else "the run's model version"


def not_promoted(stage: str, why: str) -> Promotion:
    return Promotion(stage, note=f"not promoted: {why}")


def outputs(promotion: Promotion | None) -> dict[str, str]:
    """The four outputs; empty strings when `promote-to` is not set."""
    found = promotion or Promotion("")
    return {
        "model-version": found.version,
        "model-version-id": found.version_id,
        "promoted": "" if promotion is None else "true" if found.promoted else "false",
        "previous-model-version": found.previous_version,
    }


# -- the inputs ---------------------------------------------------------------

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def parse_promote_to(raw: str, *, wait: bool, create_snapshot: str, has_server: bool) -> str:
    stage = raw.strip().lower()
    if not stage:
        return ""
    if stage not in PROMOTION_STAGES:
        raise InputError(
            "promote-to", f"{quoted(raw)} is not a stage a model version can be moved to.", f"Use one of {', '.join(PROMOTION_STAGES)}."
        )
    if not has_server:
        raise InputError("promote-to", "needs a ZenML server, which keeps the model versions.", "Set `workspace-url` and `api-key`.")
    if not wait or create_snapshot:
        raise InputError(
            "promote-to",
            "promotes the model version of a finished run, and " + ("`wait` is false." if not wait else "`create-snapshot` runs nothing."),
            "Set `wait: true`, or leave `promote-to` empty.",
        )
    return stage


def parse_run_for_commit(raw: Mapping[str, str], exclusive: Sequence[str]) -> str:
    """`run-for-commit`: the full SHA of a commit whose run to follow."""
    text = raw["run-for-commit"].strip()
    if not text:
        return ""
    if not _SHA.fullmatch(text.lower()):
        raise InputError(
            "run-for-commit",
            f"{quoted(text)} is not a full commit SHA (40 hexadecimal characters).",
            "Give the whole SHA, e.g. `${{ github.event.pull_request.head.sha }}`.",
        )
    for name in exclusive:
        if raw[name].strip():
            raise InputError(
                "run-for-commit",
                f"cannot be combined with `{name}`: it follows the run that exists for the commit.",
                f"Leave `{name}` empty, or `run-for-commit` to name the run another way.",
            )
    return text.lower()
