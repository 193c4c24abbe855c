"""Code mode's child process, `python -m zenml_action.code_runner SPEC.json
RESULT.json` (run by `code_mode.py`, the ZenML environment set): import the
repository's pipeline and run it with the ZenML SDK. The only module that
imports `zenml`, in a process of its own so that the user's code, ZenML's
global state and its logging never mix with the action's. The result file
holds what was run, or an error of a kind the parent turns into an
`ActionError`."""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import sys
import traceback
from pathlib import Path
from typing import Any


class UserError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


def load_pipeline(workspace: Path, target: str, attribute: str) -> Any:
    from zenml.pipelines.pipeline_definition import Pipeline
    from zenml.utils import source_utils

    sys.path.insert(0, str(workspace))
    # Steps are found again by module name (and, on remote orchestrators, in
    # the uploaded code) relative to this root.
    source_utils.set_custom_source_root(str(workspace))
    module_name = ".".join(Path(target).with_suffix("").parts) if target.endswith(".py") else target
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UserError(
            "pipeline",
            f"cannot import `{target}`: module `{exc.name}` was not found. Check the path "
            "(relative to the repository root), and list the pipeline's dependencies in "
            "`requirements`.",
        ) from exc
    except SyntaxError as exc:
        raise UserError("pipeline", f"`{target}` has a syntax error at line {exc.lineno}: {exc.msg}.") from exc
    except Exception as exc:
        raise UserError(
            "pipeline", f"importing `{target}` failed: {type(exc).__name__}: {exc}. Fix the module so it imports."
        ) from exc
    if not hasattr(module, attribute):
        names = [n for n, v in vars(module).items() if isinstance(v, Pipeline)]
        close = difflib.get_close_matches(attribute, names, n=1)
        raise UserError(
            "pipeline",
            f"`{target}` has no attribute `{attribute}`."
            + (f" Did you mean `{close[0]}`?" if close else "")
            + (f" Its pipelines: {', '.join(f'`{n}`' for n in names)}." if names else " It defines no pipeline."),
        )
    pipeline = getattr(module, attribute)
    if not isinstance(pipeline, Pipeline):
        raise UserError(
            "pipeline", f"`{target}:{attribute}` is a {type(pipeline).__name__}, not a ZenML pipeline (@pipeline)."
        )
    return pipeline


def check_parameters(pipeline: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    """The arguments' names and types against the pipeline function's."""
    from pydantic import TypeAdapter, ValidationError

    signature = inspect.signature(pipeline.entrypoint)
    declared = list(signature.parameters)
    checked = {}
    for name, value in parameters.items():
        if name not in signature.parameters:
            close = difflib.get_close_matches(name, declared, n=1)
            raise UserError(
                "parameters",
                f"`{name}` is not a parameter of pipeline `{pipeline.name}`."
                + (f" Did you mean `{close[0]}`?" if close else "")
                + f" Its parameters are: {', '.join(f'`{p}`' for p in declared) or 'none'}.",
            )
        annotation = signature.parameters[name].annotation
        untyped = annotation is inspect.Parameter.empty
        try:
            checked[name] = TypeAdapter(Any if untyped else annotation).validate_python(value)
        except ValidationError as exc:
            expected = getattr(annotation, "__name__", str(annotation))
            raise UserError(
                "parameters",
                f"parameter `{name}` of pipeline `{pipeline.name}` has the wrong value {value!r}: expected {expected}.",
            ) from exc
    return checked


def run_info(run: Any, failure: str) -> dict[str, Any]:
    """The run as the parent reports it; if it failed (`failure`: what the
    SDK raised), what its failed steps raised ("step `load_data`: ...")."""
    from zenml.client import Client

    run = Client().get_pipeline_run(run.id, hydrate=True)
    info = {
        "run_id": str(run.id),
        "run_name": run.name,
        "status": str(run.status.value if hasattr(run.status, "value") else run.status),
        "project_id": str(run.project_id),
        # Before 0.90 a run has a deployment (`deployment_id`), no snapshot.
        "snapshot_id": str(run.snapshot.id) if getattr(run, "snapshot", None) else "",
        "metadata": json.loads(json.dumps(dict(run.run_metadata), default=str)),
    }
    if failure:
        failures = []
        for name, step in run.steps.items():
            if (raised := getattr(step, "exception_info", None)) is not None:
                last_line = (raised.traceback.strip().splitlines() or [""])[-1]
                failures.append(f"step `{name}`: {raised.message or last_line}")
        info["error"] = {"kind": "run_failed", "message": "; ".join(failures) or failure}
    return info


def record_context(run: Any, context: dict[str, str]) -> dict[str, str]:
    """Record where the run came from (the `github.*` keys) on the run, as
    the parent does over REST when there is a server. A failure costs only
    that: a warning in the result, not the run's outcome."""
    if not context:
        return {}
    from zenml import log_metadata

    try:
        log_metadata(metadata=dict(context), run_id_name_or_prefix=run.id)
    except Exception as exc:
        return {"warning": f"Could not record the GitHub context on run {run.id}: {type(exc).__name__}: {exc}"}
    return {}


def started_run(spec: dict[str, Any]) -> Any:
    """The run this process started, by the key the action gave it: the run
    name it chose, or its one-off tag."""
    from zenml.client import Client

    key = {"name": f"equals:{spec['run_name']}"} if spec.get("run_name") else {"tags": [spec["tag"]]}
    return next(iter(Client().list_pipeline_runs(size=1, hydrate=True, **key).items), None)


def execute(spec: dict[str, Any]) -> dict[str, Any]:
    pipeline = load_pipeline(Path(spec["workspace"]), spec["target"], spec["attribute"])
    parameters = check_parameters(pipeline, spec["parameters"])
    if spec.get("check_only"):
        return {}
    from zenml.client import Client

    if spec.get("stack"):
        try:
            Client().activate_stack(spec["stack"])
        except KeyError as exc:
            stacks = [s.name for s in Client().list_stacks(size=20).items]
            raise UserError(
                "stack", f"there is no stack `{spec['stack']}`. Stacks: {', '.join(f'`{s}`' for s in stacks)}."
            ) from exc
    # In the action's private directory (beside the spec), which it removes.
    config_file = Path(spec["config_file"])
    config_file.write_text(json.dumps(spec["run_configuration"]))  # JSON is YAML
    configured = pipeline.with_options(config_path=str(config_file))
    if spec.get("create_snapshot"):
        if parameters:
            configured = configured.with_options(parameters=parameters)
        snapshot = configured.create_snapshot(name=spec["create_snapshot"], replace=True)
        ids = {"snapshot_id": str(snapshot.id), "project_id": str(snapshot.project_id)}
        return {**ids, "runnable": bool(snapshot.runnable)}
    failure = ""
    try:
        run = configured(**parameters)
    except Exception as exc:
        run, failure = None, f"{type(exc).__name__}: {exc}"
    run = started_run(spec) if run is None else run
    if run is None:
        kind = "run_failed" if failure else "internal"
        return {"error": {"kind": kind, "message": failure or "the run was not found"}}
    return {**record_context(run, spec.get("github_context") or {}), **run_info(run, failure)}


def main(argv: list[str]) -> None:
    spec_path, result_path = argv
    spec = json.loads(Path(spec_path).read_text())
    spec["config_file"] = str(Path(spec_path).with_name("run-config.yaml"))
    try:
        result = execute(spec)
    except UserError as exc:
        result = {"error": {"kind": exc.kind, "message": str(exc)}}
    except Exception as exc:
        error = {"kind": "internal", "message": f"{type(exc).__name__}: {exc}"}
        result = {"error": {**error, "traceback": traceback.format_exc()}}
    Path(result_path).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
