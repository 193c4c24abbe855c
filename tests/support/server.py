"""Start and prepare a real ZenML server on loopback for the tests.

What a realistic server needs is written up in
`../shared/reference/zenml-server-facts.md`: OAuth2 bearer auth, an
activated admin, a service account with an API key, and (for server-side
runs) a workload manager.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

TESTS_DIR = Path(__file__).resolve().parent.parent
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-password-for-tests-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process_group(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """Stop a process started in a session of its own, and everything it
    started in that session (a server's runner subprocesses, sshd's
    sessions): SIGTERM, then SIGKILL after `timeout` seconds."""
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


@dataclass
class Deployment:
    """A running test server and the snapshots registered on it."""

    server: ZenMLServer
    snapshots: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_key(self) -> str:
        return self.server.api_key


@dataclass
class ZenMLServer:
    """One uvicorn process serving ZenML from a sqlite file in `root`, in a
    session of its own: stopping it stops whatever it started too (the
    runners of a server that executes runs)."""

    root: Path
    workload_manager: str | None = "support.workload_managers.NoopWorkloadManager"
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    # The interpreter of the environment holding the server's ZenML version
    # (see `zenml_versions.py`); this venv's own 0.98 by default.
    python: str = sys.executable
    # Kept across restarts so tokens issued before a restart stay valid.
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    process: subprocess.Popen[bytes] | None = None
    admin_token: str = ""
    api_key: str = ""
    service_account_id: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ZENML_", "INPUT_", "GITHUB_"))
        }
        env.update(
            ZENML_STORE_URL=f"sqlite:///{self.root / 'zenml.db'}",
            ZENML_SERVER_AUTH_SCHEME="OAUTH2_PASSWORD_BEARER",
            ZENML_SERVER_JWT_SECRET_KEY=self.jwt_secret,
            ZENML_SERVER_SERVER_URL=self.url,
            ZENML_CONFIG_PATH=str(self.root / "config"),
            ZENML_ANALYTICS_OPT_IN="false",
            ZENML_LOGGING_VERBOSITY="WARN",
            # As `zenml login --local` starts one: the server reads its local
            # artifact store, where the tests write the steps' logs they play
            # (support/orchestrator.py `start_step_with_log`).
            ZENML_SERVER_ALLOW_LOCAL_FILE_ACCESS="true",
            PYTHONPATH=str(TESTS_DIR),
        )
        if self.workload_manager:
            env["ZENML_SERVER_WORKLOAD_MANAGER_IMPLEMENTATION_SOURCE"] = (
                self.workload_manager
            )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        self.launch()
        self.wait_healthy()

    def launch(self) -> None:
        """Start the process without waiting for it to serve."""
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(
            [
                self.python,
                "-m",
                "uvicorn",
                "zenml.zen_server.zen_server_api:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()  # the server holds its own copy

    def wait_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    "ZenML server exited:\n"
                    + (self.root / "server.log").read_text()[-4000:]
                )
            try:
                if requests.get(f"{self.url}/health", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"ZenML server on {self.url} not healthy in {timeout}s")

    def stop(self) -> None:
        stop_process_group(self.process)

    def restart(self) -> None:
        """Stop and start again on the same port, database and JWT secret."""
        self.stop()
        self.start()

    # -- set-up over REST, as an administrator would ------------------------

    def activate(self) -> None:
        """Activate the fresh server, then mint a service-account API key."""
        response = requests.put(
            f"{self.url}/api/v1/activate",
            json={"admin_username": ADMIN_USER, "admin_password": ADMIN_PASSWORD},
            timeout=30,
        )
        response.raise_for_status()
        response = requests.post(
            f"{self.url}/api/v1/login",
            data={
                "grant_type": "password",
                "username": ADMIN_USER,
                "password": ADMIN_PASSWORD,
            },
            timeout=30,
        )
        response.raise_for_status()
        self.admin_token = response.json()["access_token"]
        account = self.admin(
            "POST",
            "/api/v1/service_accounts",
            json={"name": "github-actions", "active": True},
        )
        self.service_account_id = account["id"]
        key = self.admin(
            "POST",
            f"/api/v1/service_accounts/{account['id']}/api_keys",
            json={"name": "ci"},
        )
        self.api_key = key["body"]["key"]

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        """An administrator's request; raises on any error status."""
        response = requests.request(
            method,
            f"{self.url}{path}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
            **kwargs,
        )
        if not response.ok:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def seed(self) -> dict[str, Any]:
        """Register the test pipelines' snapshots (see `seed_snapshots.py`)."""
        return self.run_client("support.seed_snapshots")

    def run_client(self, module: str, *args: str, pythonpath: str = str(TESTS_DIR)) -> dict[str, Any]:
        """Run `python -m module args` (from the tests directory) as a ZenML
        client of this server, with the API key, in a subprocess so that
        this process never holds ZenML client state; the JSON object on the
        last line it printed."""
        env = self.env()
        env.update(
            ZENML_STORE_URL=self.url,
            ZENML_STORE_API_KEY=self.api_key,
            ZENML_CONFIG_PATH=str(self.root / "client-config"),
            PYTHONPATH=pythonpath,
        )
        env.pop("ZENML_SERVER_WORKLOAD_MANAGER_IMPLEMENTATION_SOURCE", None)
        result = subprocess.run(
            [self.python, "-m", module, *args],
            env=env,
            cwd=TESTS_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{module} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return dict(json.loads(result.stdout.strip().splitlines()[-1]))
