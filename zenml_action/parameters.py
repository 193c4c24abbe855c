"""Build the run configuration from `config`, `parameters` and `run-name`,
and check it against what the snapshot accepts before anything is sent.

The server ignores an unknown step name and accepts a wrongly typed step
parameter, and refuses pipeline-level parameters of a static pipeline; all
three would waste a run or confuse, so they are caught here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zenml_action.errors import InputError, ParameterError
from zenml_action.resolve import Target
from zenml_action.yaml_input import MAX_YAML_BYTES, parse_yaml_mapping

if TYPE_CHECKING:
    from zenml_action.inputs import Inputs

# `zenml.config.pipeline_run_configuration.PipelineRunConfiguration` in 0.98.
RUN_CONFIGURATION_KEYS = frozenset({
    "build", "cache_policy", "cleanup_hook_source", "enable_artifact_metadata",
    "enable_artifact_visualization", "enable_cache", "enable_heartbeat", "enable_pipeline_logs",
    "enable_step_logs", "end_hook_source", "environment", "execution_mode", "extra", "failure_hook_source",
    "init_hook_kwargs", "init_hook_source", "model", "parameters", "pause_hook_source", "resume_hook_source",
    "retry", "run_name", "schedule", "secrets", "settings", "skip_successful_steps", "start_hook_source",
    "step_default_input_overrides", "step_input_overrides", "steps", "steps_to_skip", "substitutions",
    "success_hook_source", "tags",
})
# Settings whose type is simple enough to check before the server does (its
# 422 answer names neither the input nor the fix).
BOOLEAN_SETTINGS = frozenset({
    "enable_artifact_metadata", "enable_artifact_visualization", "enable_cache", "enable_heartbeat",
    "enable_pipeline_logs", "enable_step_logs", "skip_successful_steps",
})
# `zenml.config.step_configurations.StepConfigurationUpdate` in 0.98.
STEP_CONFIGURATION_KEYS = frozenset({
    "cache_policy", "enable_artifact_metadata", "enable_artifact_visualization", "enable_cache",
    "enable_step_logs", "end_hook_source", "environment", "experiment_tracker", "extra",
    "failure_hook_source", "group", "heartbeat_healthy_threshold", "model", "outputs", "parameters", "retry",
    "runtime", "secrets", "settings", "start_hook_source", "step_operator", "substitutions",
    "success_hook_source",
})
# What a server refuses in a run configuration it runs itself.
SERVER_REFUSED_KEYS = frozenset({"build", "schedule"})


def _did_you_mean(word: str, choices: list[str]) -> str:
    import difflib  # only for an error message

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" Did you mean `{close[0]}`?" if close else ""


def _listed(names: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def workspace_file(name: str, raw_path: str, workspace: Path, kind: str) -> Path:
    """A regular file inside the workspace (symlinks and `..` resolved); a
    relative path is from the workspace, an absolute one stays as it is."""
    path = workspace / raw_path
    if not path.resolve().is_relative_to(workspace.resolve()):
        fix = "Give a path inside the repository checkout, relative to its root."
        raise InputError(name, f"`{raw_path}` is outside the workspace.", fix)
    if path.exists() and not path.is_file():
        # A directory, or a FIFO or device that would block or never end.
        raise InputError(name, f"`{raw_path}` is not a regular file.", f"Give the path of a {kind}.")
    if not path.exists():
        raise InputError(
            name,
            f"file `{raw_path}` does not exist in the workspace.",
            "Check the path (relative to the repository root) and that the "
            "workflow checks the repository out (actions/checkout) before this step.",
        )
    return path


def read_yaml_file(name: str, raw_path: str, workspace: Path) -> dict[str, Any]:
    path = workspace_file(name, raw_path, workspace, "YAML file")
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise InputError(name, f"`{raw_path}` is larger than {MAX_YAML_BYTES // 1024} KiB.", "Use a smaller file.")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(name, f"file `{raw_path}` cannot be read ({type(exc).__name__}).", "Check the file's permissions and encoding (UTF-8).") from exc
    return parse_yaml_mapping(name, text)


def load_parameters(raw: str, workspace: Path) -> dict[str, Any]:
    """`ci/params.yaml` is a file; `config_file: ci/params.yaml` and
    `{file: x.yaml}` are inline YAML that mention one."""
    text = raw.strip()
    single_line = "\n" not in text and ": " not in text and not text.startswith(("{", "["))
    if single_line and text.lower().endswith((".yaml", ".yml")):
        return read_yaml_file("parameters", text, workspace)
    return parse_yaml_mapping("parameters", raw)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = deep_merge(merged[key], value) if both else copy.deepcopy(value)
    return merged


def read_run_configuration(inputs: Inputs) -> dict[str, Any]:
    """`config` and `parameters` as one run configuration, the pipeline's
    arguments under `parameters:`, for both modes; read before any request,
    so input mistakes fail fast and offline."""
    config = read_yaml_file("config", inputs.config, inputs.workspace) if inputs.config else {}
    parameters = load_parameters(inputs.parameters, inputs.workspace)
    # A run-configuration fragment has `steps:` or `parameters:`; anything
    # else is a flat mapping of pipeline parameters.
    if parameters and "steps" not in parameters and "parameters" not in parameters:
        parameters = {"parameters": parameters}
    run_configuration = deep_merge(config, parameters)
    if inputs.run_name:
        run_configuration["run_name"] = inputs.run_name
    return run_configuration


def prepare_checks(run_configuration: dict[str, Any]) -> None:
    """Import the schema checker ahead of need (0.1-0.2 s), while the server
    works on something else; only when there is something to check."""
    if run_configuration.get("parameters") or run_configuration.get("steps"):
        import jsonschema  # noqa: F401


def _schema_errors(value: dict[str, Any], schema: dict[str, Any], where: str, source: str) -> None:
    """Raise the first JSON-schema violation in the user's words."""
    import jsonschema  # see prepare_checks

    properties = sorted(schema["properties"]) if isinstance(schema.get("properties"), dict) else []

    def first_error(checked: dict[str, Any]) -> jsonschema.ValidationError | None:
        errors = jsonschema.Draft202012Validator(checked).iter_errors(value)
        return min(errors, key=lambda error: list(error.path), default=None)

    try:
        error = first_error(schema)
    except (jsonschema.exceptions.SchemaError, jsonschema.exceptions.UnknownType, RecursionError, TypeError):
        # The server's schema is one the checker cannot read (an unknown
        # type, say): check the names it lists, leave the types to the server.
        error = first_error(_names_only_schema(tuple(properties)))
    if error is None:
        return
    if error.validator == "additionalProperties":
        unknown = sorted(set(value) - set(properties))
        name = unknown[0] if unknown else "?"
        raise ParameterError(
            f"`{name}` is not a parameter of {where}.{_did_you_mean(name, properties)} "
            f"Its parameters are: {_listed(properties) or 'none'}. Fix `{source}`."
        )
    field = ".".join(str(p) for p in error.path) or "(value)"
    expected = error.schema.get("type") if isinstance(error.schema, dict) else None
    detail = f"expected {expected}" if expected else error.message
    raise ParameterError(
        f"Parameter `{field}` of {where} has the wrong value {error.instance!r}: {detail}. Fix `{source}`."
    )


def _names_only_schema(names: tuple[str, ...]) -> dict[str, Any]:
    """What a server without `parameter_spec` (before 0.94.1) tells: the
    names a step takes, so unknown ones are caught, with no types."""
    return {"type": "object", "properties": {name: {} for name in names}, "additionalProperties": False}


def _spec_steps(target: Target) -> list[dict[str, Any]]:
    return [step for step in target.pipeline_spec.get("steps") or [] if isinstance(step, dict)]


def _steps(target: Target) -> dict[str, dict[str, Any]]:
    """Each step's parameter schema: typed where the server publishes it,
    names only where it states just names, empty where it states nothing."""
    steps: dict[str, dict[str, Any]] = {}
    for step in _spec_steps(target):
        # `invocation_id` from 0.90; 0.85's spec names a step by the parameter
        # its pipeline function passes it as.
        name = str(step.get("invocation_id") or step.get("pipeline_parameter_name") or step.get("name") or "")
        if name:
            steps[name] = step.get("parameter_spec") or {}
    for name, names in target.step_parameter_names.items():
        if not steps.get(name):
            steps[name] = _names_only_schema(names)
    return steps


def _steps_taking(parameter: str, steps: dict[str, dict[str, Any]]) -> list[str]:
    return [name for name, schema in steps.items() if parameter in (schema.get("properties") or {})]


def unchecked(target: Target) -> list[str]:
    """What the server does not state, so it cannot be checked before
    sending (said in a dry run)."""
    untyped = [] if all(step.get("parameter_spec") for step in _spec_steps(target)) else ["step"]
    untyped += [] if target.pipeline_spec.get("input_schema") else ["pipeline"]
    notes = []
    if untyped:
        notes.append(f"types of {' and '.join(untyped)} parameters are not checked: this server does not publish them")
    if unnamed_steps := [name for name, schema in _steps(target).items() if not schema]:
        notes.append(f"parameter names of step(s) {_listed(unnamed_steps)} are not checked: this server does not state them")
    return notes


def check_and_translate(run_configuration: dict[str, Any], target: Target, source: str) -> dict[str, Any]:
    """Validate against the snapshot and return the configuration to send."""
    config = copy.deepcopy(run_configuration)
    for key in config:
        if key not in RUN_CONFIGURATION_KEYS:
            raise ParameterError(
                f"`{key}` is not a run-configuration setting.{_did_you_mean(key, sorted(RUN_CONFIGURATION_KEYS))} "
                f"If it is a pipeline parameter, put it under `parameters:` or pass a flat mapping. Fix `{source}`."
            )
        if key in SERVER_REFUSED_KEYS:
            raise ParameterError(f"`{key}` cannot be set when the server runs a snapshot. Remove it from `{source}`.")
    # The types of the simple settings, in the user's words.
    for key in sorted(BOOLEAN_SETTINGS & set(config)):
        if config[key] is not None and not isinstance(config[key], bool):
            raise ParameterError(f"`{key}` must be `true` or `false`, not {config[key]!r}. Fix `{source}`.")
    if config.get("run_name") is not None and not isinstance(config["run_name"], str):
        raise ParameterError(f"`run_name` must be a string, not {config['run_name']!r}. Fix `{source}`.")
    tags = config.get("tags")
    tag_names = [t.get("name") if isinstance(t, dict) else t for t in tags] if isinstance(tags, list) else [None]
    if tags is not None and not all(isinstance(name, str) for name in tag_names):
        problem = f"`tags` must be a list of tag names (e.g. `tags: [nightly]`), not {tags!r}."
        raise ParameterError(f"{problem} Fix `{source}`.")
    steps = _steps(target)
    if not isinstance(config.get("steps", {}), dict):
        raise ParameterError(f"`steps` must be a mapping of step names. Fix `{source}`.")
    for step_name, step_config in (config.get("steps") or {}).items():
        if step_name not in steps:
            raise ParameterError(
                f"The pipeline `{target.pipeline_name}` has no step `{step_name}`."
                f"{_did_you_mean(step_name, sorted(steps))} Its steps are: "
                f"{_listed(list(steps))}. Fix `{source}`."
            )
        if not isinstance(step_config, dict):
            raise ParameterError(f"`steps.{step_name}` must be a mapping (e.g. `parameters: ...`). Fix `{source}`.")
        for key in step_config:
            if key not in STEP_CONFIGURATION_KEYS:
                raise ParameterError(
                    f"`steps.{step_name}.{key}` is not a step setting."
                    f"{_did_you_mean(key, sorted(STEP_CONFIGURATION_KEYS))} Step parameters go under "
                    f"`steps.{step_name}.parameters`. Fix `{source}`."
                )
        step_parameters = step_config.get("parameters") or {}
        if not isinstance(step_parameters, dict):
            raise ParameterError(f"`steps.{step_name}.parameters` must be a mapping. Fix `{source}`.")
        if steps[step_name]:
            _schema_errors(step_parameters, steps[step_name], f"step `{step_name}`", source)

    pipeline_parameters = config.pop("parameters", None) or {}
    if not isinstance(pipeline_parameters, dict):
        raise ParameterError(f"`parameters` must be a mapping. Fix `{source}`.")
    if not pipeline_parameters:
        return config
    # The pipeline function's parameters: from its input schema (0.90+), else
    # from the spec's `parameters` (their defaults; 0.85).
    spec = target.pipeline_spec
    input_schema = spec.get("input_schema") or {}
    declared_names = input_schema.get("properties") if input_schema else spec.get("parameters")
    declared = sorted(str(name) for name in declared_names) if isinstance(declared_names, dict) else []
    for name in pipeline_parameters:
        if name not in declared:
            owners = _steps_taking(name, steps)
            hint = (
                f" It is a parameter of step `{owners[0]}`: set it with "
                f"`steps: {{{owners[0]}: {{parameters: {{{name}: ...}}}}}}`."
                if owners
                else _did_you_mean(name, declared)
            )
            raise ParameterError(
                f"`{name}` is not a parameter of pipeline `{target.pipeline_name}`.{hint} "
                f"Its parameters are: {_listed(declared) or 'none'}. Fix `{source}`."
            )
    if input_schema:
        _schema_errors(pipeline_parameters, input_schema, f"pipeline `{target.pipeline_name}`", source)
    if target.is_dynamic:
        config["parameters"] = pipeline_parameters
        return config
    # A static pipeline's server-side run only takes step parameters: give
    # each value to the steps that have a parameter of the same name.
    config_steps = config.setdefault("steps", {})
    for name, value in pipeline_parameters.items():
        owners = _steps_taking(name, steps)
        if not owners:
            raise ParameterError(
                f"Pipeline parameter `{name}` is not passed to any step under that name, so "
                "it cannot be set on a server-side run of this static pipeline. Set the "
                f"step parameter it feeds with `steps: {{STEP: {{parameters: ...}}}}` in `{source}`."
            )
        for owner in owners:
            # Pipeline parameters come from the user's `parameters`, which
            # are merged over `config`: they win over a step value there.
            step_config = config_steps.setdefault(owner, {})
            step_config["parameters"] = {**(step_config.get("parameters") or {}), name: value}
    for owner in config_steps:
        if steps.get(owner):
            _schema_errors(config_steps[owner].get("parameters") or {}, steps[owner], f"step `{owner}`", source)
    return config
