"""`timeout` and a cancel end the action within the bound the README states,
in every phase.

One table of phases; for each, the fault proxy in front of the real server
holds the request that phase is waiting on (a server or network gone
silent), and the action is either left to run into its `timeout` or
cancelled while it waits. Either way it must end within the bound, say
where it was, write its outputs, and ask the server to stop a run that is
still going (and only then).
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import Deployment
from support.action import ActionResult, ActionRunner
from support.fault_proxy import DELAY, FaultProxy, Rule
from support.github_env import github_env
from support.orchestrator import complete_run, fail_run, find_run

from zenml_action.deadline import GRACE_SECONDS

TIMEOUT = 10.0  # the login, the trigger and the phases before the held one, under load
# A process start and the imports before `main` sets the deadline.
START_SLACK = 1.5
CANCEL_BOUND = 5.0
HELD = 60.0  # longer than any bound: a server gone silent


@dataclass(frozen=True)
class Phase:
    method: str
    path: str  # the request the proxy holds (regular expression)
    inputs: dict[str, str] = field(default_factory=dict)
    held_from_start: bool = False  # else from when the run exists
    forward: bool = True  # the server did the work, its answer is held
    orchestrator: str = ""  # what the run does once the hold is in place: complete, fail
    run_going: bool = True  # the run is still going when the action is interrupted
    run_exists: bool = True
    query: str = ""  # and in its query (the wait and the read share a path)


PHASES = {
    "login": Phase("POST", r"^/api/v1/login$", held_from_start=True, forward=False, run_going=False, run_exists=False),
    "trigger": Phase("POST", r"^/api/v1/pipeline_snapshots/[^/]+/runs$", held_from_start=True),
    "wait": Phase("GET", r"^/api/v1/runs/[^/]+$", query="hydrate=false"),
    "context": Phase("POST", r"^/api/v1/run-metadata$", {"wait": "false"}, held_from_start=True, forward=False),
    "read": Phase("GET", r"^/api/v1/runs/[^/]+$", orchestrator="complete", run_going=False, query="hydrate=true"),
    "baseline": Phase("GET", r"^/api/v1/runs$", {"compare-to": "main"}, orchestrator="complete", run_going=False),
    "parameters": Phase(
        "GET", r"^/api/v1/pipeline_snapshots/[^/]+$", {"compare-to": "{baseline}"},
        orchestrator="complete", run_going=False,
    ),
    # Not the steps' listing the wait makes each poll (progress.py).
    "failed steps": Phase("GET", r"^/api/v1/steps$", orchestrator="fail", run_going=False, query="status=failed"),
}


@pytest.fixture(scope="module")
def baseline_run(zenml: Deployment, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A completed run to compare with (the parameters phase reads its snapshot)."""
    workspace = tmp_path_factory.mktemp("baseline") / "ws"
    workspace.mkdir()
    runner = ActionRunner(workspace, base_inputs={"workspace-url": zenml.url, "api-key": zenml.api_key})
    name = f"deadline-baseline-{time.monotonic_ns()}"
    running = runner.start({"template": "trainer-prod", "run-name": name})
    run = find_run(zenml.server, name)
    complete_run(zenml.server, run)
    assert running.finish(timeout=60).returncode == 0
    return str(run["id"])


@dataclass(frozen=True)
class Ending:
    """How one case ended: the action's result, how long after the start
    (timeout) or the cancel it took, the stops the proxy saw, the run."""

    result: ActionResult
    seconds: float
    stops: int
    run: dict[str, Any] | None


def run_case(zenml: Deployment, workspace: Path, baseline_run: str, phase_name: str, how: str) -> Ending:
    phase = PHASES[phase_name]
    name = f"deadline-{phase_name.replace(' ', '-')}-{how}-{uuid.uuid4().hex[:8]}"
    inputs = {"template": "trainer-prod", "run-name": name, "poll-interval": "1s",
              "timeout": f"{TIMEOUT:g}s" if how == "timeout" else "1h"}
    inputs.update({k: v.format(baseline=baseline_run) for k, v in phase.inputs.items()})
    with FaultProxy(zenml.url) as proxy:
        hold = Rule(phase.method, phase.path, DELAY, delay=HELD, forward=phase.forward, query=phase.query)
        if phase.held_from_start:
            proxy.add(hold)
        runner = ActionRunner(workspace, base_inputs={"workspace-url": proxy.url, "api-key": zenml.api_key})
        started = time.monotonic()
        running = runner.start(inputs, extra_env=github_env(f"acme/{name}", "refs/heads/main"))
        run = find_run(zenml.server, name) if phase.run_exists else None
        if not phase.held_from_start:
            proxy.add(hold)
            if phase.orchestrator == "complete":
                complete_run(zenml.server, run)  # type: ignore[arg-type]
            elif phase.orchestrator == "fail":
                fail_run(zenml.server, run)  # type: ignore[arg-type]
        while not hold.applied:
            assert running.process.poll() is None, running.finish().stdout
            assert time.monotonic() - started < TIMEOUT, f"the action never reached the {phase_name} phase"
            time.sleep(0.05)
        if how == "cancel":
            time.sleep(0.3)  # in the held request, not before it
            started = time.monotonic()
            running.signal(signal.SIGINT)
        result = running.finish(timeout=60)
        return Ending(result, time.monotonic() - started, proxy.count("POST", r"/stop$"), run)


CASES = [(phase, how) for phase in PHASES for how in ("timeout", "cancel")]


@pytest.fixture(scope="module")
def endings(zenml: Deployment, baseline_run: str, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Ending]:
    """Every case, three at a time (as test_faults.py runs its faults): most
    of a case is waiting for its timeout."""
    def one(phase: str, how: str) -> Ending:
        workspace = tmp_path_factory.mktemp("deadline") / "workspace"
        workspace.mkdir()
        return run_case(zenml, workspace, baseline_run, phase, how)

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {case: pool.submit(one, *case) for case in CASES}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize(("phase_name", "how"), CASES, ids=[f"{p}-{h}" for p, h in CASES])
def test_timeout_and_cancel_end_the_action_in_every_phase(
    endings: dict[tuple[str, str], Ending], phase_name: str, how: str
) -> None:
    phase, ending = PHASES[phase_name], endings[(phase_name, how)]
    result = ending.result

    if how == "cancel":
        assert ending.seconds < CANCEL_BOUND, f"{ending.seconds:.1f}s after the cancel"
    else:
        assert ending.seconds < TIMEOUT + GRACE_SECONDS + START_SLACK, f"{ending.seconds:.1f}s for `timeout: {TIMEOUT:g}s`"
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.errors) == 1, result.stdout
    assert result.outputs["conclusion"] == ("cancelled" if how == "cancel" else "timeout")
    assert ("title=Cancelled" if how == "cancel" else "title=Timed out") in result.errors[0]
    if ending.run is not None:
        assert result.outputs["run-id"] == ending.run["id"], result.stdout
    # Only a run still going is stopped, and a run not waited for only on a cancel.
    waited = phase.inputs.get("wait") != "false" or how == "cancel"
    assert ending.stops == (1 if phase.run_going and waited else 0), result.stdout
    # Nothing is judged after the interruption.
    assert result.outputs.get("gate-result", "") == ""
    assert re.search(r"while [a-z]", result.errors[0]), result.errors[0]


def test_a_second_signal_cuts_the_clean_up_short(zenml: Deployment, workspace: Path, unique_name: str) -> None:
    """The runner's SIGTERM (7.5 s after its SIGINT) is never ignored: with
    the stop held up, the action ends at once, outputs written, and says the
    stop may not have been sent."""
    with FaultProxy(zenml.url) as proxy:
        runner = ActionRunner(workspace, base_inputs={"workspace-url": proxy.url, "api-key": zenml.api_key})
        running = runner.start({"template": "trainer-prod", "run-name": unique_name, "poll-interval": "1s"})
        run = find_run(zenml.server, unique_name)
        stop = proxy.add(Rule("POST", r"/stop$", DELAY, delay=HELD, forward=False))
        time.sleep(0.5)
        running.signal(signal.SIGINT)
        while not stop.applied:
            assert running.process.poll() is None, running.finish().stdout
            time.sleep(0.05)
        terminated = time.monotonic()
        running.signal(signal.SIGTERM)
        result = running.finish(timeout=30)

    assert time.monotonic() - terminated < 1.5
    assert result.returncode == 1 and len(result.errors) == 1
    assert result.outputs["conclusion"] == "cancelled" and result.outputs["run-id"] == run["id"]
    assert any("cut short" in w and run["id"] in w for w in result.warnings), result.stdout


# -- code mode: the parts that are not requests ------------------------------------

SLOW_PIPELINE = '''
import os
import time
from pathlib import Path

from zenml import pipeline, step


@step
def hold(marker: str) -> None:
    Path(marker).write_text(str(os.getpid()))
    time.sleep(120)


@pipeline(enable_cache=False)
def slow(marker: str) -> None:
    hold(marker=marker)
'''


@contextlib.contextmanager
def silent_index() -> Iterator[str]:
    """A package index that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/simple"


def alive(pid: int, within: float = 2.0) -> bool:
    """Is the process still running `within` seconds from now? A zombie
    (ended, not yet reaped by whoever inherited it) is not."""
    until = time.monotonic() + within
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        if state == "Z":
            return False
        if time.monotonic() >= until:
            return True
        time.sleep(0.1)


@pytest.mark.parametrize("how", ["timeout", "cancel"])
def test_a_stalled_requirements_install_ends_by_the_deadline(workspace: Path, how: str) -> None:
    (workspace / "slow.py").write_text(SLOW_PIPELINE)
    with silent_index() as index:
        (workspace / "requirements.txt").write_text(f"--index-url {index}\nzenml-action-never-published==1.0\n")
        started = time.monotonic()
        running = ActionRunner(workspace).start({
            "pipeline": "slow.py:slow", "requirements": "requirements.txt",
            "timeout": "5s" if how == "timeout" else "1h",
        })
        if how == "cancel":
            time.sleep(3)
            cancelled = time.monotonic()
            running.signal(signal.SIGINT)
        result = running.finish(timeout=120)
        ended = time.monotonic()

    if how == "cancel":
        assert ended - cancelled < CANCEL_BOUND
    else:
        assert ended - started < 5 + GRACE_SECONDS + START_SLACK
    assert result.returncode == 1 and len(result.errors) == 1, result.stdout
    assert "while installing `requirements.txt`" in result.errors[0], result.errors[0]
    assert result.outputs["conclusion"] == ("cancelled" if how == "cancel" else "timeout")


def test_the_pipeline_child_ends_with_the_action(workspace: Path) -> None:
    """On a local store the run is the child process: a cancel ends it (a
    timeout takes the same path, `runs.interrupted`, as the install test
    above shows for the deadline)."""
    (workspace / "slow.py").write_text(SLOW_PIPELINE)
    marker = workspace / "held.pid"
    started = time.monotonic()
    running = ActionRunner(workspace).start({"pipeline": "slow.py:slow", "parameters": f"marker: {marker}"})
    while not marker.exists():
        assert running.process.poll() is None, running.finish().stdout
        assert time.monotonic() - started < 120, "the step never started"
        time.sleep(0.1)
    cancelled = time.monotonic()
    running.signal(signal.SIGINT)
    result = running.finish(timeout=120)

    assert time.monotonic() - cancelled < CANCEL_BOUND
    assert result.returncode == 1 and len(result.errors) == 1, result.stdout
    assert "while running the pipeline" in result.errors[0], result.errors[0]
    assert result.outputs["conclusion"] == "cancelled"
    assert not alive(int(marker.read_text()))
    assert result.stdout.count("::group::Pipeline log") == result.stdout.count("::endgroup::") == 1
