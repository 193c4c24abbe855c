"""What the action streams while it waits, read back from its output; and
a run whose step writes its log while the action watches (the test plays
the orchestrator over REST, as `orchestrator.py` does)."""

from __future__ import annotations

import re
import time

from support.action import ActionResult, ActionRunner
from support.orchestrator import complete_run, find_run, finish_step, start_step_with_log
from support.server import ZenMLServer

# What the watched step writes: numbered lines, one that would be a
# workflow command, and one holding the server's API key (`{key}`).
SAID = ["line 1", "line 2", "::error::a step's line is no command", "key {key} in a log", "line 5", "line 6"]


def relayed(stdout: str) -> list[str]:
    """The lines the action relayed inside `stop-commands` blocks; fails if
    a block is left open."""
    lines: list[str] = []
    token = None
    for line in stdout.splitlines():
        if token is None and (opened := re.fullmatch(r"::stop-commands::([0-9a-f]{32})", line)):
            token = opened.group(1)
        elif token is not None and line == f"::{token}::":
            token = None
        elif token is not None:
            lines.append(line)
    assert token is None, "a stop-commands block was left open"
    return lines


def watched_step_run(
    action: ActionRunner, server: ZenMLServer, run_name: str, inputs: dict[str, str], env: dict[str, str] | None = None
) -> ActionResult:
    """Trigger `trainer-prod` and, as its orchestrator, run `load_data`
    writing `SAID` half a second apart (the action polls every second), then
    complete it and the run."""
    running = action.start({"template": "trainer-prod", "run-name": run_name, "timeout": "90s", **inputs}, env)
    run = find_run(server, run_name)
    step, log = start_step_with_log(server, run, "load_data")
    for line in SAID:
        with log.open("a") as handle:
            handle.write(line.format(key=server.api_key) + "\n")
        time.sleep(0.5)
    time.sleep(1.0)
    finish_step(server, step)
    complete_run(server, run, steps=("train_model",))
    return running.finish(timeout=90)


def expected_lines() -> list[str]:
    return [f"[load_data] {line.format(key='***')}" for line in SAID]
