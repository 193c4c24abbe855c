"""Find the snapshot or legacy run template the user means.

Order: a UUID is looked up directly; a name is looked up among snapshots,
then among run templates; `pipeline` alone means its newest runnable named
snapshot, as `zenml.client.Client.trigger_pipeline` does. Servers before
0.90 have no snapshots (their routes answer a bare 404): there only run
templates are looked up, and `pipeline` alone means its newest runnable
run template.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from zenml_action import api
from zenml_action.client import ZenMLClient
from zenml_action.errors import Ambiguous, NotFound, NotRunnable
from zenml_action.http import Request
from zenml_action.inputs import parse_uuid
from zenml_action.versions import ServerVersion

SNAPSHOT = "snapshot"
RUN_TEMPLATE = "run template"


@dataclass(frozen=True)
class Target:
    kind: str
    id: str
    name: str
    pipeline_name: str
    project_id: str
    runnable: bool
    is_dynamic: bool
    pipeline_spec: dict[str, Any] = field(default_factory=dict)
    # Each step's parameter names, where the server states them without
    # types: a snapshot's step configurations, a run template's
    # configuration template and schema (0.85).
    step_parameter_names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.kind} `{self.name or self.id}`"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _names(mapping: Any) -> tuple[str, ...]:
    return tuple(str(name) for name in mapping) if isinstance(mapping, dict) else ()


def _target(kind: str, body: dict[str, Any], is_dynamic: Any, step_parameter_names: dict[str, tuple[str, ...]]) -> Target:
    return Target(
        kind=kind,
        id=str(body.get("id", "")),
        name=str(body.get("name") or ""),
        pipeline_name=str(api.dig(body, "resources", "pipeline", "name") or ""),
        project_id=str(api.dig(body, "body", "project_id") or ""),
        runnable=bool(api.dig(body, "body", "runnable")),
        is_dynamic=bool(is_dynamic),
        pipeline_spec=_mapping(api.dig(body, "metadata", "pipeline_spec")),
        step_parameter_names=step_parameter_names,
    )


def target_from_snapshot(body: dict[str, Any]) -> Target:
    """Step parameter names from `metadata.step_configurations[step].config.parameters`:
    every step parameter with its value, defaults included."""
    configs = _mapping(api.dig(body, "metadata", "step_configurations"))
    names = {str(step): _names(api.dig(conf, "config", "parameters")) for step, conf in configs.items()}
    return _target(SNAPSHOT, body, api.dig(body, "body", "is_dynamic"), names)


def target_from_run_template(body: dict[str, Any]) -> Target:
    """Step parameter names from `metadata.config_template.steps[step].parameters`
    and `metadata.config_schema.$defs.<step>_parameters` (names, no types)."""
    steps = _mapping(api.dig(body, "metadata", "config_template", "steps"))
    definitions = _mapping(api.dig(body, "metadata", "config_schema", "$defs"))
    found: dict[str, tuple[str, ...]] = {}
    for step, config in steps.items():
        names = _names(api.dig(config, "parameters"))
        schema_names = _names(api.dig(definitions.get(f"{step}_parameters"), "properties"))
        found[str(step)] = names + tuple(name for name in schema_names if name not in names)
    is_dynamic = api.dig(body, "resources", "source_snapshot", "body", "is_dynamic")
    return _target(RUN_TEMPLATE, body, is_dynamic, found)


def _in_project(project: str) -> str:
    return f" in project `{project}`" if project else ""


def _kinds(server: ServerVersion) -> str:
    return "snapshot or run template" if server.has_snapshots else f"run template (ZenML {server.raw} has no snapshots)"


def _available(client: ZenMLClient, project: str, pipeline: str, server: ServerVersion) -> str:
    """A few names that do exist, to put in a not-found message."""

    def names(listing: Request) -> str:
        return ", ".join(f"`{entry.get('name')}`" for entry in api.items(client.call(listing)))

    snapshots = names(api.list_snapshots(project=project, pipeline=pipeline, size=8)) if server.has_snapshots else ""
    templates = names(api.list_run_templates(project=project, pipeline=pipeline, size=5))
    parts = [f"{kind}: {found}" for kind, found in (("snapshots", snapshots), ("run templates", templates)) if found]
    where = f" of pipeline `{pipeline}`" if pipeline else ""
    if parts:
        return "Named ones" + where + " on the server: " + "; ".join(parts) + "."
    if server.has_snapshots:
        none = "The server has no named snapshots"
        create = "`zenml pipeline snapshot create` (or `pipeline.create_snapshot(name=...)`)"
    else:
        none = f"The server (ZenML {server.raw}, which has run templates, not snapshots) has no run templates"
        create = "`zenml pipeline create-run-template` (or `pipeline.create_run_template(name=...)`)"
    return f"{none}{where} in this project. Create one with {create}."


def _by_id(client: ZenMLClient, template_id: str, server: ServerVersion) -> Target:
    snapshot = [(api.get_snapshot, target_from_snapshot)] if server.has_snapshots else []
    for get, target in [*snapshot, (api.get_run_template, target_from_run_template)]:
        with contextlib.suppress(NotFound):
            return target(client.call(get(template_id)))
    raise NotFound(
        f"No {_kinds(server)} has the ID {template_id}. Check `template`: copy the ID from the dashboard "
        "or `zenml pipeline snapshot list`, and make sure `workspace-url` points at the server that holds it."
    )


def _by_name(client: ZenMLClient, name: str, project: str, pipeline: str, server: ServerVersion) -> Target:
    snapshots = api.list_snapshots(name=name, project=project, pipeline=pipeline, hydrate=True)
    searches = [(SNAPSHOT, snapshots, "set `template` to the snapshot's ID")] if server.has_snapshots else []
    templates = api.list_run_templates(name=name, project=project, pipeline=pipeline)
    for kind, listing, by_id in [*searches, (RUN_TEMPLATE, templates, "`template` to the ID")]:
        # Exactly this name: a server that read the filter another way must
        # not make the action run something else.
        found = [entry for entry in api.items(client.call(listing)) if entry.get("name") == name]
        if len(found) > 1:
            described = ", ".join(
                f"`{name}` (pipeline `{api.dig(e, 'resources', 'pipeline', 'name') or '?'}`, id {e['id']})"
                for e in found
            )
            raise Ambiguous(
                f"{len(found)} {kind}s are named `{name}`: {described}. "
                f"Set `pipeline` to the pipeline you mean, or {by_id}."
            )
        if found:
            return _read(client, kind, found[0])
    where = f" of pipeline `{pipeline}`" if pipeline else ""
    raise NotFound(
        f"No {_kinds(server)} named `{name}`{where} exists{_in_project(project)}. "
        + _available(client, project, pipeline, server)
    )


def _newest_of_pipeline(client: ZenMLClient, project: str, pipeline: str, server: ServerVersion) -> Target:
    """The pipeline's newest runnable named snapshot; before 0.90, its newest runnable run template."""
    if server.has_snapshots:
        listing = api.list_snapshots(project=project, pipeline=pipeline, runnable=True, size=1, hydrate=True)
        kind, short, command = "named snapshot", "snapshot", "`zenml pipeline snapshot create`"
    else:
        listing = api.list_run_templates(project=project, pipeline=pipeline, size=20)
        kind, short, command = "run template", "template", "`zenml pipeline create-run-template`"
    found = api.items(client.call(listing))
    if not server.has_snapshots:  # the listing of run templates has no `runnable` filter
        found = [entry for entry in found if api.dig(entry, "body", "runnable")]
    if not found:
        raise NotFound(
            f"Pipeline `{pipeline}` has no runnable {kind}{_in_project(project)}. "
            f"A runnable {short} needs a remote stack and a container image build: create one with "
            f"{command} on such a stack, or set `template`. " + _available(client, project, pipeline, server)
        )
    return _read(client, SNAPSHOT if server.has_snapshots else RUN_TEMPLATE, found[0])


def _read(client: ZenMLClient, kind: str, listed: dict[str, Any]) -> Target:
    """The target a listing found. A snapshot's listing is hydrated: it is read
    on its own only if the server left out the pipeline spec."""
    if kind == RUN_TEMPLATE:
        return target_from_run_template(client.call(api.get_run_template(str(listed["id"]))))
    if api.dig(listed, "metadata", "pipeline_spec"):
        return target_from_snapshot(listed)
    return target_from_snapshot(client.call(api.get_snapshot(str(listed["id"]))))


def resolve(client: ZenMLClient, template: str, pipeline: str, project: str, server: ServerVersion) -> Target:
    if template and parse_uuid(template) is not None:
        target = _by_id(client, template, server)
        if pipeline and target.pipeline_name and target.pipeline_name != pipeline:
            raise Ambiguous(
                f"The {target.label} belongs to pipeline `{target.pipeline_name}`, "
                f"not `{pipeline}`. Fix `pipeline`, or leave it empty when `template` is an ID."
            )
    elif template:
        target = _by_name(client, template, project, pipeline, server)
    else:
        target = _newest_of_pipeline(client, project, pipeline, server)
    if not target.runnable:
        raise NotRunnable(
            f"The {target.label} cannot be run by the server: it was made on a stack with local components, "
            "or has no container image build. Create the snapshot on a remote stack (remote orchestrator, "
            "artifact store and container registry), or run the pipeline from code with "
            "`pipeline: path/to/file.py:pipeline`."
        )
    return target
