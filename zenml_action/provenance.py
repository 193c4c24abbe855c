"""Where a run came from, recorded on it as run metadata, and the runs
that may be a baseline found again by it (`evaluation.py`).

The action tags nothing: it attaches the GitHub context as run metadata
(one request) and finds runs again with the `run_metadata` filter, which
every server version the action supports (0.85 on) has.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from zenml_action.api import API, dig, items, newest_first, run_metadata, text_metadata
from zenml_action.http import Request
from zenml_action.trend import MAX_HISTORY

_PULL_REQUEST_REF = re.compile(r"refs/pull/(\d+)/(?:merge|head)")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

# The one key the baseline is found by, written by the action alone after the pipeline ran (`runs.follow`):
# `REPOSITORY@refs/heads/BRANCH` for a push to, or a dispatch or schedule on, that branch; "-" for any other
# event. A pull request's run is never a baseline, even under `pull_request_target` or `workflow_run`
# (GITHUB_REF is the base branch, the code may be a fork's). Metadata shows the latest write: the action's
# record overrides a pipeline's.
BASELINE_KEY = "zenml_action.baseline_of"
BASELINE_EVENTS = frozenset({"push", "workflow_dispatch", "schedule"})


def baseline_of(repository: str, ref: str, event: str) -> str:
    if repository and ref.startswith("refs/heads/") and event in BASELINE_EVENTS:
        return f"{repository}@{ref}"
    return "-"


def github_context(environ: Mapping[str, str]) -> dict[str, str]:
    """Where the run came from, as run metadata: keys grouped under
    `github.` (ZenML refuses `:` in a key), only those the runner set."""
    env = defaultdict(str, {name: value.strip() for name, value in environ.items()})
    ref, repository, run_id = env["GITHUB_REF"], env["GITHUB_REPOSITORY"], env["GITHUB_RUN_ID"]
    pull = _PULL_REQUEST_REF.fullmatch(ref)
    server = env["GITHUB_SERVER_URL"].rstrip("/")
    web = server.startswith(("https://", "http://")) and repository and run_id.isdigit()
    values = {
        "github.repository": repository,
        "github.sha": env["GITHUB_SHA"],
        "github.ref": ref,
        # A pull request's own branch is GITHUB_HEAD_REF; GITHUB_REF_NAME is then `N/merge`.
        "github.branch": env["GITHUB_HEAD_REF"]
        or (env["GITHUB_REF_NAME"] if ref.startswith("refs/heads/") else ""),
        "github.event": env["GITHUB_EVENT_NAME"],
        "github.pull_request": pull.group(1) if pull else "",
        # A pull request's run is made from a merge commit (GITHUB_SHA);
        # its head commit is what `run-for-commit` is given after the merge.
        "github.head_sha": pull_request_head(env["GITHUB_EVENT_PATH"]) if pull else "",
        "github.actor": env["GITHUB_ACTOR"],
        "github.workflow_run_url": f"{server}/{repository}/actions/runs/{run_id}" if web else "",
        # Outside a workflow (no repository) nothing could find the run by it.
        BASELINE_KEY: baseline_of(repository, ref, env["GITHUB_EVENT_NAME"]) if repository else "",
    }
    return {key: value for key, value in values.items() if value}


def pull_request_head(event_path: str) -> str:
    """`pull_request.head.sha` from the event's payload (the file the runner
    names in GITHUB_EVENT_PATH), or "" where there is none to read."""
    try:
        with open(event_path, "rb") as payload:
            head = dig(json.loads(payload.read(16 * 2**20)), "pull_request", "head", "sha")
    except (OSError, ValueError, RecursionError):
        return ""
    return head if isinstance(head, str) and _SHA.fullmatch(head) else ""


def metadata_filter(key: str, value: str) -> str:
    """A `run_metadata` filter for key == value. The server splits it at
    the first `:` and reads a leading `OP:` of the value as an operator, so
    a value with a colon is given with an explicit `equals:`."""
    if ":" in key:
        raise ValueError(f"a metadata key cannot contain ':' ({key!r})")
    return f"{key}:equals:{value}" if ":" in value else f"{key}:{value}"


def attach_run_metadata(project_id: str, run_id: str, values: Mapping[str, str]) -> Request:
    return text_metadata(project_id, run_id, "pipeline_run", values, "attaching the GitHub context to the run")


def list_baseline_runs(baseline_of: str, pipeline_id: str, *, any_branch: bool = False) -> Request:
    """The newest completed runs of the pipeline recorded as a baseline of `baseline_of` (`REPOSITORY@REF`;
    with `any_branch`, `REPOSITORY@` of any branch), filtered on the server. Hydrated: the metadata of the
    chosen one and the trend's values (`trend.py`) come in this one request. One more than the trend's runs:
    the run being judged may be among them."""
    wanted = f"{BASELINE_KEY}:startswith:{baseline_of}" if any_branch else metadata_filter(BASELINE_KEY, baseline_of)
    params = newest_first(MAX_HISTORY + 1, run_metadata=wanted, pipeline_id=pipeline_id, status="completed")
    return Request("GET", f"{API}/runs", params={**params, "hydrate": "true"}, purpose="looking for the baseline run")


def decode_baseline_run(body: Any, baseline_of: str, *, exclude_run_id: str, any_branch: bool = False) -> tuple[dict[str, Any] | None, int]:
    """The newest listed run, other than the one being judged, whose latest
    record still names `baseline_of`; and how many listed runs were refused
    as their latest record says otherwise (the action overwrote a pipeline's)."""
    others = [run for run in items(body) if str(run.get("id")) != exclude_run_id]
    recorded = [n for n, run in enumerate(others) if _recorded(run, baseline_of, any_branch)]
    return (others[recorded[0]], recorded[0]) if recorded else (None, len(others))


def recorded_runs(body: Any, baseline_of: str, *, exclude_run_id: str, any_branch: bool = False) -> list[dict[str, Any]]:
    """The listed runs (newest first) other than the one being judged whose
    record as the action last wrote it names `baseline_of`: the trend's."""
    return [run for run in items(body) if str(run.get("id")) != exclude_run_id and _recorded(run, baseline_of, any_branch)]


def _recorded(run: Mapping[str, Any], baseline_of: str, any_branch: bool) -> bool:
    record = run_metadata(run).get(BASELINE_KEY)
    return isinstance(record, str) and (record.startswith(baseline_of) if any_branch else record == baseline_of)
