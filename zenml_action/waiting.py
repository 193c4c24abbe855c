"""Wait for a run to finish: poll its status and back off."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from zenml_action import api
from zenml_action.client import ZenMLClient
from zenml_action.errors import ConnectionFailed, OutOfTime, ServerError
from zenml_action.github import Console
from zenml_action.http import Deadline

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
    if interval < MAX_INTERVAL and interval >= 4 * POLL_MARGIN:
        return interval - POLL_MARGIN
    return interval


@dataclass
class WaitOutcome:
    status: str
    finished: bool


def wait_for_run(
    client: ZenMLClient,
    run_id: str,
    status: str,
    deadline: Deadline,
    first_interval: float,
    console: Console,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitOutcome:
    """Poll until the status is final or the deadline has passed; each poll
    (its retries included) ends by the deadline too."""
    start = clock()
    last_printed = status
    console.info(f"Run status: {status}")
    problems = 0
    polled = start
    while not api.is_finished(status):
        now = clock()
        left = deadline.left()
        if left <= 0:
            return WaitOutcome(status, finished=False)
        # Intervals run from one poll's start to the next, so the time a
        # poll takes does not delay noticing that the run finished.
        due = polled + next_interval(first_interval, now - start)
        sleep(max(0.0, min(due - now, left)))
        polled = clock()
        try:
            status = api.decode_status(client.call(api.run_status(run_id))) or status
            problems = 0
        except OutOfTime:
            return WaitOutcome(status, finished=False)
        except (ConnectionFailed, ServerError) as exc:
            # A restarting server or a flaky proxy should not end a long wait.
            problems += 1
            if problems == 1:
                console.warning(f"Could not read the run's status, will keep trying: {exc}")
            continue
        if status != last_printed:
            elapsed = int(clock() - start)
            console.info(f"Run status: {status} (after {elapsed}s)")
            last_printed = status
    return WaitOutcome(status, finished=True)
