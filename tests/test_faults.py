"""The action behind a faulty network: exactly one run, or a clear error.

Each case puts a `FaultProxy` between the action and the real server and
injects one kind of fault on the trigger (`POST .../pipeline_snapshots/{id}/runs`)
or on a read, then runs the action (`wait: false`, a unique run name) and
counts the runs with that name on the server. What must hold for every case:

- an action that exits 0 created exactly one run, and reports its ID;
- an action that fails ends with exactly one `::error::` (not an internal
  error) and no traceback;
- no action ends without a run and without a clear error.

Faults the action is built to absorb (`expect=SUCCESS`) must also end with
exit 0: one retryable status (429/503) or refused connection is retried, and
an ambiguous failure of the trigger (reset after sending, no answer in time,
502/504, an unreadable answer) is resolved by looking the run up by its
idempotency tag before triggering again.

The cases run a few at a time (each mostly waits on the network); figures
over the whole table are printed and, if `RELIABILITY_FIGURES` names a file,
written there as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import Deployment
from support.action import ActionResult, ActionRunner
from support.fault_proxy import (
    DELAY,
    HTML,
    RESET_AFTER,
    RESET_BEFORE,
    STATUS,
    TRUNCATE,
    TRUNCATE_JSON,
    FaultProxy,
    Record,
    Rule,
)

TRIGGER = r"^/api/v1/pipeline_snapshots/[^/]+/runs$"
LOGIN = r"^/api/v1/login$"
LIST_SNAPSHOTS = r"^/api/v1/pipeline_snapshots$"
INFO = r"^/api/v1/info$"
LOOKUP = r"^/api/v1/runs$"
# Long enough for every normal answer on a busy 2-core machine.
READ_TIMEOUT = 8
SUCCESS = "success"  # must exit 0 with exactly one run
EITHER = "either"  # exactly one run and exit 0, or a clear error


@dataclass(frozen=True)
class Fault:
    id: str
    rules: list[Rule]
    expect: str = SUCCESS
    env: dict[str, str] = field(default_factory=dict)
    # With a `run-name`, the action finds its run by a one-off tag; without,
    # by the run name it chose (which the server keeps unique).
    named: bool = True


def on_trigger(fault: str, **kwargs: Any) -> Rule:
    return Rule("POST", TRIGGER, fault, **kwargs)


def on_get(path: str, fault: str, **kwargs: Any) -> Rule:
    return Rule("GET", path, fault, **kwargs)


RETRY_AFTER = {"Retry-After": "1"}
ENVOY = b"upstream connect error or disconnect/reset before headers. reset reason: connection termination"
BUSY = json.dumps({"detail": ["MaxConcurrentTasksError", "Maximum number of concurrent tasks reached."]}).encode()

FAULTS = [
    # -- the trigger: nothing reached the server --------------------------------
    Fault("trigger-reset-before-sending", [on_trigger(RESET_BEFORE)]),
    Fault("trigger-502-not-forwarded", [on_trigger(STATUS, status=502)]),
    Fault("trigger-html-502-page", [on_trigger(HTML, status=502)]),
    Fault("trigger-503", [on_trigger(STATUS, status=503, headers=RETRY_AFTER)]),
    Fault("trigger-429-three-times", [on_trigger(STATUS, status=429, headers=RETRY_AFTER, body=BUSY, times=3)]),
    # -- the trigger: the server made the run, the client did not learn it ------
    Fault("trigger-reset-after-forwarding", [on_trigger(RESET_AFTER)]),
    Fault("trigger-502-after-forwarding", [on_trigger(STATUS, status=502, forward=True)]),
    Fault("trigger-504-after-forwarding", [on_trigger(STATUS, status=504, forward=True)]),
    Fault("trigger-truncated-body", [on_trigger(TRUNCATE)]),
    Fault("trigger-truncated-json", [on_trigger(TRUNCATE_JSON)]),
    Fault(
        "trigger-answer-slower-than-read-timeout",
        [on_trigger(DELAY, delay=READ_TIMEOUT + 3, forward=True)],
        env={"ZENML_ACTION_READ_TIMEOUT": str(READ_TIMEOUT)},
    ),
    Fault("trigger-reset-after-then-lookup-503", [
        on_trigger(RESET_AFTER),
        on_get(LOOKUP, STATUS, status=503, headers=RETRY_AFTER),
    ]),
    # A proxy that forwarded, then answered as Envoy does when the upstream
    # connection broke: the run exists, and a 503 does not prove otherwise.
    Fault("trigger-envoy-503-after-forwarding", [on_trigger(STATUS, status=503, forward=True, body=ENVOY)]),
    Fault("trigger-proxy-429-after-forwarding", [on_trigger(STATUS, status=429, forward=True, body=ENVOY)]),
    # The request reaches the server only after the client gave up waiting:
    # the run appears seconds after the read timeout.
    Fault(
        "trigger-reaches-server-after-read-timeout",
        [on_trigger(DELAY, delay=READ_TIMEOUT + 3, forward=False)],
        env={"ZENML_ACTION_READ_TIMEOUT": str(READ_TIMEOUT)},
    ),
    # The same ambiguous faults where the action names the run itself.
    Fault("unnamed-trigger-reset-after-forwarding", [on_trigger(RESET_AFTER)], named=False),
    Fault("unnamed-trigger-envoy-503-after-forwarding", [on_trigger(STATUS, status=503, forward=True, body=ENVOY)], named=False),
    Fault(
        "unnamed-trigger-reaches-server-after-read-timeout",
        [on_trigger(DELAY, delay=READ_TIMEOUT + 3, forward=False)],
        env={"ZENML_ACTION_READ_TIMEOUT": str(READ_TIMEOUT)},
        named=False,
    ),
    # -- persistent trouble: a clear failure, without a stray run ---------------
    Fault("trigger-429-always", [on_trigger(STATUS, status=429, headers=RETRY_AFTER, body=BUSY, times=None)], expect=EITHER),
    Fault("trigger-reset-after-and-lookup-always-502", [
        on_trigger(RESET_AFTER),
        on_get(LOOKUP, HTML, status=502, times=None),
    ], expect=EITHER),
    # -- reads --------------------------------------------------------------------
    Fault("login-503", [Rule("POST", LOGIN, STATUS, status=503, headers=RETRY_AFTER)], expect=EITHER),
    # A name is resolved with one hydrated listing (no separate snapshot read).
    Fault("snapshot-lookup-reset-after", [on_get(LIST_SNAPSHOTS, RESET_AFTER)]),
    # A truncated body is a short read, and a GET is read again (with
    # requests this case ended in a clear error instead).
    Fault("snapshot-lookup-truncated", [on_get(LIST_SNAPSHOTS, TRUNCATE)]),
    Fault("snapshot-lookup-html-200", [on_get(LIST_SNAPSHOTS, HTML, status=200)], expect=EITHER),
    Fault("info-503-after-trigger", [on_get(INFO, STATUS, status=503, headers=RETRY_AFTER)]),
    Fault("info-html-always-after-trigger", [on_get(INFO, HTML, status=502, times=None)], expect=EITHER),
]


@dataclass
class Outcome:
    fault: Fault
    run_name: str
    result: ActionResult
    records: list[Record]
    injected: int
    # IDs of the runs with the case's name on the server.
    run_ids: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return len(self.run_ids)

    @property
    def clear_error(self) -> bool:
        r = self.result
        return (
            len(r.errors) == 1
            and "title=Internal error" not in r.errors[0]
            and "Traceback" not in r.stdout + r.stderr
        )

    @property
    def created_by_triggers(self) -> int:
        """Trigger requests the server answered with a run."""
        return sum(
            1
            for r in self.records
            if r.method == "POST" and re.search(TRIGGER, r.path) and r.upstream_status == 200
        )

    def problems(self) -> list[str]:
        """What breaks the rules in the module docstring."""
        r = self.result
        found = []
        if "Traceback" in r.stdout + r.stderr:
            found.append("traceback")
        if r.returncode == 0:
            if self.runs != 1:
                found.append(f"exit 0 with {self.runs} runs")
            elif r.outputs.get("run-id", "") == "":
                found.append("exit 0 without a run-id output")
            if r.errors:
                found.append("exit 0 with an ::error::")
        else:
            if not self.clear_error:
                found.append(f"exit {r.returncode} without exactly one clear ::error:: ({r.errors})")
            if self.runs > 1:
                found.append(f"failed with {self.runs} runs")
        if self.created_by_triggers > 1:
            found.append(f"the server created {self.created_by_triggers} runs")
        if self.fault.expect == SUCCESS and r.returncode != 0:
            found.append(f"expected success, got: {r.errors[0] if r.errors else r.stdout[-300:]}")
        return found


def run_case(fault: Fault, zenml: Deployment, root: Path) -> Outcome:
    workspace = root / fault.id
    workspace.mkdir()
    run_name = f"fault-{fault.id}-{uuid.uuid4().hex[:8]}" if fault.named else ""
    with FaultProxy(zenml.url) as proxy:
        for rule in fault.rules:
            proxy.add(dataclasses.replace(rule, matched=0, applied=0))
        runner = ActionRunner(workspace, base_inputs={"workspace-url": proxy.url, "api-key": zenml.api_key})
        result = runner.run(
            # `timeout` also bounds how long a busy server (429/503) is waited out.
            {"template": "trainer-prod", "wait": "false", "run-name": run_name, "timeout": "45s"},
            timeout=180,
            extra_env=fault.env,
        )
        run_name = run_name or result.outputs.get("run-name", "")
        outcome = Outcome(fault, run_name, result, list(proxy.records), proxy.faults_injected)
    if not run_name:
        return outcome
    page = zenml.server.admin("GET", "/api/v1/runs", params={"name": f"equals:{run_name}", "size": "5"})
    outcome.run_ids = [str(item["id"]) for item in page["items"]]
    return outcome


@pytest.fixture(scope="module")
def outcomes(zenml: Deployment, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("faults")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {fault.id: pool.submit(run_case, fault, zenml, root) for fault in FAULTS}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_one_run_or_a_clear_error(fault: Fault, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[fault.id]

    assert outcome.injected >= 1, "the fault was never injected"
    assert outcome.problems() == [], "\n".join(
        [outcome.result.stdout, outcome.result.stderr, *(f"{r.method} {r.path} -> {r.action} {r.status}" for r in outcome.records)]
    )
    if outcome.result.returncode == 0:
        # The run reported is the run on the server.
        assert [outcome.result.outputs["run-id"]] == outcome.run_ids
        assert outcome.result.outputs["run-name"] == outcome.run_name
        assert outcome.result.outputs["conclusion"] == "triggered"


def figures(outcomes: dict[str, Outcome]) -> dict[str, object]:
    values = list(outcomes.values())
    succeeded = [o for o in values if o.result.returncode == 0]
    failed = [o for o in values if o.result.returncode != 0]
    return {
        "cases": len(values),
        "faults_injected": sum(o.injected for o in values),
        "actions_succeeded": len(succeeded),
        "actions_failed_clearly": sum(1 for o in failed if o.clear_error),
        "runs_per_successful_action": sorted({o.runs for o in succeeded}),
        "successful_actions_with_exactly_one_run": sum(1 for o in succeeded if o.runs == 1),
        "failed_actions_that_left_a_run": sorted(o.fault.id for o in failed if o.runs),
        "trigger_requests_that_created_a_run": sum(o.created_by_triggers for o in values),
        "unclear_endings": sorted(o.fault.id for o in values if any(not p.startswith("expected success") for p in o.problems())),
        "expected_success_but_failed": sorted(o.fault.id for o in values if o.fault.expect == SUCCESS and o.result.returncode != 0),
        "trigger_attempts_per_case": {o.fault.id: sum(1 for r in o.records if r.method == "POST" and re.search(TRIGGER, r.path)) for o in values},
    }


def test_reliability_figures(outcomes: dict[str, Outcome], capsys: pytest.CaptureFixture[str]) -> None:
    numbers = figures(outcomes)
    with capsys.disabled():
        print("\nReliability figures (tests/test_faults.py):\n" + json.dumps(numbers, indent=2, sort_keys=True))
    path = os.environ.get("RELIABILITY_FIGURES")
    if path:
        # Other tests (test_load.py) add their own sections to the same file.
        target = Path(path)
        existing = json.loads(target.read_text()) if target.exists() and target.read_text().strip() else {}
        existing.update(numbers)
        target.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")

    assert numbers["unclear_endings"] == []
    assert numbers["runs_per_successful_action"] in ([], [1])


def test_no_tag_is_left_behind(outcomes: dict[str, Outcome], zenml: Deployment) -> None:
    """Each named case's run was found by a one-off tag; once the run was
    known (or the action gave up), the tag went: none stays in the
    dashboard's tag list, whatever the fault."""
    tagged = [o for o in outcomes.values() if o.fault.named]
    assert tagged, "no case used a tag"
    left = zenml.server.admin("GET", "/api/v1/tags", params={"name": "startswith:gha-idem", "size": "100"})
    assert [tag["name"] for tag in left["items"]] == []
