"""Code mode: run the repository's pipeline with the ZenML SDK.

For open-source servers that cannot run snapshots, and for users with no
server at all (then the run is recorded in a local ZenML store inside the
workspace). The SDK runs in a child process (`code_runner.py`); this side
prepares it, waits, and reports, through the same REST client and waiting
loop as the server-side mode.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zenml_action import api, evaluation, runs
from zenml_action.client import ZenMLClient, connect
from zenml_action.errors import (
    ActionError,
    Cancelled,
    InputError,
    ParameterError,
    RunFailed,
    ServerError,
    WaitTimedOut,
)
from zenml_action.github import Console, Relay
from zenml_action.http import Deadline
from zenml_action.inputs import Inputs
from zenml_action.parameters import deep_merge, inside_workspace, is_fragment, load_parameters, read_yaml_file
from zenml_action.report import Report
from zenml_action.trigger import RunKey, choose_key, find_run, forget_tag
from zenml_action.versions import Release, ServerVersion, parse_release, server_version, show
from zenml_action.waiting import wait_for_run

LOCAL_STORE_DIR = ".zenml-local"
ACTION_ROOT = str(Path(__file__).resolve().parent.parent)
MODULE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
ATTRIBUTE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class PipelineSource:
    target: str  # "pipelines/training.py" or "pipelines.training"
    attribute: str


def parse_pipeline_source(raw: str, workspace: Path) -> PipelineSource:
    target, _, attribute = raw.rpartition(":")
    fix = "Write `path/to/file.py:pipeline_function` or `package.module:pipeline_function`."
    if not ATTRIBUTE_PATTERN.fullmatch(attribute):
        raise InputError("pipeline", f"`{raw}` does not end in `:name` of a pipeline.", fix)
    if target.endswith(".py"):
        path = Path(target)
        full = path if path.is_absolute() else workspace / path
        if not inside_workspace(full, workspace):
            raise InputError("pipeline", f"`{target}` is outside the workspace.", "Give a path inside the repository, relative to its root.")
        if not full.is_file():
            raise InputError(
                "pipeline",
                f"file `{target}` does not exist in the workspace.",
                "Check the path (relative to the repository root) and that the workflow "
                "checks the repository out (actions/checkout) before this step.",
            )
        relative = full.resolve().relative_to(workspace.resolve())
        if not all(MODULE_PATTERN.fullmatch(part) for part in relative.with_suffix("").parts):
            raise InputError("pipeline", f"`{target}` is not importable as a module path.", "Use folder and file names that are Python identifiers.")
        return PipelineSource(str(relative), attribute)
    if not MODULE_PATTERN.fullmatch(target):
        raise InputError("pipeline", f"`{target}` is neither a .py file nor a module name.", fix)
    return PipelineSource(target, attribute)


def split_parameters(inputs: Inputs) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline arguments, run configuration) from `config` and `parameters`."""
    config = read_yaml_file("config", inputs.config, inputs.workspace) if inputs.config else {}
    parameters = load_parameters(inputs.parameters, inputs.workspace)
    if is_fragment(parameters):
        config = deep_merge(config, parameters)
        parameters = {}
    nested = config.pop("parameters", None) or {}
    if not isinstance(nested, dict):
        source = "parameters" if is_fragment(load_parameters(inputs.parameters, inputs.workspace)) else "config"
        raise InputError(
            source,
            f"has a `parameters:` key holding a {type(nested).__name__}, not a mapping.",
            "Write the pipeline's arguments as `parameters:` followed by `name: value` lines.",
        )
    arguments = {**nested, **parameters}
    if inputs.run_name:
        config["run_name"] = inputs.run_name
    return arguments, config


def zenml_environment(inputs: Inputs, private_dir: Path) -> dict[str, str]:
    """The child's environment. With a server, the ZenML client's config
    (which holds the key and a token) lives in this run's private directory,
    removed when the action ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "INPUT_"))}
    env.update(
        ZENML_ANALYTICS_OPT_IN="false",
        ZENML_ENABLE_RICH_TRACEBACK="false",
        ZENML_LOGGING_COLORS_DISABLED="true",
        PYTHONUNBUFFERED="1",
    )
    if inputs.workspace_url:
        env.update(
            ZENML_STORE_URL=inputs.workspace_url,
            ZENML_STORE_API_KEY=inputs.api_key,
            ZENML_CONFIG_PATH=str(private_dir / "zenml-config"),
        )
        if inputs.ca_bundle:
            env["ZENML_STORE_VERIFY_SSL"] = str(inputs.ca_bundle)
    else:
        # No server: a local store inside the workspace, nothing in $HOME.
        env["ZENML_CONFIG_PATH"] = str(inputs.workspace / LOCAL_STORE_DIR)
    return env


def requirements_file(inputs: Inputs) -> Path | None:
    if not inputs.requirements:
        return None
    path = Path(inputs.requirements)
    full = path if path.is_absolute() else inputs.workspace / path
    if not inside_workspace(full, inputs.workspace):
        raise InputError("requirements", f"`{inputs.requirements}` is outside the workspace.", "Give a path inside the repository.")
    if not full.is_file():
        raise InputError("requirements", f"file `{inputs.requirements}` does not exist.", "Check the path, relative to the repository root.")
    return full


def install_requirements(inputs: Inputs, console: Console, python: str = sys.executable) -> None:
    full = requirements_file(inputs)
    if full is None:
        return
    console.group(f"Installing {inputs.requirements}")
    started = time.monotonic()
    # uv skips what is already installed, so a second run costs little.
    result = subprocess.run(
        [sys.executable, "-m", "uv", "pip", "install", "--python", python, "-r", str(full)],
        capture_output=True,
        text=True,
    )
    console.info((result.stdout + result.stderr).strip())
    console.endgroup()
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise InputError(
            "requirements",
            f"installing `{inputs.requirements}` failed: {last}",
            "Fix the requirements file (versions must exist on the package index).",
        )
    console.info(f"Requirements ready in {time.monotonic() - started:.1f}s.")


def local_zenml_release() -> Release | None:
    try:
        return parse_release(importlib.metadata.version("zenml"))
    except importlib.metadata.PackageNotFoundError:
        return None


def client_cache_dir() -> Path:
    """Where client environments are kept between runs on the same machine."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "zenml-action" / "clients"


def client_zenml_version(server: ServerVersion) -> str:
    """The zenml release to install for a server: a plain release as
    stated; a dev, rc or Pro build's string is not on the package index, its
    release is. Not capped at the newest tested version: the client must
    speak the server's API."""
    if re.fullmatch(r"\d+\.\d+\.\d+", server.raw):
        return server.raw
    return show(parse_release(server.raw) or server.release)


def client_python(server: ServerVersion, inputs: Inputs, console: Console) -> str:
    """The interpreter the pipeline runs with. The SDK must speak the
    server's API (the same release series): the action's own environment
    when its zenml is of that series, else a client environment of its own
    per zenml version and requirements file, made once with uv and reused.
    The action's own environment is never changed: zenml 0.85 pins pydantic,
    click and sqlmodel versions that break 0.98's."""
    version = client_zenml_version(server)
    local = local_zenml_release()
    if local is not None and local[:2] == (parse_release(version) or server.release)[:2]:
        install_requirements(inputs, console)
        return sys.executable
    requirements = requirements_file(inputs)
    key = f"zenml-{version}-py{sys.version_info[0]}{sys.version_info[1]}"
    if requirements is not None:
        key += "-" + hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    venv = client_cache_dir() / key
    python = venv / "bin" / "python"
    if (venv / ".installed").exists() and python.exists():
        console.info(f"Using the ZenML {version} client environment in {venv}.")
        return str(python)
    console.info(f"Making a ZenML {version} client environment to match the server ({venv}).")
    started = time.monotonic()
    uv = [sys.executable, "-m", "uv"]
    made = subprocess.run(
        [*uv, "venv", "--quiet", "--allow-existing", "--python", sys.executable, str(venv)],
        capture_output=True,
        text=True,
    )
    install = [*uv, "pip", "install", "--quiet", "--python", str(python), f"zenml=={version}"]
    if requirements is not None:
        install += ["-r", str(requirements)]
    result = made if made.returncode != 0 else subprocess.run(install, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        raise ServerError(
            f"The server runs ZenML {server.raw} and a matching client could not be installed "
            f"({last}). Run the action on a runner with access to PyPI"
            + (f", and check that `{inputs.requirements}` can be installed beside zenml=={version}." if requirements else ".")
        )
    (venv / ".installed").write_text(f"zenml=={version}\n")
    console.info(f"ZenML {version} client environment ready in {time.monotonic() - started:.1f}s.")
    return str(python)


def raise_child_error(error: dict[str, Any], source: PipelineSource) -> None:
    kind, message = str(error.get("kind")), str(error.get("message"))
    if kind in ("pipeline", "stack"):
        raise InputError(kind, message, "")
    if kind == "parameters":
        raise ParameterError(f"{message} Fix `parameters`.")
    if kind == "run_failed":
        raise RunFailed(f"The pipeline `{source.target}:{source.attribute}` failed: {message}")
    raise ActionError(f"Running the pipeline failed unexpectedly: {message}")


def run(inputs: Inputs, console: Console, report: Report) -> None:
    source = parse_pipeline_source(inputs.pipeline, inputs.workspace)
    arguments, run_configuration = split_parameters(inputs)
    report.target = f"{source.target}:{source.attribute} (code)"
    report.sent = {"parameters": arguments, **run_configuration} if arguments else run_configuration
    if inputs.dry_run:
        _dry_run(inputs, console, report, source, arguments)
        return
    deadline = Deadline(inputs.timeout)
    # Readable by this user only, and removed whatever happens: it holds the
    # ZenML client's credentials.
    private_dir = Path(tempfile.mkdtemp(prefix="zenml-action-"))
    client: ZenMLClient | None = None
    key = choose_key(inputs.run_name, source.attribute, (inputs.github_run_id, inputs.github_run_attempt, inputs.github_action))
    try:
        client, info, server = _connect(inputs, console, deadline)
        if server is not None and inputs.create_snapshot and not server.has_snapshots:
            raise InputError(
                "create-snapshot",
                f"the server runs ZenML {server.raw}, which has no snapshots (they arrive in ZenML 0.90).",
                "Upgrade the server to 0.90 or later, or leave `create-snapshot` empty to run the pipeline.",
            )
        if server is not None:
            python = client_python(server, inputs, console)
        else:
            install_requirements(inputs, console)
            python = sys.executable
        _run(inputs, console, report, source, arguments, key.apply(run_configuration), key, client, info, deadline, private_dir, python)
    except Cancelled:
        report.conclusion = "cancelled"
        raise
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)
        if client is not None:
            forget_tag(client, key, console)


def _run(
    inputs: Inputs,
    console: Console,
    report: Report,
    source: PipelineSource,
    arguments: dict[str, Any],
    run_configuration: dict[str, Any],
    key: RunKey,
    client: ZenMLClient | None,
    info: Any,
    deadline: Deadline,
    private_dir: Path,
    python: str,
) -> None:
    spec = {
        "workspace": str(inputs.workspace),
        "target": source.target,
        "attribute": source.attribute,
        "parameters": arguments,
        "run_configuration": run_configuration,
        "stack": inputs.stack,
        "create_snapshot": inputs.create_snapshot,
        "run_name": key.run_name,
        "tag": key.tag,
        # With a server, the GitHub context is attached over REST once the
        # run exists (`evaluation.attach_context`); a local store can only
        # be written by the SDK, in the child.
        "github_context": inputs.github if client is None else {},
    }
    started = time.monotonic()
    result = _run_child(inputs, console, report, spec, client, key, deadline, private_dir, python)
    if result.get("warning"):
        console.warning(str(result["warning"]))
    _fill_report(report, result, info, client)
    report.duration_seconds = time.monotonic() - started
    if "error" in result:
        _child_failed(inputs, console, report, result["error"], source)
        return
    if inputs.create_snapshot:
        _snapshot_created(inputs, console, report, result)
        return
    finished = api.is_finished(report.status)
    run: dict[str, Any] = {"id": report.run_id}
    if client is not None:
        evaluation.attach_context(client, str(result.get("project_id", "")), report.run_id, inputs.github, console)
        if inputs.wait and not finished:
            # A remote orchestrator returns once the run is submitted.
            outcome = wait_for_run(client, report.run_id, report.status, deadline, inputs.poll_interval, console)
            report.status, finished = outcome.status, outcome.finished
            report.duration_seconds = time.monotonic() - started
        if finished:
            run = runs.read_run(client, report.run_id, console)
            report.metadata = api.run_metadata(run) or report.metadata
    console.info(f"Run `{report.run_name}` ({report.run_id}): {report.status}")
    if report.metadata:
        console.info("Metadata: " + json.dumps(report.metadata, sort_keys=True, default=str))
    runs.finish(client, inputs, report, run, finished, console)


def _dry_run(inputs: Inputs, console: Console, report: Report, source: PipelineSource, arguments: dict[str, Any]) -> None:
    """Everything but the run: import the pipeline and check its arguments
    against its signature, in a child process as a real run would."""
    install_requirements(inputs, console)
    private_dir = Path(tempfile.mkdtemp(prefix="zenml-action-"))
    try:
        spec_file, result_file = private_dir / "spec.json", private_dir / "result.json"
        spec = {"workspace": str(inputs.workspace), "target": source.target, "attribute": source.attribute,
                "parameters": arguments, "check_only": True}
        spec_file.write_text(json.dumps(spec))
        # No server and no store: importing the pipeline needs neither.
        env = zenml_environment(dataclasses.replace(inputs, workspace_url=""), private_dir)
        env["ZENML_CONFIG_PATH"] = str(private_dir / "zenml-config")
        completed = subprocess.run(
            [sys.executable, "-m", "zenml_action.code_runner", str(spec_file), str(result_file)],
            env=env, cwd=inputs.workspace, capture_output=True, timeout=max(10.0, inputs.timeout),
        )
        result = json.loads(result_file.read_text()) if result_file.exists() else {
            "error": {"kind": "internal", "message": f"the runner exited with code {completed.returncode}"}
        }
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)
    if "error" in result:
        raise_child_error(result["error"], source)
    console.info(
        f"Dry run: `{source.target}:{source.attribute}` imports and takes these arguments; it would run with "
        f"{json.dumps(report.sent, sort_keys=True)}"
    )
    report.conclusion = "dry-run"


def _connect(
    inputs: Inputs, console: Console, deadline: Deadline
) -> tuple[ZenMLClient | None, Any, ServerVersion | None]:
    """Log in to the server, if there is one, and learn its version."""
    if not inputs.workspace_url:
        return None, {}, None
    client = connect(inputs, console, deadline)
    client.login()
    info = client.call(api.server_info())
    server, notice = server_version(info)
    if notice:
        console.notice(notice)
    return client, info, server


def _run_child(
    inputs: Inputs,
    console: Console,
    report: Report,
    spec: dict[str, Any],
    client: ZenMLClient | None,
    key: RunKey,
    deadline: Deadline,
    private_dir: Path,
    python: str,
) -> dict[str, Any]:
    """Run `code_runner` and return its result; on cancel or timeout, end it
    and stop the run it started."""
    spec_file, result_file = private_dir / "spec.json", private_dir / "result.json"
    spec_file.write_text(json.dumps(spec))
    started = time.monotonic()
    console.info(f"Running `{spec['target']}:{spec['attribute']}` from the repository's code.")
    # The pipeline's own log (with a failed step's traceback, as ZenML
    # logs it) is folded away; the action's findings follow it. It is relayed
    # as inert text: a line of it can never become a workflow command.
    console.group("Pipeline log")
    env = zenml_environment(inputs, private_dir)
    # A client environment of its own finds the runner (standard library
    # only) through the action's root; the workspace, the current
    # directory, still comes first on its path.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ACTION_ROOT, env.get("PYTHONPATH", "")) if p)
    child = subprocess.Popen(
        [python, "-m", "zenml_action.code_runner", str(spec_file), str(result_file)],
        env=env,
        cwd=inputs.workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    relay = console.relay()
    copier = threading.Thread(target=_copy_lines, args=(child, relay), daemon=True)
    copier.start()

    def log_ended() -> None:
        copier.join(timeout=5)
        relay.close()
        console.endgroup()

    try:
        child.wait(timeout=max(0.1, deadline.left()))
        log_ended()
    except (Cancelled, subprocess.TimeoutExpired) as exc:
        _end_child(child)
        log_ended()
        report.duration_seconds = time.monotonic() - started
        report.conclusion = "cancelled" if isinstance(exc, Cancelled) else "timeout"
        if client is not None:
            _stop_started_run(client, key, inputs, console, report)
        if isinstance(exc, Cancelled):
            raise
        raise WaitTimedOut(f"The pipeline was still running after {inputs.timeout:g}s. Raise `timeout`.") from None
    if not result_file.exists():
        return {"error": {"kind": "internal", "message": f"the runner exited with code {child.returncode}"}}
    return dict(json.loads(result_file.read_text()))


def _copy_lines(child: subprocess.Popen[bytes], relay: Relay) -> None:
    assert child.stdout is not None
    for raw in child.stdout:
        relay.line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))


def _child_failed(
    inputs: Inputs, console: Console, report: Report, error: dict[str, Any], source: PipelineSource
) -> None:
    if error.get("traceback"):
        console.debug(str(error["traceback"]))
    if error.get("kind") == "run_failed" and report.run_id:
        report.conclusion = "failure"
        if not inputs.fail_on_run_failure:
            console.warning(f"The run failed: {error.get('message')}")
            return
    raise_child_error(error, source)


def _snapshot_created(inputs: Inputs, console: Console, report: Report, result: dict[str, Any]) -> None:
    report.conclusion = "success"
    console.info(f"Snapshot `{inputs.create_snapshot}` is {result['snapshot_id']}.")
    if not result.get("runnable"):
        console.warning(
            f"Snapshot `{inputs.create_snapshot}` cannot be run by the server: it was made on a "
            "stack with local components. Set `stack` to a remote stack to trigger it later."
        )


def _end_child(child: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=3)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _stop_started_run(client: ZenMLClient, key: RunKey, inputs: Inputs, console: Console, report: Report) -> None:
    try:
        found = find_run(client, key, Deadline(runs.STOP_SECONDS))
    except ActionError:
        return
    if found:
        report.run_id = str(found.get("id", ""))
        report.run_name = str(found.get("name", ""))
        report.status = api.decode_status(found)
        if inputs.stop_on_cancel and not api.is_finished(report.status):
            runs.stop(client, report.run_id, console, report.conclusion)


def _fill_report(report: Report, result: dict[str, Any], info: Any, client: ZenMLClient | None) -> None:
    report.run_id = str(result.get("run_id", ""))
    report.run_name = str(result.get("run_name", ""))
    report.status = str(result.get("status", ""))
    report.snapshot_id = str(result.get("snapshot_id", ""))
    report.metadata = result.get("metadata") or {}
    if client is not None and report.run_id:
        project_id = str(result.get("project_id", ""))
        report.run_url = api.dashboard_run_url(info, client.base_url, project_id, report.run_id)
