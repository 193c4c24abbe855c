"""Code mode's environment: the child's variables, the `requirements`
install, and a ZenML client that speaks the server's API. Every subprocess
here is waited for in the main thread, so the action's one deadline and a
cancel interrupt it (`deadline.py`); `subprocess.run` kills the child on the
way out."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from zenml_action.errors import InputError, ServerError
from zenml_action.github import Console
from zenml_action.inputs import Inputs
from zenml_action.parameters import workspace_file
from zenml_action.versions import ServerVersion, parse_release, show

LOCAL_STORE_DIR = ".zenml-local"


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
    return workspace_file("requirements", inputs.requirements, inputs.workspace, "requirements file")


def _uv(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uv", *arguments], capture_output=True, text=True)


def _last_line(result: subprocess.CompletedProcess[str], otherwise: str) -> str:
    return (result.stderr.strip().splitlines() or [otherwise])[-1]


def install_requirements(inputs: Inputs, console: Console) -> None:
    """Into the action's own environment."""
    full = requirements_file(inputs)
    if full is None:
        return
    console.group(f"Installing {inputs.requirements}")
    started = time.monotonic()
    # uv skips what is already installed, so a second run costs little.
    result = _uv("pip", "install", "--python", sys.executable, "-r", str(full))
    console.info((result.stdout + result.stderr).strip())
    console.endgroup()
    if result.returncode != 0:
        problem = f"installing `{inputs.requirements}` failed: {_last_line(result, '(no output)')}"
        fix = "Fix the requirements file (versions must exist on the package index)."
        raise InputError("requirements", problem, fix)
    console.info(f"Requirements ready in {time.monotonic() - started:.1f}s.")


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
    try:
        local = parse_release(importlib.metadata.version("zenml"))
    except importlib.metadata.PackageNotFoundError:
        local = None
    if local is not None and local[:2] == (parse_release(version) or server.release)[:2]:
        install_requirements(inputs, console)
        return sys.executable
    requirements = requirements_file(inputs)
    digest = f"-{hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]}" if requirements else ""
    key = f"zenml-{version}-py{sys.version_info[0]}{sys.version_info[1]}{digest}"
    # Kept between runs on the same machine.
    venv = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "zenml-action", "clients", key)
    python = venv / "bin" / "python"
    if (venv / ".installed").exists() and python.exists():
        console.info(f"Using the ZenML {version} client environment in {venv}.")
        return str(python)
    console.info(f"Making a ZenML {version} client environment to match the server ({venv}).")
    started = time.monotonic()
    made = _uv("venv", "--quiet", "--allow-existing", "--python", sys.executable, str(venv))
    install = ["pip", "install", "--quiet", "--python", str(python), f"zenml=={version}"]
    install += ["-r", str(requirements)] if requirements else []
    result = made if made.returncode != 0 else _uv(*install)
    if result.returncode != 0:
        raise ServerError(
            f"The server runs ZenML {server.raw} and a matching client could not be installed "
            f"({_last_line(result, '?')}). Run the action on a runner with access to PyPI"
            + (f", and check that `{inputs.requirements}` can be installed beside zenml=={version}." if requirements else ".")
        )
    (venv / ".installed").write_text(f"zenml=={version}\n")
    console.info(f"ZenML {version} client environment ready in {time.monotonic() - started:.1f}s.")
    return str(python)
