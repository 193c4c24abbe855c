"""Time for the waiting rules (`runs.Clock`): it moves only when the
code under test sleeps, so an hour's wait runs in milliseconds."""

from __future__ import annotations


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
