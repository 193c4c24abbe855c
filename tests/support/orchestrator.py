"""Play the orchestrator over REST: finish runs the test server started.

The test workload manager starts nothing, so runs stay `initializing` until
a test moves them, the way a real orchestrator reports step results.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from support.server import ZenMLServer

STEPS = ("load_data", "train_model")


def find_run(server: ZenMLServer, run_name: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = server.admin("GET", "/api/v1/runs", params={"name": run_name})
        if page["items"]:
            return dict(page["items"][0])
        time.sleep(0.2)
    raise AssertionError(f"no run named {run_name} appeared")


def complete_run(server: ZenMLServer, run: dict[str, Any], steps: tuple[str, ...] = STEPS) -> None:
    """A static pipeline's status follows its steps: completing each step
    completes the run."""
    now = datetime.now(UTC).replace(tzinfo=None).isoformat()
    for step in steps:
        server.admin(
            "POST",
            "/api/v1/steps",
            json={
                "name": step,
                "start_time": now,
                "end_time": now,
                "status": "completed",
                "pipeline_run_id": run["id"],
                "project": run["body"]["project_id"],
            },
        )


def log_run_metadata(server: ZenMLServer, run: dict[str, Any], values: dict[str, float]) -> None:
    """What a pipeline's `log_metadata(...)` call records on its run."""
    server.admin(
        "POST",
        "/api/v1/run-metadata",
        json={
            "project": run["body"]["project_id"],
            "resources": [{"id": run["id"], "type": "pipeline_run"}],
            "values": values,
            "types": {key: "float" for key in values},
        },
    )


def fail_run(server: ZenMLServer, run: dict[str, Any]) -> None:
    server.admin("PUT", f"/api/v1/runs/{run['id']}", json={"status": "failed"})


def run_details(server: ZenMLServer, run_id: str) -> dict[str, Any]:
    return dict(server.admin("GET", f"/api/v1/runs/{run_id}", params={"hydrate": "true"}))


def step_parameters(server: ZenMLServer, run_id: str) -> dict[str, dict[str, Any]]:
    """The step parameters the server recorded for a run, from the snapshot
    it created for the run."""
    run = run_details(server, run_id)
    snapshot_id = run["resources"]["snapshot"]["id"]
    snapshot = server.admin("GET", f"/api/v1/pipeline_snapshots/{snapshot_id}")
    return {
        name: step["config"]["parameters"]
        for name, step in snapshot["metadata"]["step_configurations"].items()
    }
