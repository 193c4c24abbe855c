"""Progress while waiting (zenml_action/progress.py), in-process: the
decoders, the tracker that shows each log line once, the caps, and the
request budget of the wait with streaming on, on a fake clock (as
tests/test_speed_rules.py tests the polling rule).

The fake server here plays a run whose steps write one numbered line a
second; it answers the same requests a real server does (the step listing,
`GET /steps/{id}/logs` or, with cursors or without, `GET /logs/{id}/entries`).
The real servers of every version are in test_versions.py and
test_server_side.py; really executed steps in test_executed_runs.py.
"""

from __future__ import annotations

import contextlib
import io
from datetime import datetime
from typing import Any

import pytest
from support.fake_clock import FakeClock
from support.streaming import relayed

from zenml_action import progress
from zenml_action.errors import NotFound, ServerError
from zenml_action.github import Console
from zenml_action.http import Request
from zenml_action.inputs import read_inputs
from zenml_action.progress import Page, Step, Tracker
from zenml_action.runs import Polling, wait_for_run
from zenml_action.versions import ServerVersion

pytestmark = pytest.mark.offline

OLD = ServerVersion("0.93.3", (0, 93, 3))
NEW = ServerVersion("0.98.0", (0, 98, 0))
KEY = "ZENKEY_" + "s3cr3t" * 6
T0 = "2026-01-01T10:00:00"


def at(seconds: float) -> str:
    return datetime.fromtimestamp(datetime.fromisoformat(T0).timestamp() + seconds).isoformat()


# -- decoders -------------------------------------------------------------------


def listed(name: Any, status: Any, **extra: Any) -> dict[str, Any]:
    return {"id": f"id-{name}", "name": name, "body": {"status": status, **extra}}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"items": [listed("train", "running", start_time=T0)]}, [("train", "running", None, "")]),
        (
            {"items": [listed("train", "completed", start_time=T0, end_time=at(42))]},
            [("train", "completed", 42.0, "")],
        ),
        (
            {"items": [{**listed("train", "running"), "resources": {"log_collection": [
                {"id": "runner-log", "body": {"source": "runner"}},
                {"id": "step-log", "body": {"source": "step"}},
            ]}}]},
            [("train", "running", None, "step-log")],
        ),
        # A name with control characters, a name that is no string, a step
        # with no status, an item with no ID, a page that is no page.
        ({"items": [listed("tr\x1bain\n", "running")]}, [("train", "running", None, "")]),
        ({"items": [listed(7, "running")]}, [("id-7", "running", None, "")]),
        ({"items": [listed("train", None), {"name": "x", "body": {"status": "running"}}]}, []),
        ({"items": [listed("train", "completed", start_time="yesterday", end_time=at(1))]}, [("train", "completed", None, "")]),
        ("<html>", []),
        (None, []),
    ],
    ids=["running", "completed", "log-collection", "control-chars", "name-not-text", "no-status-no-id", "bad-time", "html", "null"],
)
def test_steps_are_decoded_from_what_the_server_lists(body: Any, expected: list[tuple[Any, ...]]) -> None:
    assert [(s.name, s.status, s.seconds, s.logs_id) for s in progress.decode_steps(body)] == expected


@pytest.mark.parametrize(
    ("body", "entries", "after"),
    [
        ({"items": [{"message": "a"}], "after": "c1", "before": None}, [{"message": "a"}], "c1"),
        ({"items": [{"message": "a"}], "after": None}, [{"message": "a"}], ""),
        ([{"message": "a"}, {"message": "b"}], [{"message": "a"}, {"message": "b"}], ""),
        ("one\ntwo\n", ["one", "two"], ""),
        ({"items": "nope", "after": 3}, [], ""),
        (42, [], ""),
    ],
    ids=["page-with-cursor", "page-without", "entries", "one-string", "malformed", "number"],
)
def test_log_reads_are_decoded_from_each_answer_shape(body: Any, entries: list[Any], after: str) -> None:
    assert progress.decode_page(body) == Page(entries, after)


@pytest.mark.parametrize(
    ("step", "line"),
    [
        (Step("1", "train_model", "running", datetime.fromisoformat(T0)), "train_model: running"),
        (Step("1", "train_model", "completed", datetime.fromisoformat(T0), datetime.fromisoformat(at(42))), "train_model: completed in 42 s"),
        (Step("1", "train_model", "failed", datetime.fromisoformat(T0), datetime.fromisoformat(at(185))), "train_model: failed after 3 min 5 s"),
        (Step("1", "train_model", "completed", datetime.fromisoformat(T0), datetime.fromisoformat(at(7300))), "train_model: completed in 2 h 1 min"),
        (Step("1", "train_model", "cached", datetime.fromisoformat(T0), datetime.fromisoformat(at(1))), "train_model: cached"),
        (Step("1", "train_model", "skipped"), "train_model: skipped"),
        (Step("1", "train_model", "completed"), "train_model: completed"),
    ],
    ids=["running", "completed", "failed", "hours", "cached", "skipped", "no-times"],
)
def test_a_transition_is_one_line_with_the_duration_once_ended(step: Step, line: str) -> None:
    assert progress.transition(step) == line


# -- the tracker: every line once -------------------------------------------------------------


def entries(*numbers: int) -> list[dict[str, Any]]:
    return [{"message": f"line {n}"} for n in numbers]


def test_a_log_read_whole_each_time_shows_only_what_it_gained() -> None:
    tracker = Tracker()
    step = Step("s", "train", "running")
    assert tracker.fresh(step, Page(entries(1, 2)), None, from_cursor=False) == ["line 1", "line 2"]
    assert tracker.fresh(step, Page(entries(1, 2)), None, from_cursor=False) == []
    assert tracker.fresh(step, Page(entries(1, 2, 3, 4)), None, from_cursor=False) == ["line 3", "line 4"]
    # An answer shorter than what was shown (untrusted) shows nothing again.
    assert tracker.fresh(step, Page(entries(1)), None, from_cursor=False) == []
    assert tracker.logs["s"].entries == 4


def test_a_log_read_with_cursors_shows_each_page_and_falls_back_to_counting_without_one() -> None:
    tracker = Tracker()
    step = Step("s", "train", "running")
    assert tracker.fresh(step, Page(entries(1, 2), after="c1"), 502, from_cursor=False) == ["line 1", "line 2"]
    assert tracker.logs["s"].cursor == "c1"
    assert tracker.fresh(step, Page(entries(3), after="c2"), 500, from_cursor=True) == ["line 3"]
    # A page with lines but no cursor on: the next read counts from the start.
    assert tracker.fresh(step, Page(entries(4)), 500, from_cursor=True) == ["line 4"]
    assert tracker.logs["s"].cursor == ""
    assert tracker.fresh(step, Page(entries(1, 2, 3, 4, 5)), 504, from_cursor=False) == ["line 5"]


def test_chunks_of_a_long_entry_are_one_line() -> None:
    chunked = [
        {"id": "e1", "message": "abc", "chunk_index": 0, "total_chunks": 2},
        {"id": "e1", "message": "def", "chunk_index": 1, "total_chunks": 2},
        {"id": "e2", "message": "ghi"},
    ]
    assert Tracker().fresh(Step("s", "train", "running"), Page(chunked), None, from_cursor=False) == ["abcdef", "ghi"]


def test_an_ended_step_is_read_to_its_end_twice_then_never_again() -> None:
    tracker = Tracker()
    step = Step("s", "train", "completed")
    tracker.transitions([step])
    assert tracker.to_read(run_finished=False, limit=4) == [step]
    tracker.fresh(step, Page(entries(1)), None, from_cursor=False)
    assert tracker.to_read(run_finished=False, limit=4) == [step]
    tracker.fresh(step, Page(entries(1, 2)), None, from_cursor=False)
    assert tracker.to_read(run_finished=False, limit=4) == []


def test_a_full_page_of_an_ended_step_is_read_on() -> None:
    tracker = Tracker()
    step = Step("s", "train", "completed")
    tracker.transitions([step])
    for _ in range(3):
        tracker.fresh(step, Page(entries(*range(progress.LOG_PAGE)), after="c"), progress.LOG_PAGE, from_cursor=True)
    assert not tracker.logs["s"].done


def test_which_logs_are_read_a_poll() -> None:
    tracker = Tracker()
    steps = [Step(str(n), f"s{n}", "running") for n in range(6)] + [
        Step("c", "cached", "cached"),
        Step("q", "queued", "initializing"),
        Step("e", "ended", "completed"),
    ]
    tracker.transitions(steps)
    first = tracker.to_read(run_finished=False, limit=4)
    # The ended step first, then running ones; never cached or not started.
    assert [s.id for s in first] == ["e", "0", "1", "2"]
    tracker.polls += 1
    for step in first:
        tracker.fresh(step, Page([]), None, from_cursor=False)
    # The running ones least recently read come next.
    assert [s.id for s in tracker.to_read(run_finished=False, limit=4)] == ["e", "3", "4", "5"]


def test_a_log_that_cannot_be_read_is_given_up_after_three_failures_in_a_row() -> None:
    tracker = Tracker()
    step = Step("s", "train", "running")
    tracker.transitions([step])
    assert tracker.unread(step, gone=False) is True
    tracker.fresh(step, Page([]), None, from_cursor=False)  # a success in between
    for _ in range(progress.MAX_READ_FAILURES):
        tracker.unread(step, gone=False)
    assert tracker.to_read(run_finished=False, limit=4) == []
    # No log yet (404) is no failure while the step runs.
    other = Step("o", "other", "running")
    tracker.transitions([other])
    for _ in range(5):
        assert tracker.unread(other, gone=True) is False
    assert tracker.to_read(run_finished=False, limit=4) == [other]


# -- the watcher against a fake server ------------------------------------------------------


class RunServer:
    """A run of `steps` steps, one after the other, each `step_seconds`
    long (or all at once: `parallel`; or never ending: `forever`), writing
    line N of its log at its N-th second (`text` chooses what it says).
    Every answered request is recorded with its time."""

    def __init__(
        self,
        clock: FakeClock,
        steps: int = 2,
        step_seconds: float = 20,
        mode: str = "whole",
        parallel: bool = False,
        forever: bool = False,
    ) -> None:
        self.clock = clock
        self.steps = steps
        self.step_seconds = step_seconds
        self.mode = mode  # whole (step logs) | cursor | nocursor (entries)
        self.parallel = parallel
        self.forever = forever
        self.requests: list[tuple[float, str]] = []
        self.broken_logs = False
        self.text = lambda step, n: f"{step} says {n}"

    def window(self, index: int) -> tuple[float, float]:
        start = 1.0 if self.parallel else 1.0 + index * self.step_seconds
        return start, (float("inf") if self.forever else start + self.step_seconds)

    def written(self, index: int) -> int:
        start, end = self.window(index)
        return max(0, int(min(self.clock.now, end) - start))

    def status_of(self, index: int) -> str:
        start, end = self.window(index)
        return "completed" if self.clock.now >= end else "running" if self.clock.now >= start else ""

    def call(self, request: Request) -> Any:
        self.clock.sleep(0.05)
        self.requests.append((self.clock.now, request.path))
        path = request.path
        if path == "/api/v1/runs/run-1":
            statuses = [self.status_of(i) for i in range(self.steps)]
            done = not self.forever and all(s == "completed" for s in statuses)
            return {"id": "run-1", "body": {"status": "completed" if done else "running"}, "resources": {}}
        if path.endswith("/steps"):
            items = []
            for i in range(self.steps):
                status = self.status_of(i)
                if not status:
                    continue
                start, end = self.window(i)
                body = {"status": status, "start_time": at(start)}
                if status == "completed":
                    body["end_time"] = at(end)
                logs = [{"id": f"log-{i}", "body": {"source": "step"}}]
                items.append({"id": f"step-{i}", "name": f"step_{i}", "body": body, "resources": {"log_collection": logs}})
            return {"items": items}
        if self.broken_logs:
            raise ServerError("The server failed while reading a step's log (HTTP 500).")
        index = int(path.rstrip("/").split("/")[-2].split("-")[-1])
        lines = [{"message": self.text(f"step_{index}", n)} for n in range(1, self.written(index) + 1)]
        if path.endswith("/logs"):
            return lines
        assert path.endswith("/entries"), path
        if self.mode == "nocursor":
            return {"items": lines[: int(request.params["limit"])]}
        # A cursor keeps the page size it was made with (as Datadog's does).
        after, size = (int(part) for part in request.params.get("after", f"0:{request.params.get('limit')}").split(":"))
        assert "limit" not in request.params or "after" not in request.params
        page = lines[after : after + size]
        return {"items": page, "after": f"{after + len(page)}:{size}"}


def watch(server: RunServer, stream: bool = True, version: ServerVersion | None = OLD, interval: float = 5.0) -> tuple[str, FakeClock]:
    """The action's wait with its watcher on the fake server; what it printed."""
    out = io.StringIO()
    console = Console(stream=out, in_github=True)
    console.mask(KEY)
    watcher = progress.Watcher(server, "run-1", console, stream, version, "https://zenml.example/runs/run-1")  # type: ignore[arg-type]
    polling = Polling(server.clock, watcher.poll)
    with contextlib.suppress(HourOver):
        for _ in wait_for_run(server, "run-1", "initializing", interval, console, polling):  # type: ignore[arg-type]
            pass
    return out.getvalue(), server.clock


@pytest.mark.parametrize(("mode", "version"), [("whole", OLD), ("cursor", NEW), ("nocursor", NEW), ("whole", None)])
def test_every_line_of_every_step_is_streamed_once_in_order(mode: str, version: ServerVersion | None) -> None:
    server = RunServer(FakeClock(), steps=2, step_seconds=20, mode=mode)
    output, _ = watch(server, version=version)
    expected = [f"[step_{i}] step_{i} says {n}" for i in range(2) for n in range(1, 21)]
    assert relayed(output) == expected
    used = {path.split("/")[-1] for _, path in server.requests}
    assert ("entries" in used) == (version is NEW)
    lines = output.splitlines()
    transitions = [line for line in lines if line.startswith("step_")]
    assert transitions == ["step_0: running", "step_0: completed in 20 s", "step_1: running", "step_1: completed in 20 s"]
    # Lines appear while the step runs, and the run's end comes last.
    assert lines.index("[step_0] step_0 says 1") < lines.index("step_0: completed in 20 s")
    ended = next(i for i, line in enumerate(lines) if line.startswith("Run status: completed"))
    assert lines.index("step_1: completed in 20 s") < ended


def test_stream_logs_false_shows_the_transitions_alone() -> None:
    server = RunServer(FakeClock(), steps=2)
    output, _ = watch(server, stream=False)
    assert relayed(output) == []
    assert "step_1: completed in 20 s" in output
    assert not any(path.endswith(("/logs", "/entries")) for _, path in server.requests)


@pytest.mark.parametrize(
    ("given", "stream"),
    [({}, True), ({"INPUT_STREAM-LOGS": "false"}, False), ({"INPUT_STREAM_LOGS": "off"}, False), ({"INPUT_STREAM-LOGS": "yes"}, True)],
)
def test_the_stream_logs_input(given: dict[str, str], stream: bool) -> None:
    env = {"INPUT_TEMPLATE": "t", "INPUT_WORKSPACE-URL": "https://zenml.example", "INPUT_API-KEY": KEY, "GITHUB_WORKSPACE": "/tmp"}
    assert read_inputs({**env, **given}, []).stream_logs is stream


def test_a_line_cannot_issue_a_workflow_command_nor_show_the_key() -> None:
    server = RunServer(FakeClock(), steps=1, step_seconds=4)
    said = {1: "::error::not from the action", 2: f"key={KEY}", 3: "##[group]x", 4: "bell\x07 and nul\x00"}
    server.text = lambda step, n: said[n]
    output, _ = watch(server)
    assert relayed(output) == [
        "[step_0] ::error::not from the action",
        "[step_0] key=***",
        "[step_0] ##[group]x",
        "[step_0] bell and nul",
    ]
    assert KEY not in output.replace(f"::add-mask::{KEY}", "")


def test_the_caps_end_streaming_with_one_notice_and_the_dashboard_link() -> None:
    server = RunServer(FakeClock(), steps=1, step_seconds=4000, parallel=True)
    output, _ = watch(server)
    assert len(relayed(output)) == progress.MAX_LINES
    [notice] = [line for line in output.splitlines() if line.startswith("::notice")]
    assert f"Streamed {progress.MAX_LINES} lines" in notice and "https://zenml.example/runs/run-1" in notice
    # No log is read once the cap is reached.
    reads = [t for t, path in server.requests if path.endswith("/logs")]
    assert reads[-1] < 2100

    wide = RunServer(FakeClock(), steps=1, step_seconds=400)
    wide.text = lambda step, n: "x" * 5000
    output, _ = watch(wide)
    shown = relayed(output)
    assert all(len(line) <= progress.MAX_LINE_CHARS for line in shown)
    assert sum(len(line) + 1 for line in shown) <= progress.MAX_BYTES


def test_a_log_that_cannot_be_read_warns_once_and_the_wait_goes_on() -> None:
    server = RunServer(FakeClock(), steps=2)
    server.broken_logs = True
    output, _ = watch(server)
    assert len([line for line in output.splitlines() if line.startswith("::warning")]) == 1
    assert "Run status: completed" in output
    assert "step_1: completed in 20 s" in output
    # Each step's log is given up after three failed reads.
    assert len([1 for _, path in server.requests if path.endswith("/logs")]) <= 2 * progress.MAX_READ_FAILURES


def test_a_step_listing_that_fails_warns_once() -> None:
    class NoSteps(RunServer):
        def call(self, request: Request) -> Any:
            if request.path.endswith("/steps"):
                self.clock.sleep(0.05)
                raise NotFound("Not found while listing the run's steps.")
            return super().call(request)

    output, _ = watch(NoSteps(FakeClock(), steps=2))
    assert len([line for line in output.splitlines() if line.startswith("::warning")]) == 1
    assert "Run status: completed" in output


# -- the request budget ------------------------------------------------------------------

HOUR = 3600.0


class HourOver(Exception):
    """The fake clock's stand-in for the action's deadline."""


class EndlessServer(RunServer):
    def call(self, request: Request) -> Any:
        if self.clock.now >= HOUR:
            raise HourOver
        return super().call(request)


def budget(running_steps: int, stream: bool) -> int:
    """docs/speed.md, "While waiting": after 5 minutes, a minute holds 2
    polls, each the status, the step listing and, streaming, one log read
    per running step, at most `MAX_LOG_READS`."""
    reads = min(running_steps, progress.MAX_LOG_READS) if stream else 0
    return 2 * (2 + reads)


@pytest.mark.parametrize(("running_steps", "stream"), [(0, True), (1, True), (3, True), (10, True), (10, False)])
def test_after_5_minutes_a_minute_holds_at_most_the_stated_requests(running_steps: int, stream: bool) -> None:
    server = EndlessServer(FakeClock(), steps=running_steps, forever=True, parallel=True)
    watch(server, stream=stream, version=NEW)
    assert server.clock.now >= HOUR
    for minute in range(5, 60):
        count = sum(1 for t, _ in server.requests if 60 * minute <= t < 60 * (minute + 1))
        assert count <= budget(running_steps, stream), (minute, count)


@pytest.mark.parametrize("finished_after", [3.0, 40.0, 299.0, 301.0, 1000.0, 3000.0])
def test_streaming_still_notices_a_finished_run_within_the_polling_rule(finished_after: float) -> None:
    server = RunServer(FakeClock(), steps=4, step_seconds=finished_after - 1, parallel=True)
    output, clock = watch(server)
    assert clock.now - finished_after <= max(5.0, 0.1 * finished_after)
    assert "Run status: completed" in output


def test_the_summary_lists_the_steps_with_status_and_duration() -> None:
    rows = [("load_data", "completed", 2.4), ("train|model <b>", "running", None), ("evaluate", "cached", 0.0)]
    assert progress.steps_summary(rows).splitlines() == [
        "**Steps**",
        "",
        "| Step | Status | Duration |",
        "|---|---|--:|",
        "| load\\_data | completed | 2 s |",
        "| train\\|model &lt;b&gt; | running |  |",
        "| evaluate | cached | 0 s |",
        "",
    ]
    assert progress.steps_summary([]) == ""
