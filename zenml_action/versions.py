"""What a ZenML server offers, from the version its `/api/v1/info` states:
read once per run, then the resolver, the parameter checks and code mode use
that version's endpoints and shapes without probing (`zenml-server-versions.md`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from zenml_action.errors import UnsupportedServer

Release = tuple[int, int, int]

MINIMUM: Release = (0, 85, 0)
# The newest release series the tests run against (docs/versions.md).
NEWEST_TESTED: Release = (0, 98, 0)

# "0.93.1.dev20260129", "0.98.0rc1", "v0.98.0", a Pro build's "0.91.2+pro.7":
# the leading release numbers are what counts.
_RELEASE = re.compile(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?")


def show(release: Release) -> str:
    return ".".join(str(part) for part in release)


def series(release: Release) -> str:
    return f"{release[0]}.{release[1]}"


def parse_release(raw: str) -> Release | None:
    match = _RELEASE.match(raw or "")
    return (int(match[1]), int(match[2]), int(match[3] or 0)) if match else None


@dataclass(frozen=True)
class ServerVersion:
    """A server's version as stated (`raw`) and as used (`release`)."""

    raw: str
    release: Release

    @property
    def has_snapshots(self) -> bool:
        return self.release >= (0, 90, 0)  # before: run templates made from deployments

    @property
    def has_log_entries(self) -> bool:
        # `GET /logs/{id}/entries` (pages, cursors); before: `GET /steps/{id}/logs`.
        return self.release >= (0, 97, 0)


NEWEST = ServerVersion(show(NEWEST_TESTED), NEWEST_TESTED)


def server_version(info: Any) -> tuple[ServerVersion, str]:
    """The version to use for a server's `/info` answer, and a notice line
    for the log when it is not used as stated ("" otherwise)."""
    raw = str(info.get("version") or "").strip() if isinstance(info, dict) else ""
    release = parse_release(raw)
    if release is None:
        return NEWEST, (
            f"The server's version {('`' + raw + '`') if raw else 'is not stated; it'} could not be read; "
            f"it is used as ZenML {series(NEWEST_TESTED)}, the newest version this action is tested with."
        )
    if release < MINIMUM:
        raise UnsupportedServer(
            f"The server runs ZenML {raw}; this action needs ZenML {show(MINIMUM)} or newer. "
            f"Upgrade the server to {show(MINIMUM)} or later (tested up to {series(NEWEST_TESTED)})."
        )
    if release[:2] > NEWEST_TESTED[:2]:
        return ServerVersion(raw, NEWEST_TESTED), (
            f"The server runs ZenML {raw}, newer than the newest version this action is tested with "
            f"({series(NEWEST_TESTED)}); it is used as {series(NEWEST_TESTED)}."
        )
    return ServerVersion(raw, release), ""


def stated(info: Any) -> ServerVersion | None:
    """The version an `/info` answer states, for what only adapts to it
    (None when it states none that can be read); never an error."""
    raw = str(info.get("version") or "").strip() if isinstance(info, dict) else ""
    release = parse_release(raw)
    return ServerVersion(raw, min(release, NEWEST_TESTED)) if release else None
