"""Start exactly one run, even when the network fails half-way.

Each trigger carries a unique tag. When a trigger fails ambiguously (the
connection broke after sending, no answer in time, a 502/504 or an unreadable
answer from a proxy), the server may have created the run: look the tag up and
adopt the run if it is there, and only trigger again if it is not. What is
safe to repeat is repeated: a connection refused before sending, and 429/503
(after a 429 the server deletes the run it had prepared).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from zenml_action import api
from zenml_action.client import ZenMLClient, translate
from zenml_action.errors import ActionError, ConnectionFailed, ServerError
from zenml_action.github import Console
from zenml_action.http import Request, Response, backoff, retry_after_seconds

MAX_ATTEMPTS = 6
# A busy server (429/503) is waited out this long (or for `timeout`, if
# shorter): ZenML's 429 carries no Retry-After, and a queue of many triggers
# takes a while to drain.
BUSY_DEADLINE = 300.0
RETRY_STATUSES = frozenset({429, 503})
AMBIGUOUS_STATUSES = frozenset({502, 504})
# Time for a run the server was still creating to become visible.
SETTLE_SECONDS = 1.0


def idempotency_tag(run_id: str, attempt: str, step: str) -> str:
    """`gha-idem-` + a digest of where the action runs + randomness.

    The GitHub part makes the tag traceable; the random part keeps two
    matrix jobs (same run, attempt and step ID) from adopting each other's run.
    """
    origin = f"{run_id}/{attempt}/{step}"
    digest = hashlib.sha256(origin.encode()).hexdigest()[:8]
    readable = re.sub(r"[^A-Za-z0-9]+", "-", f"{run_id}-{attempt}")[:24].strip("-")
    return f"gha-idem-{readable + '-' if readable else ''}{digest}-{secrets.token_hex(6)}"


def with_tag(run_configuration: dict[str, Any], tag: str) -> dict[str, Any]:
    tags = list(run_configuration.get("tags") or [])
    return {**run_configuration, "tags": [*tags, tag]}


def retry_after(response: Response, attempt: int) -> float:
    seconds = retry_after_seconds(response.headers.get("retry-after", ""))
    return backoff(attempt) if seconds is None else seconds


def find_tagged_run(client: ZenMLClient, tag: str) -> dict[str, Any] | None:
    """The run carrying our tag, checked on the run itself: a server that
    ignored the filter must not make us adopt someone else's run."""
    found = api.items(client.call(Request("GET", f"{api.API}/runs", params={"tags": tag, "size": "5"}, purpose="looking for the run just triggered")))
    for run in found:
        names = [t.get("name") for t in (api.dig(run, "resources", "tags") or []) if isinstance(t, dict)]
        if tag in names:
            return run
    return None


def trigger_once(
    client: ZenMLClient,
    request: Request,
    tag: str,
    console: Console,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    busy_deadline: float = BUSY_DEADLINE,
) -> dict[str, Any]:
    last_error: ActionError | None = None
    busy_until = clock() + busy_deadline
    attempt = busy = 0
    while attempt < MAX_ATTEMPTS:
        ambiguous = False
        try:
            response = client.response(request)
        except ConnectionFailed as exc:
            if not exc.maybe_sent:
                last_error = exc
                console.warning(f"Trigger not delivered ({exc}); trying again.")
                sleep(backoff(attempt))
                attempt += 1
                continue
            last_error, ambiguous = exc, True
        else:
            body = response.json()
            if response.ok and isinstance(body, dict) and body.get("id"):
                return body
            if response.status in RETRY_STATUSES:
                last_error = translate(response, request)
                wait = retry_after(response, busy)
                if clock() + wait > busy_until:
                    raise last_error
                if busy == 0:
                    console.warning(f"The server is busy (HTTP {response.status}); trying again.")
                busy += 1
                sleep(wait)
                continue
            if response.ok or response.status in AMBIGUOUS_STATUSES:
                last_error = ServerError(
                    f"The answer to the trigger was unusable (HTTP {response.status}): a proxy "
                    "or load balancer between the runner and the server may have failed."
                )
                ambiguous = True
            else:
                raise translate(response, request)
        if ambiguous:
            console.warning(f"The trigger may or may not have reached the server ({last_error}); checking.")
            sleep(SETTLE_SECONDS)
            run = _lookup(client, tag, console)
            if run is not None:
                console.info(f"The server had created the run; using it (tag {tag}).")
                return run
            sleep(backoff(attempt))
            attempt += 1
    assert last_error is not None
    raise last_error


def _lookup(client: ZenMLClient, tag: str, console: Console) -> dict[str, Any] | None:
    try:
        return find_tagged_run(client, tag)
    except ActionError as exc:
        # Not knowing is not "absent": triggering again could start a second
        # run, so stop here and say what to check.
        raise ServerError(
            f"The trigger may have started a run, and looking it up failed too ({exc}). "
            f"Check the dashboard for a run tagged `{tag}` before re-running this workflow."
        ) from exc
