"""`promote-to`, pure: what it did, as facts (the step outputs, the
`result` JSON and the report's sentence are all made from one `Promotion`),
its inputs, and the model version requests `promote.py` sends and the
answers decoded (as api.py does)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

from zenml_action.api import API, cloud_dashboard, dig, items, newest_first
from zenml_action.errors import InputError
from zenml_action.github import quoted
from zenml_action.http import Request
from zenml_action.provenance import metadata_filter

# The stages a version can be moved to (ZenML's ModelStages, less `none`
# and `latest`, which no version is moved to).
PROMOTION_STAGES: Final = ("staging", "production", "archived")


@dataclass(frozen=True)
class Promotion:
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

    @property
    def subject(self) -> str:
        """`breast_cancer_classifier` version 3, or what is known of it."""
        if self.model and self.version:
            return f"`{self.model}` version {self.version}"
        return f"model version {self.version_id}" if self.version_id else "the run's model version"


def not_promoted(stage: str, why: str) -> Promotion:
    return Promotion(stage, note=f"not promoted: {why}")


def outputs(promotion: Promotion | None) -> dict[str, str]:
    found = promotion or Promotion("")
    return {
        "model-version": found.version, "model-version-id": found.version_id,
        "promoted": "" if promotion is None else "true" if found.promoted else "false",
        "previous-model-version": found.previous_version,
    }


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
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", text.lower()):
        raise InputError(
            "run-for-commit", f"{quoted(text)} is not a full commit SHA (40 hexadecimal characters).",
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


# -- model versions over REST -------------------------------------------------

# More versions than this in one stage at once is not a race between two
# promotions: the settling reads this many.
MAX_HOLDERS = 20
# A run records the commit it was made from (`github.sha`) and, for a pull
# request, the pull request's head commit (`github.head_sha`): either finds it.
COMMIT_KEYS = ("github.head_sha", "github.sha")
# The holder's archiving and the new version's stage change are one
# transaction on the server: their times are microseconds apart.
SAME_CHANGE = timedelta(seconds=2)


@dataclass(frozen=True)
class Version:
    id: str
    model: str  # the model's name
    model_id: str
    name: str  # the version's name (its number, unless named)
    stage: str  # "" for none
    updated: str  # ISO time of the last change, as the server wrote it
    project_id: str

    def describe(self) -> str:
        return f"`{self.model}` version {self.name}"


def decode_version(body: Any) -> Version | None:
    """A model version as the server answers it (0.85 to 0.98), or None."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
        return None
    inner, name = body.get("body"), body.get("name")
    model, number = dig(inner, "model"), dig(inner, "number")
    return Version(
        id=body["id"], model=str(dig(model, "name") or ""), model_id=str(dig(model, "id") or ""),
        name=str(name if isinstance(name, str) and name else number if number is not None else "?"),
        stage=str(dig(inner, "stage") or ""),
        updated=str(dig(inner, "updated") or dig(inner, "created") or ""),
        project_id=str(dig(inner, "project_id") or dig(model, "body", "project_id") or ""),
    )


def decode_versions(body: Any) -> list[Version]:
    return [version for version in map(decode_version, items(body)) if version is not None]


def linked_version_id(run: Any) -> str:
    """The model version a hydrated run is linked to (the pipeline's `model=`)."""
    return str(dig(run, "resources", "model_version", "id") or dig(run, "body", "model_version_id") or "")


def linked_versions(body: Any) -> list[str]:
    """The distinct model version IDs of run links (a step's `model=` links its version too)."""
    found = (dig(link, "body", "model_version") for link in items(body))
    return list(dict.fromkeys(v for v in found if isinstance(v, str) and v))


def run_links(run_id: str) -> Request:
    params = {"pipeline_run_id": run_id, "size": "10"}
    return Request("GET", f"{API}/model_version_pipeline_runs", params=params, purpose="reading the run's model versions")


def get_version(version_id: str) -> Request:
    purpose = "reading the model version"
    return Request("GET", f"{API}/model_versions/{version_id}", params={"hydrate": "false"}, purpose=purpose)


def versions_in_stage(model_id: str, stage: str) -> Request:
    # The last changed first: the holder a stage change just archived is
    # among them, however old the version.
    params = {**newest_first(MAX_HOLDERS, model=model_id, stage=stage), "sort_by": "desc:updated"}
    return Request("GET", f"{API}/model_versions", params=params, purpose=f"reading which model version is in `{stage}`")


def set_stage(version_id: str, stage: str) -> Request:
    """Move the version to `stage`, archiving the one that held it (`force`,
    0.85 on). Safe to repeat, so retried like a read: it changes nothing."""
    json = {"stage": stage, "force": True}
    purpose = f"moving the model version to `{stage}`"
    return Request("PUT", f"{API}/model_versions/{version_id}", json=json, purpose=purpose, retry="read")


def runs_for_commit(key: str, sha: str) -> Request:
    """The newest completed runs the action recorded with `key` = `sha` (hydrated: the repository)."""
    params = newest_first(10, run_metadata=metadata_filter(key, sha), status="completed", hydrate="true")
    return Request("GET", f"{API}/runs", params=params, purpose="looking for the commit's run")


def newest_for_repository(pages: list[Any], repository: str) -> dict[str, Any] | None:
    """The newest listed run recorded in `repository` (any, outside a workflow)."""
    runs = [run for body in pages for run in items(body)]
    mine = [run for run in runs if not repository or dig(run, "metadata", "run_metadata", "github.repository") == repository]
    return max(mine, key=lambda run: str(dig(run, "body", "created") or ""), default=None)


def holder_order(version: Version) -> tuple[str, str]:
    """Of versions left in one stage by promotions at the same moment, the
    last changed stays; the ID breaks a tie, so every action agrees."""
    return (version.updated, version.id)


def model_configured(snapshot: Any) -> bool | None:
    """Does a hydrated snapshot's configuration name a model, for the
    pipeline or a step? None when the answer has no configuration to tell."""
    metadata = dig(snapshot, "metadata")
    pipeline, steps = dig(metadata, "pipeline_configuration"), dig(metadata, "step_configurations")
    if not isinstance(pipeline, dict):
        return None
    named = isinstance(steps, dict) and any(dig(step, "config", "model", "name") for step in steps.values())
    return bool(dig(pipeline, "model", "name")) or named


def dashboard_url(info: Any, version: Version) -> str:
    """The version's page in ZenML Pro's dashboard ("" elsewhere: the
    open-source dashboard has none), as ZenML's `get_model_version_url`."""
    dashboard = cloud_dashboard(info)
    if not dashboard or not version.project_id:
        return ""
    return f"{dashboard}/projects/{quote(version.project_id, safe='')}/model-versions/{quote(version.id, safe='')}"


def archived_with(ours: Version, archived: list[Version]) -> Version | None:
    """The version `ours`'s stage change archived (None if none): of those
    in `archived`, the one archived last within SAME_CHANGE before it moved."""
    moved = _moment(ours.updated)
    if moved is None:
        return None
    close = [v for v in archived if v.id != ours.id and (t := _moment(v.updated)) is not None and moved - SAME_CHANGE <= t <= moved]
    return max(close, key=holder_order, default=None)


def _moment(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
