"""Wait for a run to finish: poll its status and back off.

There is no deadline here: `timeout` is the process's one deadline
(`deadline.py`), which interrupts the wait wherever it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from zenml_action import api, deadline
from zenml_action.client import ZenMLClient
from zenml_action.errors import ConnectionFailed, ServerError
from zenml_action.github import Console
from zenml_action.questions import pending_condition_id

MAX_INTERVAL = 30.0
# Notice a finished run within max(interval, 10% of the time waited so far).
BACKOFF_SHARE = 0.1
# Below the 30 s cap, poll this much early, so that a poll's round trip and
# the action's exit still fit within the interval.
POLL_MARGIN = 0.5


def next_interval(first: float, waited: float) -> float:
    """Start at `first`, grow with the time waited, level off at 30 s (or at
    `first` when the user asked for slower polling)."""
    interval = max(first, min(MAX_INTERVAL, waited * BACKOFF_SHARE))
    return interval - POLL_MARGIN if 4 * POLL_MARGIN <= interval < MAX_INTERVAL else interval


class Clock(Protocol):
    """Time as the wait sees it (a fake one in the polling-rule tests)."""

    def __call__(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class _Monotonic:
    __call__ = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


@dataclass(frozen=True)
class Polling:
    """How the wait keeps time, and what it does after each status read:
    `after_each(run_finished)` shows the steps' progress (progress.Watcher.poll)."""

    clock: Clock = field(default_factory=_Monotonic)
    after_each: Callable[[bool], None] | None = None


def wait_for_run(
    client: ZenMLClient, run_id: str, status: str, first_interval: float, console: Console, polling: Polling = Polling()
) -> Iterator[tuple[str, str]]:
    """Poll until the status is final or the run asks a question, yielding
    each new status and the ID of the question asked ("" when none) as they
    are noticed (the report always holds the latest, even when the deadline
    interrupts the wait). A run that asks, whether still `running` (its
    orchestrator polls for the answer) or `paused`, ends the wait: nobody
    can answer while the action waits."""
    clock = polling.clock
    start = polled = clock()
    console.info(f"Run status: {status}")
    deadline.entering(f"waiting for run {run_id} (still `{status}`)")
    problems = 0
    while not api.is_finished(status):
        now = clock()
        # Intervals run from one poll's start to the next, so the time a
        # poll takes does not delay noticing that the run finished.
        clock.sleep(max(0.0, polled + next_interval(first_interval, now - start) - now))
        polled = clock()
        try:
            body = client.call(api.get_run(run_id))
            polled_status, asking = api.decode_status(body) or status, pending_condition_id(body)
            problems = 0
        except (ConnectionFailed, ServerError) as exc:
            # A restarting server or a flaky proxy should not end a long wait.
            problems += 1
            if problems == 1:
                console.warning(f"Could not read the run's status, will keep trying: {exc}")
            continue
        if polling.after_each is not None:
            polling.after_each(api.is_finished(polled_status))
        if asking:
            yield polled_status, asking
            return
        if polled_status != status:
            status = polled_status
            yield status, ""
            console.info(f"Run status: {status} (after {int(clock() - start)}s)")
            deadline.entering(f"waiting for run {run_id} (still `{status}`)")
