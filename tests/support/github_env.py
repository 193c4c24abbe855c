"""The variables a GitHub runner sets that say where a workflow run came
from: a push to a branch, or a pull request (its merge ref and its head
branch). The action records them on each run it starts as `github.*` run
metadata, and finds baselines by them."""

from __future__ import annotations

SHA = "0123456789abcdef0123456789abcdef01234567"
ACTOR = "octocat"


def github_env(repository: str, ref: str, head_ref: str = "") -> dict[str, str]:
    """`ref` such as `refs/heads/main` (a push) or `refs/pull/7/merge` with
    `head_ref` the pull request's branch. The workflow run's ID is the one
    `support.action.ActionRunner` sets (4242)."""
    return {
        "GITHUB_REPOSITORY": repository,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_SHA": SHA,
        "GITHUB_REF": ref,
        "GITHUB_HEAD_REF": head_ref,
        "GITHUB_REF_NAME": ref.rsplit("/", 1)[-1],
        "GITHUB_EVENT_NAME": "pull_request" if head_ref else "push",
        "GITHUB_ACTOR": ACTOR,
    }
