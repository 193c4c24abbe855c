"""Start exactly one run, even when the network fails half-way.

Every trigger carries a key the run can be found by (`RunKey`): without a
`run-name`, a run name in ZenML's own format, which the server keeps unique
(409 for a second run), so it costs no request and leaves nothing behind;
with one (it may hold placeholders), a one-off tag, deleted once the run is
known.

An answer that does not prove the server did nothing (the connection broke
after sending, no answer in time, a 5xx, a proxy's 429, an unreadable answer)
is ambiguous: the key is looked up for a while (the server may create the run
late) before the trigger is sent again. Only ZenML's own refusal proves
nothing happened (4xx with its error shape; after its 429 it deletes the run
it had prepared).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from zenml_action import api, deadline
from zenml_action.client import ZenMLClient, translate
from zenml_action.errors import ActionError, ConnectionFailed, ServerError
from zenml_action.github import Console
from zenml_action.http import Request, Response

MAX_TRIGGERS = 4
# A busy server (ZenML's 429, which carries no Retry-After) is waited out this
# long at most, never past the deadline: a queue of triggers takes a while to drain.
BUSY_SECONDS = 300.0
# How long a run the server may still be creating is looked for before the
# trigger is sent again; with a run name for key, a short look does (sending
# again is safe in itself: the server refuses the name a second time).
SETTLE_SECONDS = 20.0
SETTLE_SECONDS_BY_NAME = 2.0

Outcome = Literal["created", "busy", "refused", "ambiguous"]


@dataclass(frozen=True)
class RunKey:
    run_name: str = ""
    tag: str = ""

    def apply(self, run_configuration: dict[str, Any]) -> dict[str, Any]:
        if self.run_name:
            return {**run_configuration, "run_name": self.run_name}
        return {**run_configuration, "tags": [*(run_configuration.get("tags") or []), self.tag]}

    def lookup(self) -> Request:
        params = {"name": f"equals:{self.run_name}"} if self.run_name else {"tags": self.tag}
        params.update(size="5", hydrate="false")
        return Request("GET", f"{api.API}/runs", params=params, purpose="looking for the run just triggered")

    def matches(self, run: dict[str, Any]) -> bool:
        """Checked on the run itself: a server that ignored the filter must
        not make the action adopt someone else's run."""
        if self.run_name:
            return run.get("name") == self.run_name
        tags = api.dig(run, "resources", "tags") or api.dig(run, "body", "tags") or []
        return self.tag in [t.get("name") for t in tags if isinstance(t, dict)]


def generated_run_name(pipeline_name: str, now: datetime) -> str:
    """ZenML's default run name (`{pipeline_name}-{date}-{time}`), resolved
    here so that the server can hold it unique."""
    return f"{pipeline_name or 'run'}-{now:%Y_%m_%d}-{now:%H_%M_%S_%f}"


def choose_key(user_run_name: str, pipeline_name: str, origin: tuple[str, str, str], now: datetime | None = None) -> RunKey:
    if not user_run_name:
        return RunKey(run_name=generated_run_name(pipeline_name, now or datetime.now(UTC)))
    # `gha-idem-`, a digest of where the action runs (traceable) and randomness (two
    # matrix jobs, same run, attempt and step ID, must not adopt each other's run).
    run_id, attempt, step = origin
    digest = hashlib.sha256(f"{run_id}/{attempt}/{step}".encode()).hexdigest()[:8]
    readable = re.sub(r"[^A-Za-z0-9]+", "-", f"{run_id}-{attempt}")[:24].strip("-")
    return RunKey(tag=f"gha-idem-{readable + '-' if readable else ''}{digest}-{secrets.token_hex(6)}")


def classify(response: Response, earlier_ambiguous: bool, key: RunKey) -> Outcome:
    """What a trigger's answer proves."""
    body = response.json()
    if response.ok:
        return "created" if isinstance(body, dict) and body.get("id") else "ambiguous"
    if response.status == 409 and earlier_ambiguous and key.run_name:
        return "ambiguous"  # the name is taken: most likely by the run sent before
    if response.status == 429:
        # ZenML's own error shape, `{"detail": [ExceptionName, message]}`, or
        # FastAPI's `{"detail": "..."}`: the server answered, not a proxy.
        detail = api.dig(body, "detail")
        pair = isinstance(detail, list) and len(detail) == 2 and all(isinstance(x, str) for x in detail)
        return "busy" if isinstance(detail, str) or pair else "ambiguous"
    if 400 <= response.status < 500 and response.status != 408:
        return "refused"
    return "ambiguous"


def trigger_once(
    client: ZenMLClient, request: Request, key: RunKey, console: Console,
    sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """The created (or adopted) run's body; raises what the user must know."""
    policy, busy_until = client.transport.policy, clock() + min(BUSY_SECONDS, deadline.left())
    busy = triggers = 0
    last_error: ActionError | None = None
    while triggers < MAX_TRIGGERS:
        triggers += 1
        try:
            response = client.response(request)
        except ConnectionFailed as exc:
            if not exc.maybe_sent:
                raise  # never delivered, already retried by the transport
            last_error = exc
        else:
            # A busy answer is not counted: any earlier trigger was ambiguous.
            outcome = classify(response, triggers > 1, key)
            if outcome == "created":
                return dict(response.json())
            if outcome == "refused":
                raise translate(response, request)
            last_error = translate(response, request) if not response.ok else ServerError(
                f"The answer to the trigger was unusable (HTTP {response.status}): a proxy or "
                "load balancer between the runner and the server may have failed."
            )
            if outcome == "busy":
                after = response.headers.get("retry-after", "").strip()
                asked = float(after) if re.fullmatch(r"\d+(\.\d*)?", after) else 0.0
                wait = min(policy.retry_after_max, asked) or policy.backoff_factor * 2 ** min(busy, 5)
                if clock() + wait > busy_until:
                    raise last_error
                if busy == 0:
                    console.warning(f"The server is busy (HTTP {response.status}); trying again.")
                busy += 1
                triggers -= 1  # the server did nothing: not an attempt
                sleep(wait)
                continue
        console.warning(f"The trigger may or may not have reached the server ({last_error}); checking.")
        run = _settle(client, key, sleep, clock)
        if run is not None:
            console.info(f"The server had created the run; using it ({key.run_name or key.tag}).")
            return run
    assert last_error is not None
    raise last_error


def _settle(
    client: ZenMLClient, key: RunKey, sleep: Callable[[float], None], clock: Callable[[], float]
) -> dict[str, Any] | None:
    """Look the key up for a while (the deadline interrupts it)."""
    until = clock() + min(SETTLE_SECONDS_BY_NAME if key.run_name else SETTLE_SECONDS, deadline.left())
    pause = 0.5
    while True:
        try:
            run = find_run(client, key)
        except ActionError as exc:
            # Not knowing is not "absent": triggering again could start a
            # second run, so stop here and say what to check.
            raise ServerError(
                f"The trigger may have started a run, and looking it up failed too ({exc}). "
                f"Check the dashboard for a run named or tagged `{key.run_name or key.tag}` "
                "before re-running this workflow."
            ) from exc
        if run is not None or clock() + pause > until:
            return run
        sleep(pause)
        pause = min(pause * 2, 5.0)


def find_run(client: ZenMLClient, key: RunKey) -> dict[str, Any] | None:
    return next((run for run in api.items(client.call(key.lookup())) if key.matches(run)), None)


def forget_tag(client: ZenMLClient, key: RunKey, console: Console) -> None:
    """Delete the one-off tag once the run is known: every tag is a
    server-wide entity that would otherwise stay in the dashboard's lists."""
    if not key.tag:
        return
    try:
        for tag in api.items(client.call(api.list_tags(key.tag))):
            if tag.get("name") == key.tag and tag.get("id"):
                client.call(api.delete_tag(str(tag["id"])))
    except ActionError as exc:
        console.warning(f"Could not delete the action's one-off tag `{key.tag}` ({exc}); delete it from the dashboard.")
