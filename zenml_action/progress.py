"""Progress while waiting: at each poll, each step's transitions and the
lines its log gained (read after a cursor where the server gives one, else
from the start, skipping those shown: `Tracker.fresh`). Budget: docs/speed.md.

Everything from the server here is untrusted: step names and log lines are
shortened, redacted and relayed inside `stop-commands`. A log that cannot
be read never fails the action: one warning, and the wait goes on."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from zenml_action import api
from zenml_action.client import ZenMLClient
from zenml_action.errors import ActionError, NotFound
from zenml_action.failures import decode_log
from zenml_action.github import Console, shorten
from zenml_action.http import Request
from zenml_action.report import cell, duration_text, table
from zenml_action.versions import ServerVersion

# Steps listed a poll: a dynamic pipeline's first ones, in creation order.
MAX_STEPS = 100
# Log reads a poll, the steps that just ended first (their last lines).
MAX_LOG_READS = 4
# Log entries asked for in one read beyond those already shown.
LOG_PAGE = 500
# What one run may put in the GitHub log; then a notice with the dashboard.
MAX_LINES = 2000
MAX_BYTES = 256 * 1024
MAX_LINE_CHARS = 2000
# Reads to the end of an ended step's log before it counts as shown.
SETTLE_READS = 2
# Consecutive failed reads of one step's log before it is given up.
MAX_READ_FAILURES = 3

# A step in these has a log that may still grow; cached and skipped steps ran nothing here.
GROWING = frozenset({"running", "retrying", "stopping"})
NO_LOG = frozenset({"cached", "skipped"})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def list_steps(run_id: str) -> Request:
    params = {"pipeline_run_id": run_id, "sort_by": "asc:created", "size": str(MAX_STEPS)}
    return Request("GET", f"{api.API}/steps", params=params, purpose="listing the run's steps")


def log_entries(logs_id: str, cursor: str, skip: int) -> Request:
    """A page of a log (0.97 on): after `cursor` when there is one (alone: a cursor carries its own page size
    and direction, and the Datadog log store refuses another beside it), else from the oldest entry, enough to
    hold the `skip` already shown and a page more."""
    params = {"after": cursor} if cursor else {"start": "oldest", "limit": str(skip + LOG_PAGE)}
    return Request("GET", f"{api.API}/logs/{logs_id}/entries", params=params, purpose="reading a step's log")


@dataclass(frozen=True)
class Step:
    id: str
    name: str
    status: str
    started: datetime | None = None
    ended: datetime | None = None
    logs_id: str = ""  # the step's own log (`source: step`), 0.93 on

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())


def decode_steps(body: Any) -> list[Step]:
    steps = []
    for item in api.items(body):
        status = api.dig(item, "body", "status")
        if not isinstance(status, str) or not status:
            continue
        logs = api.dig(item, "resources", "log_collection")
        own = [api.dig(e, "id") for e in logs if api.dig(e, "body", "source") == "step"] if isinstance(logs, list) else []
        logs_id = own[0] if own and isinstance(own[0], str) else ""
        name = _CONTROL.sub("", item["name"]).strip() if isinstance(item.get("name"), str) else ""
        started, ended = (api.moment(api.dig(item, "body", key)) for key in ("start_time", "end_time"))
        steps.append(Step(item["id"], shorten(name or item["id"], 80), status, started, ended, logs_id))
    return steps


@dataclass(frozen=True)
class Page:
    """A log read's entries (or an old server's lines), and the cursor on ("" if none)."""

    entries: list[Any]
    after: str = ""


def decode_page(body: Any) -> Page:
    """An entries page (`items`, `after`), a list of entries, or one string."""
    if isinstance(body, dict):
        items, after = body.get("items"), body.get("after")
        return Page(list(items) if isinstance(items, list) else [], after if isinstance(after, str) else "")
    if isinstance(body, str):
        return Page(body.splitlines())
    return Page(body if isinstance(body, list) else [])


def transition(step: Step) -> str:
    """`train_model: running`, `train_model: completed in 42 s`."""
    if step.status in api.FINISHED_STATUSES and step.status not in NO_LOG and step.seconds is not None:
        word = "in" if step.status == "completed" else "after"
        return f"{step.name}: {step.status} {word} {duration_text(step.seconds)}"
    return f"{step.name}: {step.status}"


@dataclass
class Shown:
    """One step's log as far as it was shown."""

    entries: int = 0  # entries shown, counted from the log's start
    cursor: str = ""
    failures: int = 0
    read_at: int = -1  # the poll that last read it
    settled: int = 0  # reads to its end since it ended
    done: bool = False  # ended and read to its end, or given up


@dataclass
class Tracker:
    """What the log already holds of the run's steps: their last status seen
    and how much of each log was shown. Pure: the Watcher asks and writes."""

    steps: dict[str, Step] = field(default_factory=dict)
    logs: dict[str, Shown] = field(default_factory=dict)
    lines: int = 0
    bytes: int = 0
    polls: int = 0

    def transitions(self, steps: list[Step]) -> list[str]:
        """The lines for the steps whose status changed (new steps too)."""
        said = []
        for step in steps:
            if (seen := self.steps.get(step.id)) is None or seen.status != step.status:
                said.append(transition(step))
            self.steps[step.id] = step
        return said

    def to_read(self, run_finished: bool, limit: int) -> list[Step]:
        """The logs to read this poll: the steps that ended and are not
        read to their end first, then the running ones least recently read."""
        steps = [s for s in self.steps.values() if not self.logs.setdefault(s.id, Shown()).done]
        ended = [
            s for s in steps if s.status not in NO_LOG | GROWING and (run_finished or s.status in api.FINISHED_STATUSES)
        ]
        running = sorted((s for s in steps if s.status in GROWING), key=lambda s: self.logs[s.id].read_at)
        return (ended + running)[:limit]

    def fresh(self, step: Step, page: Page, asked: int | None, from_cursor: bool) -> list[str]:
        """The lines of a read not shown yet; remembers where it ended.
        `asked`: the entries the read asked for (None: all there are)."""
        shown = self.logs.setdefault(step.id, Shown())
        shown.read_at, shown.failures = self.polls, 0
        entries = page.entries if from_cursor else page.entries[shown.entries :]
        shown.entries += len(entries)
        if page.after or (from_cursor and entries):
            # With no cursor on, the next read starts from the oldest, skipping those counted.
            shown.cursor = page.after
        if asked is None or len(page.entries) < asked:  # read to its end
            self._settle(step, shown)
        return decode_log(entries)

    def unread(self, step: Step, gone: bool) -> bool:
        """A read that failed; True when it is a failure worth a warning.
        `gone`: the server has no log for the step (yet)."""
        shown = self.logs.setdefault(step.id, Shown())
        shown.read_at = self.polls
        if gone:
            self._settle(step, shown)
            return False
        shown.failures += 1
        shown.done = shown.done or shown.failures >= MAX_READ_FAILURES
        return True

    @staticmethod
    def _settle(step: Step, shown: Shown) -> None:
        """A step that ended is read to its end twice (a poll apart) before
        its log counts as shown: its last lines reach the log store just
        after its status (ZenML publishes it inside the step's log context)."""
        if step.status in api.FINISHED_STATUSES:
            shown.settled += 1
            shown.done = shown.settled >= SETTLE_READS


@dataclass
class Watcher:
    """Called once a poll (`poll`): lists the steps, prints their
    transitions, streams what their logs gained."""

    client: ZenMLClient
    run_id: str
    console: Console
    stream: bool
    server: ServerVersion | None
    run_url: str
    tracker: Tracker = field(default_factory=Tracker)
    warned: set[str] = field(default_factory=set)
    capped: bool = False

    def poll(self, run_finished: bool) -> None:
        """One poll's progress; never raises an `ActionError`."""
        self.tracker.polls += 1
        try:
            steps = decode_steps(self.client.call(list_steps(self.run_id)))
        except ActionError as exc:
            self._warn_once("steps", f"Could not list the run's steps ({exc}); the wait goes on without them.")
            return
        for line in self.tracker.transitions(steps):
            self.console.info(line)
        if not self.stream or self.capped:
            return
        steps = self.tracker.to_read(run_finished, 2 * MAX_LOG_READS if run_finished else MAX_LOG_READS)
        self._relay([f"[{step.name}] {line}" for step in steps for line in self._read(step)])

    def rows(self) -> list[tuple[str, str, float | None]]:
        return [(step.name, step.status, step.seconds) for step in self.tracker.steps.values()]

    def _read(self, step: Step) -> list[str]:
        shown = self.tracker.logs.setdefault(step.id, Shown())
        by_entries = self.server is not None and self.server.has_log_entries
        if by_entries and not step.logs_id:
            # 0.97 on, a step's log is listed with it: none, nothing to read.
            self.tracker.unread(step, gone=True)
            return []
        from_cursor = by_entries and bool(shown.cursor)
        request = (
            log_entries(step.logs_id, shown.cursor, shown.entries) if by_entries else api.step_logs(step.id)
        )
        # The entries asked for (None: all there are); a page after a cursor holds `LOG_PAGE` when full.
        asked = (LOG_PAGE if from_cursor else shown.entries + LOG_PAGE) if by_entries else None
        try:
            page = decode_page(self.client.call(request))
        except ActionError as exc:
            # NotFound: the server has no log for the step (yet), which is no failure.
            if self.tracker.unread(step, gone=isinstance(exc, NotFound)):
                self._warn_once(
                    "log", f"Could not read the log of step `{step.name}` ({exc}); the wait goes on. "
                    f"The steps' logs are in the dashboard: {self.run_url}",
                )
            return []
        return self.tracker.fresh(step, page, asked, from_cursor)

    def _relay(self, lines: list[str]) -> None:
        if not lines:
            return
        with contextlib.closing(self.console.relay()) as relay:
            for line in lines:
                # Redacted before it is cut: a key across the cut would survive as a prefix.
                text = shorten(_CONTROL.sub("", self.console.redact(line)), MAX_LINE_CHARS)
                size = len(text.encode("utf-8")) + 1
                if self.tracker.lines + 1 > MAX_LINES or self.tracker.bytes + size > MAX_BYTES:
                    self.capped = True
                    break
                self.tracker.lines += 1
                self.tracker.bytes += size
                relay.line(text)
        if self.capped:
            self.console.notice(
                f"Streamed {self.tracker.lines} lines of the steps' logs, the most this action shows of a run "
                f"({MAX_LINES} lines, {MAX_BYTES // 1024} KiB); the rest are in the dashboard: {self.run_url}"
            )

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self.warned:
            self.warned.add(kind)
            self.console.warning(message)


def steps_summary(rows: list[tuple[str, str, float | None]]) -> str:
    """The steps' table for the job summary ("" without steps)."""
    cells = [
        (cell(name), cell(status), "" if seconds is None else duration_text(seconds)) for name, status, seconds in rows
    ]
    lines = table("Steps", ["Step", "Status", "Duration"], cells[:MAX_STEPS], ["Duration"])
    return "\n".join(lines) + "\n\n" if rows else ""
