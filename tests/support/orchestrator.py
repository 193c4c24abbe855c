"""Play the orchestrator over REST: finish runs the test server started.

The test workload manager starts nothing, so runs stay `initializing` until
a test moves them, the way a real orchestrator reports step results.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
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


def artifact_store(server: ZenMLServer) -> tuple[str, str]:
    """The server's default artifact store: its ID and local path (a local
    store without one lives in the server's `local_stores`)."""
    page = server.admin("GET", "/api/v1/components", params={"type": "artifact_store", "hydrate": "true"})
    store = page["items"][0]
    path = store["metadata"]["configuration"].get("path") or server.root / "config" / "local_stores" / store["id"]
    return str(store["id"]), str(path)


def start_step_with_log(server: ZenMLServer, run: dict[str, Any], step: str) -> tuple[dict[str, Any], Path]:
    """A step that is running, with its own (empty) log file in the server's
    local artifact store, as a step's logging writes it: every version
    serves it from its step-log endpoint (and, 0.97 on, as log entries)."""
    store_id, root = artifact_store(server)
    log = Path(root) / "logs" / f"{uuid.uuid4().hex}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    project = run["body"]["project_id"]
    logs: Any = {"uri": str(log), "source": "step", "artifact_store_id": store_id, "project": project}
    try:
        # 0.93 on: the log first, the step then names it (0.93 refuses a
        # step that brings its log along); 0.85 has no such route.
        logs = server.admin("POST", "/api/v1/logs", json=logs)["id"]
    except RuntimeError as exc:
        if not str(exc).startswith(("POST /api/v1/logs: 404", "POST /api/v1/logs: 405")):
            raise
    body = server.admin(
        "POST",
        "/api/v1/steps",
        json={
            "name": step,
            "start_time": datetime.now(UTC).replace(tzinfo=None).isoformat(),
            "status": "running",
            "pipeline_run_id": run["id"],
            "project": project,
            "logs": logs,
        },
    )
    return dict(body), log


def finish_step(server: ZenMLServer, step: dict[str, Any], status: str = "completed") -> None:
    now = datetime.now(UTC).replace(tzinfo=None).isoformat()
    server.admin("PUT", f"/api/v1/steps/{step['id']}", json={"status": status, "end_time": now})
