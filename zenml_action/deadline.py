"""The action's one deadline, and the runner's cancel, as exceptions.

`timeout` is a SIGALRM timer set once in `main`; a cancel is a signal (the
runner sends SIGINT, SIGTERM 7.5 s later, SIGKILL at 10 s). A signal
interrupts any blocking call (a socket read, a sleep, the wait for a child:
PEP 475) to run a handler that raises in the main thread: no phase can overrun
`timeout`, and no timeout is threaded through. Both are `BaseException`s, which
no `except Exception` swallows; what the user must still get (the stop of the
run, the outputs, the summary) runs in `grace()`, bounded by GRACE_SECONDS.
Limit: a host name lookup blocks in C (getaddrinfo) until it returns.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import ClassVar

# After a timeout or a cancel: stopping the run, then writing the outputs
# and the summary. The runner sends SIGTERM 7.5 s after SIGINT; docs/reliability.md
# promises the action ends within 5 s of a cancel.
GRACE_SECONDS = 4.0

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    title: ClassVar[str] = "Interrupted"
    conclusion: ClassVar[str] = "cancelled"


class Cancelled(Interrupted):
    title = "Cancelled"


class TimedOut(Interrupted):
    title = "Timed out"
    conclusion = "timeout"


@dataclass
class _Clock:
    """What the handlers need: one per process, since signals are."""

    seconds: float = math.inf
    at: float = math.inf
    phase: str = "starting"
    pending: list[int] = field(default_factory=list)


_clock = _Clock()


def entering(phase: str) -> None:
    """Name what the action does now ("waiting for the run"): the message
    says where the time ran out or the cancel came."""
    _clock.phase = phase


def left() -> float:
    """Seconds until the deadline (infinite without one)."""
    return max(0.0, _clock.at - time.monotonic())


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise TimedOut(
        f"`timeout` ({_clock.seconds:g}s) ran out while {_clock.phase}. Raise `timeout`, "
        "or set `wait: false` to return as soon as the run starts."
    )


def _on_cancel(signum: int, frame: FrameType | None) -> None:
    raise Cancelled(f"The workflow was cancelled ({signal.Signals(signum).name}) while {_clock.phase}.")


def _arm(seconds: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001) if math.isfinite(seconds) else 0.0)


def start(seconds: float) -> None:
    """Set the deadline `seconds` from now (`math.inf`: none), within `bounded`."""
    _clock.seconds, _clock.at = seconds, time.monotonic() + seconds
    _arm(seconds)


@contextmanager
def bounded(seconds: float = math.inf) -> Iterator[None]:
    """Within the block, a cancel raises `Cancelled` and, `seconds` from
    now (or from `start`), `TimedOut` is raised. Main thread only."""
    _clock.phase, _clock.pending = "starting", []
    previous = {sig: signal.signal(sig, _on_cancel) for sig in _SIGNALS}
    previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, _on_alarm)
    start(seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _clock.at = math.inf
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def grace() -> Iterator[None]:
    """The one grace period after a timeout or cancel: the block gets
    GRACE_SECONDS (then `TimedOut`); a further cancel raises `Cancelled` at
    once. What the block raises is the caller's to handle."""
    _arm(GRACE_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


@contextmanager
def deferred() -> Iterator[list[int]]:
    """Signals arriving within the block are noted, not raised: writing the
    outputs and the summary is not cut in half. The list says which came."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    previous = {
        sig: signal.signal(sig, lambda signum, frame: _clock.pending.append(signum))
        for sig in (*_SIGNALS, signal.SIGALRM)
    }
    try:
        yield _clock.pending
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
