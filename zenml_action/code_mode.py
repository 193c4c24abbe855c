"""Code mode: run the repository's pipeline with the ZenML SDK, for
open-source servers that cannot run snapshots and for users with no server
(a local ZenML store inside the workspace). The SDK runs in a child process
(`code_runner.py`); this side prepares it, waits and reports, through the
same REST client and waiting loop as the server-side mode."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from zenml_action import api, deadline, runs
from zenml_action.client import connect
from zenml_action.code_env import client_python, install_requirements, zenml_environment
from zenml_action.errors import ActionError, InputError, ParameterError, RunFailed
from zenml_action.github import Console
from zenml_action.inputs import Inputs
from zenml_action.parameters import read_run_configuration, workspace_file
from zenml_action.report import Report
from zenml_action.trigger import RunKey, choose_key, forget_tag
from zenml_action.versions import server_version, stated

ACTION_ROOT = str(Path(__file__).resolve().parent.parent)
MODULE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
ATTRIBUTE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_pipeline_source(raw: str, workspace: Path) -> tuple[str, str]:
    """(`pipelines/training.py` or `pipelines.training`, the pipeline's name)."""
    target, _, attribute = raw.rpartition(":")
    fix = "Write `path/to/file.py:pipeline_function` or `package.module:pipeline_function`."
    if not ATTRIBUTE_PATTERN.fullmatch(attribute):
        raise InputError("pipeline", f"`{raw}` does not end in `:name` of a pipeline.", fix)
    if target.endswith(".py"):
        full = workspace_file("pipeline", target, workspace, "Python file")
        relative = full.resolve().relative_to(workspace.resolve())
        if not all(MODULE_PATTERN.fullmatch(part) for part in relative.with_suffix("").parts):
            raise InputError("pipeline", f"`{target}` is not importable as a module path.", "Use folder and file names that are Python identifiers.")
        return str(relative), attribute
    if not MODULE_PATTERN.fullmatch(target):
        raise InputError("pipeline", f"`{target}` is neither a .py file nor a module name.", fix)
    return target, attribute


def raise_child_error(error: dict[str, Any], pipeline: str) -> None:
    kind, message = str(error.get("kind")), str(error.get("message"))
    if kind in ("pipeline", "stack"):
        raise InputError(kind, message, "")
    if kind == "parameters":
        raise ParameterError(f"{message} Fix `parameters`.")
    if kind == "run_failed":
        raise RunFailed(f"The pipeline `{pipeline}` failed: {message}")
    raise ActionError(f"Running the pipeline failed unexpectedly: {message}")


def run(inputs: Inputs, console: Console, report: Report) -> None:
    target, attribute = parse_pipeline_source(inputs.pipeline, inputs.workspace)
    pipeline = f"{target}:{attribute}"
    run_configuration = read_run_configuration(inputs)
    arguments = run_configuration.pop("parameters", None) or {}
    if not isinstance(arguments, dict):
        problem = f"has a `parameters:` key holding a {type(arguments).__name__}, not a mapping."
        fix = "Write the pipeline's arguments as `parameters:` followed by `name: value` lines."
        raise InputError("parameters" if inputs.parameters.strip() else "config", problem, fix)
    report.target = f"{pipeline} (code)"
    report.sent = {"parameters": arguments, **run_configuration} if arguments else run_configuration
    spec = {"workspace": str(inputs.workspace), "target": target, "attribute": attribute,
            "parameters": arguments}
    if inputs.dry_run:
        _dry_run(inputs, console, report, pipeline, spec)
        return
    origin = (inputs.github_run_id, inputs.github_run_attempt, inputs.github_action)
    key = choose_key(inputs.run_name, attribute, origin)
    spec |= {
        "run_configuration": key.apply(run_configuration),
        "stack": inputs.stack,
        "create_snapshot": inputs.create_snapshot,
        "run_name": key.run_name,
        "tag": key.tag,
        # With a server, the GitHub context is recorded over REST once the
        # run exists (`runs.follow`); a local store only the SDK can write.
        "github_context": {} if inputs.workspace_url else inputs.github,
    }
    client = connect(inputs, console) if inputs.workspace_url else None  # nothing is sent yet
    action = runs.Action(inputs, console, report, client)
    # Readable by this user only, and removed whatever happens: it holds the
    # ZenML client's credentials.
    with tempfile.TemporaryDirectory(prefix="zenml-action-", ignore_cleanup_errors=True) as private_dir:
        child = Child(Path(private_dir))
        try:
            info, python = _prepare(action)
            started = time.monotonic()
            result = child.run(action, spec, python)
            _after_child(action, result, info, pipeline, started, key)
        except deadline.Interrupted as stop:
            runs.interrupted(action, key, stop, end_child=child.end)
            raise
        except ActionError:
            if action.client is not None:
                forget_tag(action.client, key, console)  # the run failed or was never made
            raise


def _prepare(action: runs.Action) -> tuple[Any, str]:
    """The server's `/info` and the Python the pipeline runs with."""
    inputs, console, client = action.inputs, action.console, action.client
    if client is None:
        deadline.entering(f"installing `{inputs.requirements}`")
        install_requirements(inputs, console)
        return {}, sys.executable
    deadline.entering("logging in")
    client.login()
    info = client.call(api.server_info())
    server, notice = server_version(info)
    if notice:
        console.notice(notice)
    if inputs.create_snapshot and not server.has_snapshots:
        problem = f"the server runs ZenML {server.raw}, which has no snapshots (they arrive in ZenML 0.90)."
        fix = "Upgrade the server to 0.90 or later, or leave `create-snapshot` empty to run the pipeline."
        raise InputError("create-snapshot", problem, fix)
    deadline.entering("preparing the ZenML client and `requirements`")
    return info, client_python(server, inputs, console)


def _after_child(
    action: runs.Action, result: dict[str, Any], info: Any, pipeline: str, started: float, key: RunKey
) -> None:
    """What the child found, into the report; then the run is followed as
    in server-side mode (a remote orchestrator returns once it is
    submitted: it is waited for)."""
    inputs, console, report, client = action.inputs, action.console, action.report, action.client
    if result.get("warning"):
        console.warning(str(result["warning"]))
    project_id, run_id = str(result.get("project_id", "")), str(result.get("run_id", ""))
    run_url = api.dashboard_run_url(info, client.base_url, project_id, run_id) if client and run_id else ""
    status = {"status": result.get("status", ""), "project_id": project_id}
    run = {"id": run_id, "name": result.get("run_name", ""), "body": status}
    runs.adopt(report, run, run_url)
    report.snapshot_id = str(result.get("snapshot_id", ""))
    report.metadata = result.get("metadata") or {}
    report.duration_seconds = time.monotonic() - started
    child_error = ""
    if "error" in result:
        error = result["error"]
        if error.get("traceback"):
            console.debug(str(error["traceback"]))
        if error.get("kind") != "run_failed" or not report.run_id:
            raise_child_error(error, pipeline)
        # A failed run is followed like a completed one: its failed steps,
        # its report and result, the GitHub context, then the conclusion.
        report.status = "failed"
        child_error = str(error.get("message", ""))
    if inputs.create_snapshot:
        report.conclusion = "success"
        console.info(f"Snapshot `{inputs.create_snapshot}` is {result['snapshot_id']}.")
        if not result.get("runnable"):
            console.warning(
                f"Snapshot `{inputs.create_snapshot}` cannot be run by the server: it was made on a "
                "stack with local components. Set `stack` to a remote stack to trigger it later."
            )
        return
    console.info(f"Run `{report.run_name}` ({report.run_id}): {report.status}")
    if report.metadata:
        console.info("Metadata: " + json.dumps(report.metadata, sort_keys=True, default=str))
    runs.follow(dataclasses.replace(action, server=stated(info)), run, started, key, child_error)


def _dry_run(inputs: Inputs, console: Console, report: Report, pipeline: str, spec: dict[str, Any]) -> None:
    """Everything but the run: import the pipeline and check its arguments
    against its signature, in a child process as a real run would."""
    install_requirements(inputs, console)
    with tempfile.TemporaryDirectory(prefix="zenml-action-", ignore_cleanup_errors=True) as private:
        # No server and no store: importing the pipeline needs neither.
        env = zenml_environment(dataclasses.replace(inputs, workspace_url=""), Path(private))
        env["ZENML_CONFIG_PATH"] = str(Path(private, "zenml-config"))
        command = _runner_command(sys.executable, Path(private), {**spec, "check_only": True})
        completed = subprocess.run(command, env=env, cwd=inputs.workspace, capture_output=True)
        result = _read_result(Path(private), completed.returncode)
    if "error" in result:
        raise_child_error(result["error"], pipeline)
    console.info(
        f"Dry run: `{pipeline}` imports and takes these arguments; it would run with "
        f"{json.dumps(report.sent, sort_keys=True)}"
    )
    report.conclusion = "dry-run"


def _runner_command(python: str, private_dir: Path, spec: dict[str, Any]) -> list[str]:
    spec_file = private_dir / "spec.json"
    spec_file.write_text(json.dumps(spec))
    return [python, "-m", "zenml_action.code_runner", str(spec_file), str(private_dir / "result.json")]


def _read_result(private_dir: Path, returncode: int) -> dict[str, Any]:
    result_file = private_dir / "result.json"
    if not result_file.exists():
        return {"error": {"kind": "internal", "message": f"the runner exited with code {returncode}"}}
    return dict(json.loads(result_file.read_text()))


class Child:
    """`code_runner` in a child process, in its own process group, its log
    relayed as inert text (a line of it can never become a workflow
    command), folded away."""

    def __init__(self, private_dir: Path) -> None:
        self.private_dir = private_dir
        self.process: subprocess.Popen[bytes] | None = None
        self._log = contextlib.ExitStack()  # closes the log's group, in `run` or `end`

    def run(self, action: runs.Action, spec: dict[str, Any], python: str) -> dict[str, Any]:
        inputs, console = action.inputs, action.console
        console.info(f"Running `{spec['target']}:{spec['attribute']}` from the repository's code.")
        env = zenml_environment(inputs, self.private_dir)
        # A client environment of its own finds the runner (standard library
        # only) through the action's root; the workspace, the current
        # directory, still comes first on its path.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ACTION_ROOT, env.get("PYTHONPATH", "")) if p)
        deadline.entering("running the pipeline")
        console.group("Pipeline log")
        self._log.callback(console.endgroup)
        command = _runner_command(python, self.private_dir, spec)
        self.process = process = subprocess.Popen(
            command, env=env, cwd=inputs.workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `end` ends what it started too
        )
        relay = console.relay()
        self._log.callback(relay.close)

        def copy_lines() -> None:
            assert process.stdout is not None
            for raw in process.stdout:
                relay.line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))

        copier = threading.Thread(target=copy_lines, daemon=True)
        copier.start()
        self._log.callback(copier.join, timeout=1)
        process.wait()
        self._log.close()
        return _read_result(self.private_dir, process.returncode)

    def end(self) -> None:
        """End the child and what it started (a local orchestrator's steps),
        within the grace period: SIGTERM, then SIGKILL after a second; its
        log's group is closed."""
        child = self.process
        if child is not None and child.poll() is None:
            for stop in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, stop)
                # Reaped here: a killed child left to the runner's init
                # would linger as a zombie.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=1)
                    break
        self._log.close()

