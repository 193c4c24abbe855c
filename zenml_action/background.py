"""Work beside the main thread (the login beside `/info`, the GitHub context)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


class Background(Generic[T]):
    """`function(*args)` in a daemon thread; `result()` waits and returns
    or raises its outcome. Daemon: no exit path ever waits for it (an
    executor's threads are joined at exit, so a cancel would wait on them);
    the wait in `result()` is interrupted by the deadline and a cancel."""

    def __init__(self, function: Callable[..., T], *args: Any) -> None:
        self._outcome: tuple[T | None, BaseException | None] = (None, None)
        self._thread = threading.Thread(target=self._work, args=(function, *args), daemon=True)
        self._thread.start()

    def _work(self, function: Callable[..., T], *args: Any) -> None:
        try:
            self._outcome = (function(*args), None)
        except BaseException as exc:  # handed to whoever reads the result
            self._outcome = (None, exc)

    def result(self) -> T:
        self._thread.join()
        if self._outcome[1] is not None:
            raise self._outcome[1]
        return cast(T, self._outcome[0])
