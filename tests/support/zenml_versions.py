"""One environment per ZenML server version the tests start, made with uv.

Each is installed once into a cache directory and reused while its marker
file is there: uv installs one in about 3 s from its own cache (about 30 s
on a fresh machine). The main venv's own ZenML (0.98) needs none.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

# ZenML versions whose servers the version tier starts, and the one the
# main venv holds (requirements-dev.txt).
MAIN_VERSION = "0.98.0"
OLD_VERSIONS = ("0.85.0", "0.93.3")
VERSIONS = (*OLD_VERSIONS, MAIN_VERSION)


def cache_dir() -> Path:
    root = os.environ.get("ZENML_ACTION_TEST_CACHE") or os.environ.get("XDG_CACHE_HOME") or str(
        Path.home() / ".cache"
    )
    return Path(root) / "zenml-action-tests"


def server_python(version: str) -> str:
    """The interpreter of an environment with `zenml[server]==version`."""
    if version == MAIN_VERSION:
        return sys.executable
    venv = cache_dir() / f"zenml-server-{version}"
    marker = venv / ".installed"
    python = venv / "bin" / "python"
    if marker.exists() and python.exists():
        return str(python)
    started = time.monotonic()
    uv = [sys.executable, "-m", "uv"]
    subprocess.run(
        [*uv, "venv", "--quiet", "--allow-existing", "--python", "3.11", str(venv)],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [*uv, "pip", "install", "--quiet", "--python", str(python), f"zenml[server]=={version}"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"installing zenml[server]=={version} failed:\n{result.stderr[-3000:]}")
    marker.write_text(f"installed in {time.monotonic() - started:.1f}s\n")
    return str(python)
