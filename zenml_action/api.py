"""ZenML REST API: pure functions that build requests and decode responses.

Shapes are those of ZenML 0.98 (`zenml/zen_server/routers/*`; the project's
reference notes, `zenml-server-facts.md`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from uuid import UUID

from zenml_action.github import shorten
from zenml_action.http import Request, Response

API = "/api/v1"

# ZenML's ExecutionStatus values that mean the run will not change any more
# (`in_progress` can stay true on a failed run: status alone decides).
FINISHED_STATUSES = frozenset({"completed", "failed", "cached", "cancelled", "stopped", "skipped"})
SUCCESS_STATUSES = frozenset({"completed", "cached"})


def login(api_key: str) -> Request:
    """Exchange the API key for a short-lived token: requests that carry the
    raw key are re-verified by the server each time (about 0.9 s)."""
    form = {"grant_type": "zenml-api-key", "password": api_key}
    purpose = "logging in with the API key"
    return Request("POST", f"{API}/login", form=form, purpose=purpose, authenticated=False, retry="login")


def server_info() -> Request:
    # Public: fetched alongside the login, without a token.
    return Request("GET", f"{API}/info", purpose="reading the server's information", authenticated=False)


def exactly(name: str) -> str:
    """A name filter that matches the name as it is: ZenML reads a value
    starting `contains:`, `startswith:`, `oneof:`... as an operator."""
    return f"equals:{name}" if name else ""


def newest_first(size: int, **filters: str) -> dict[str, str]:
    return {"sort_by": "desc:created", "size": str(size), **{k: v for k, v in filters.items() if v}}


def list_snapshots(
    *, name: str = "", project: str = "", pipeline: str = "",
    runnable: bool = False, size: int = 20, hydrate: bool = False,
) -> Request:
    # `hydrate` includes each snapshot's pipeline spec: no second read.
    params = newest_first(
        size, named_only="true", name=exactly(name), project=project, pipeline=pipeline,
        runnable="true" if runnable else "", hydrate="true" if hydrate else "",
    )
    return Request("GET", f"{API}/pipeline_snapshots", params=params, purpose="looking up snapshots")


def get_snapshot(snapshot_id: UUID | str) -> Request:
    return Request("GET", f"{API}/pipeline_snapshots/{snapshot_id}", purpose="reading the snapshot")


def list_run_templates(*, name: str = "", project: str = "", pipeline: str = "", size: int = 20) -> Request:
    params = newest_first(size, name=exactly(name), project=project, pipeline=pipeline)
    return Request("GET", f"{API}/run_templates", params=params, purpose="looking up run templates")


def get_run_template(template_id: UUID | str) -> Request:
    path, purpose = f"{API}/run_templates/{template_id}", "reading the run template"
    return Request("GET", path, params={"hydrate": "true"}, purpose=purpose)


def trigger_snapshot(snapshot_id: str, run_configuration: dict[str, Any]) -> Request:
    path, body = f"{API}/pipeline_snapshots/{snapshot_id}/runs", {"run_configuration": run_configuration}
    return Request("POST", path, json=body, purpose="triggering the run")


def trigger_run_template(template_id: str, run_configuration: dict[str, Any]) -> Request:
    # Legacy endpoint: the run configuration is the whole body.
    path = f"{API}/run_templates/{template_id}/runs"
    return Request("POST", path, json=run_configuration, purpose="triggering the run")


def get_run(run_id: str, hydrate: bool = False) -> Request:
    # The server hydrates unless told not to. Unhydrated, a run still comes
    # with its resources, its pending question among them (0.98).
    params = {"hydrate": "true" if hydrate else "false"}
    return Request("GET", f"{API}/runs/{run_id}", params=params, purpose="reading the run")


def stop_run(run_id: str) -> Request:
    return Request("POST", f"{API}/runs/{run_id}/stop", purpose="stopping the run")


def text_metadata(project_id: str, resource_id: str, resource_type: str, values: Mapping[str, str], purpose: str) -> Request:
    """Attach text `values` to a `resource_type` (ZenML's `MetadataResourceTypes`)."""
    body = {"project": project_id, "resources": [{"id": resource_id, "type": resource_type}],
            "values": dict(values), "types": dict.fromkeys(values, "str")}
    return Request("POST", f"{API}/run-metadata", json=body, purpose=purpose)


def list_tags(name: str) -> Request:
    params = {"name": exactly(name)}
    return Request("GET", f"{API}/tags", params=params, purpose="looking up the action's tag")


def delete_tag(tag_id: str) -> Request:
    return Request("DELETE", f"{API}/tags/{tag_id}", purpose="deleting the action's one-off tag")


# Server tracebacks and validation errors can carry file paths of the
# server's installation; users get the message without them.
_PATH = re.compile(
    r'(File ")?(?<![\w:/.])(/[\w.\-]+){2,}\.py"?(, line \d+)?(, in \w+)?'
    r"|(?<![\w:/.])/[\w.\-/]*(site|dist)-packages[\w.\-/]*"
)


def decode_error(response: Response) -> str:
    """Read ZenML's three error shapes: {"detail": [Name, msg]},
    a bare [Name, msg] (422) and {"detail": "text"}; anything else (an HTML
    page from a proxy) becomes a short generic message."""
    body = response.json()
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list) and len(detail) == 2 and all(isinstance(x, str) for x in detail):
        detail = detail[1]
    elif isinstance(detail, list):
        # FastAPI's own validation shape: [{"loc": [...], "msg": "..."}]
        detail = "; ".join(str(item.get("msg", "")) for item in detail if isinstance(item, dict))
    message = re.sub(r"\s+", " ", _PATH.sub("", detail if isinstance(detail, str) else "")).strip()
    if not message:
        message = f"HTTP {response.status} with no explanation"
        if body is None and response.body:
            message += " (the answer was not JSON: a proxy or load balancer may be in the way)"
    return shorten(message, 600)


def decode_token(body: Any) -> str:
    """The access token, if it is one: a token with white space or control
    characters could not go into a header ("" then: no token)."""
    token = dig(body, "access_token")
    usable = isinstance(token, str) and token.isprintable() and not any(c.isspace() for c in token)
    return token if usable else ""


def items(body: Any) -> list[dict[str, Any]]:
    """The entities of a page, tolerating a malformed body: what is not an
    object with an ID is not an entity the action could use."""
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return [i for i in body["items"] if isinstance(i, dict) and isinstance(i.get("id"), str) and i["id"]]
    return []


def dig(obj: Any, *keys: str) -> Any:
    """obj[k1][k2]... or None when any level is missing."""
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def decode_status(body: Any) -> str:
    """A run's status, from its body (or a bare JSON string)."""
    status = body if isinstance(body, str) else dig(body, "body", "status")
    return status if isinstance(status, str) else ""


def dashboard_run_url(info: Any, base_url: str, project_id: str, run_id: str) -> str:
    """The dashboard link. ZenML Pro routes on `dashboard_url` and the project
    ID (as ZenML's `dashboard_utils.get_run_url`); a 0.98 server's bundled
    dashboard has the one route `/projects/default/runs/:runId` whatever the
    project (`routes.projects.runs.detail`): no request for its name."""
    run = quote(run_id, safe="")
    if dashboard := cloud_dashboard(info):
        return f"{dashboard}/projects/{quote(project_id, safe='')}/runs/{run}"
    base = _web_address(dig(info, "server_url")) or base_url.rstrip("/")
    return f"{base}/projects/default/runs/{run}"


def cloud_dashboard(info: Any) -> str:
    """ZenML Pro's dashboard address from `/info` ("" for another server)."""
    return _web_address(dig(info, "dashboard_url")) if dig(info, "deployment_type") == "cloud" else ""


_WEB_ADDRESS = re.compile(r"https?://[A-Za-z0-9.\-:\[\]]+(/[A-Za-z0-9._~%/\-]*)?")


def _web_address(value: Any) -> str:
    """An address from the server, if it is a plain web address: one that
    holds white space, Markdown or anything else is not used (the summary
    and the outputs would carry it)."""
    value = value.strip() if isinstance(value, str) else ""
    return value.rstrip("/") if _WEB_ADDRESS.fullmatch(value) else ""


# Why a run failed (failures.py). Step logs are served on every server version the action supports; 0.98
# requires a `source` (`step`: the step's own log, `runner`: that of the process that started a
# server-triggered run), older servers ignore it. Answers are a list of entries (`message`, chunks of one long
# entry share an `id`) or, on older servers, one string.


def list_failed_steps(run_id: str) -> Request:
    """Hydrated: each step's `metadata.exception_info` carries its traceback."""
    params = {"pipeline_run_id": run_id, "status": "failed", "hydrate": "true"}
    params.update(sort_by="asc:created", size="5")
    return Request("GET", f"{API}/steps", params=params, purpose="listing the run's failed steps")


def step_logs(step_id: str, purpose: str = "reading a step's log") -> Request:
    return Request("GET", f"{API}/steps/{step_id}/logs", params={"source": "step"}, purpose=purpose)


def run_logs(run_id: str) -> Request:
    path, purpose = f"{API}/runs/{run_id}/logs", "reading the run's log"
    return Request("GET", path, params={"source": "runner"}, purpose=purpose)


def model_version_in_stage(model: str, stage: str) -> Request:
    """The newest version of `model` in `stage` (production, staging, ...),
    hydrated: its metadata carries the metrics logged on it."""
    # `latest` is no stage a version holds: it means the newest version. A
    # name with a colon takes `equals:` (`provenance.metadata_filter`).
    model = f"equals:{model}" if ":" in model else model
    params = {**newest_first(1, model=model, stage="" if stage == "latest" else stage), "hydrate": "true"}
    return Request("GET", f"{API}/model_versions", params=params, purpose="looking up the model version")


def decode_model_version(body: Any) -> dict[str, Any] | None:
    return next(iter(items(body)), None)


def run_metadata(entity: Any) -> dict[str, Any]:
    """The run metadata of a hydrated run or model version."""
    values = dig(entity, "metadata", "run_metadata")
    return values if isinstance(values, dict) else {}


def moment(value: Any) -> datetime | None:
    """A time the server wrote (ZenML writes UTC without a zone), or None."""
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def created_at(entity: Any) -> datetime | None:
    """When a run or model version was created (UTC)."""
    return moment(dig(entity, "body", "created"))


def run_parameters(run: Any, snapshot: Any = None) -> dict[str, Any]:
    """What two runs are compared by (`judge.differing_parameters`): the
    pipeline's parameters of a hydrated run and, given the run's snapshot,
    each step's parameters under `steps.<step>`."""
    parameters = dig(run, "metadata", "config", "parameters")
    found: dict[str, Any] = dict(parameters) if isinstance(parameters, dict) else {}
    steps = dig(snapshot, "metadata", "step_configurations")
    if isinstance(steps, dict):
        step_parameters = {name: dig(step, "config", "parameters") for name, step in steps.items()}
        found["steps"] = {name: p for name, p in step_parameters.items() if isinstance(p, dict) and p}
    return found
