"""Set up models and model versions over REST, as a pipeline with
`model=Model(name=...)` leaves them: a model, its versions, each linked to
the run that produced it. Runs the no-op test server starts execute
nothing, so they produce no version by themselves; the stages are still
the server's to keep and change (0.85 to 0.98)."""

from __future__ import annotations

import uuid
from typing import Any

from support.server import ZenMLServer


def project_id(server: ZenMLServer) -> str:
    return str(server.admin("GET", "/api/v1/projects")["items"][0]["id"])


def new_model(server: ZenMLServer) -> dict[str, Any]:
    name = f"model-{uuid.uuid4().hex[:10]}"
    return dict(server.admin("POST", "/api/v1/models", json={"name": name, "project": project_id(server)}))


def new_version(server: ZenMLServer, model: dict[str, Any], run: dict[str, Any] | None = None, stage: str = "") -> dict[str, Any]:
    """A new version of `model` (numbered by the server), linked to `run`
    as the run that produced it, in `stage` if given."""
    version = server.admin(
        "POST", "/api/v1/model_versions", json={"model": model["id"], "project": model["body"]["project_id"]}
    )
    if run is not None:
        server.admin(
            "POST",
            "/api/v1/model_version_pipeline_runs",
            json={"model_version": version["id"], "pipeline_run": run["id"], "project": model["body"]["project_id"]},
        )
    if stage:
        server.admin("PUT", f"/api/v1/model_versions/{version['id']}", json={"stage": stage, "force": True})
    return dict(version)


def stages(server: ZenMLServer, model: dict[str, Any]) -> dict[str, str]:
    """Each version's name -> its stage ("" for none), as the server holds them."""
    page = server.admin("GET", "/api/v1/model_versions", params={"model": model["id"], "size": "100"})
    return {str(v["name"]): str(v["body"].get("stage") or "") for v in page["items"]}


def version_metadata(server: ZenMLServer, version_id: str) -> dict[str, Any]:
    body = server.admin("GET", f"/api/v1/model_versions/{version_id}", params={"hydrate": "true"})
    return dict(body["metadata"]["run_metadata"])
