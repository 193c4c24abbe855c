"""The speed rules that are not a race between contenders (bench/ races them):

- a finished run is noticed within max(5 s, 10% of the time waited);
- after 5 minutes of waiting, at most 2 requests a minute;
- the server-side path never imports `zenml` (about 3 s to import).

The waiting rules run in-process through the real `wait_for_run` loop on a
fake clock (an hour of waiting in milliseconds), and once for real: a run
finished over REST 3 s into the wait. The import rule runs the action in a
subprocess against the real test server with `-X importtime`
(`PYTHONPROFILEIMPORTTIME=1`), which lists every module the process imports.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
from support.action import ActionResult, ActionRunner
from support.fake_clock import FakeClock
from support.orchestrator import STEPS, complete_run, find_run

from zenml_action.github import Console
from zenml_action.http import Request
from zenml_action.runs import Polling, wait_for_run

HOUR = 3600.0
POLL_SECONDS = 0.05  # a status poll's round trip on the test server


def notice_target(waited: float) -> float:
    return max(5.0, 0.1 * waited)


class HourOver(Exception):
    """The fake clock's stand-in for the action's deadline (a real alarm)."""


class StatusServer:
    """Answers status polls: `running` until `finishes_at` (None: never,
    and the wait ends after an hour)."""

    def __init__(self, clock: FakeClock, finishes_at: float | None) -> None:
        self.clock = clock
        self.finishes_at = finishes_at
        self.polls: list[float] = []  # when each poll was answered

    def call(self, request: Request) -> Any:
        assert request.path == "/api/v1/runs/run-1" and request.params == {"hydrate": "false"}
        if self.finishes_at is None and self.clock.now >= HOUR:
            raise HourOver
        self.clock.sleep(POLL_SECONDS)
        self.polls.append(self.clock.now)
        done = self.finishes_at is not None and self.clock.now >= self.finishes_at
        return {"id": "run-1", "body": {"status": "completed" if done else "running"}, "resources": {}}


def wait(finishes_at: float | None, poll_interval: float = 5.0) -> tuple[StatusServer, float]:
    """The action's wait from the trigger on (default `poll-interval: 5s`);
    returns the fake server and when the wait ended."""
    clock = FakeClock()
    server = StatusServer(clock, finishes_at)
    console = Console(stream=open("/dev/null", "w"), in_github=False)
    # Only the deadline ends the wait for a run that never finishes.
    with pytest.raises(HourOver) if finishes_at is None else contextlib.nullcontext():
        for _ in wait_for_run(server, "run-1", "initializing", poll_interval, console, Polling(clock)):  # type: ignore[arg-type]
            pass
    return server, clock.now


@pytest.mark.offline
@pytest.mark.parametrize("finished_after", [3.0, 40.0, 100.0, 299.0, 301.0, 1000.0, 3000.0])
def test_a_finished_run_is_noticed_within_max_5s_or_10_percent_of_the_wait(finished_after: float) -> None:
    _, ended = wait(finishes_at=finished_after)
    assert ended - finished_after <= notice_target(finished_after)


@pytest.mark.offline
def test_even_a_run_finished_just_after_a_poll_is_noticed_in_time() -> None:
    """The worst moments: just after each poll of an hour's wait."""
    never, _ = wait(finishes_at=None)
    late = []
    for polled in never.polls:
        finished_after = polled + 0.001
        _, ended = wait(finishes_at=finished_after)
        if ended - finished_after > notice_target(finished_after):
            late.append((round(finished_after), round(ended - finished_after, 2)))
    assert late == []


@pytest.mark.offline
@pytest.mark.parametrize("minute", [5, 6, 10, 30, 59])
def test_after_5_minutes_of_waiting_at_most_2_requests_a_minute(minute: int) -> None:
    server, ended = wait(finishes_at=None)
    assert ended >= HOUR - 1
    assert sum(1 for t in server.polls if 60 * minute <= t < 60 * (minute + 1)) <= 2


def test_a_run_finished_3s_into_the_wait_is_noticed_within_5s(action: ActionRunner, zenml: Any, unique_name: str) -> None:
    """For real: default polling, the run's last step reported completed
    over REST about 3 s after the run appeared; timed from sending that
    report to the action's exit. The waiting path imports no `zenml` either."""
    running = action.start(
        {"template": "trainer-prod", "run-name": unique_name, "wait": "true", "poll-interval": "5s", "timeout": "2m"},
        extra_env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    run = find_run(zenml.server, unique_name)
    appeared = time.monotonic()
    complete_run(zenml.server, run, steps=STEPS[:-1])
    time.sleep(max(0.0, appeared + 3.0 - time.monotonic()))
    finished = time.monotonic()
    complete_run(zenml.server, run, steps=STEPS[-1:])
    result = running.finish(timeout=60)
    noticed = time.monotonic() - finished
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.outputs["conclusion"] == "success"
    assert noticed <= notice_target(finished - appeared), f"noticed {noticed:.1f} s after the run finished"
    assert [name for name in imported_modules(result) if name.split(".")[0] == "zenml"] == []


def imported_modules(result: ActionResult) -> list[str]:
    return [line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]


@pytest.mark.parametrize(
    ("inputs", "exit_code"),
    [
        ({"template": "trainer-prod", "wait": "false", "parameters": "model_type: gradient_boosting"}, 0),
        ({"template": "trainer-prod", "dry-run": "true"}, 0),
        # A template that is not there: the error path, with its suggestions.
        ({"template": "trainer-prd", "wait": "false"}, 1),
    ],
    ids=["trigger", "dry-run", "not-found"],
)
def test_the_server_side_path_never_imports_zenml(action: ActionRunner, inputs: dict[str, str], exit_code: int) -> None:
    result = action.run(inputs, extra_env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == exit_code, result.stdout + result.stderr
    imported = imported_modules(result)
    assert "zenml_action.server_side" in imported, "import timing did not work"
    assert [name for name in imported if name.split(".")[0] == "zenml"] == []
