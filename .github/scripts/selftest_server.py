"""Start a real ZenML server for the action's self-test in CI, and leave it running.

    python .github/scripts/selftest_server.py --advertise-host HOST
    python .github/scripts/selftest_server.py --attach http://localhost:8080 --advertise-host zenml

Uses the test suite's helpers (`tests/support/`): a ZenML 0.98 server on a
sqlite file with a workload manager that accepts runs and executes nothing,
an activated admin, a service account with an API key, and runnable
snapshots (`trainer-prod`, ...). A detached "orchestrator" process then
completes every run the server starts, as a real orchestrator would report
its steps, so the action can be run with `wait: true`.

The server listens on all interfaces: a Docker action runs in a container on
the runner's bridge network and reaches the host at the bridge's gateway
(HOST). Writes `url`, `api-key` (masked first) and `template` to
GITHUB_OUTPUT (or prints them). Both processes stop by themselves after
--lifetime seconds.

With --attach URL it starts no server: it activates and seeds one already
running there (e.g. the official `zenmldocker/zenml-server` image as a
service container) and starts no orchestrator.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from support.orchestrator import complete_run  # noqa: E402
from support.server import ZenMLServer  # noqa: E402


class PublicServer(ZenMLServer):
    """The tests' server, listening on every interface and detached from
    this process so that it outlives the workflow step."""

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "server.log", "ab")  # the server keeps it open
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "zenml.zen_server.zen_server_api:app",
                "--host", "0.0.0.0", "--port", str(self.port), "--log-level", "warning",  # noqa: S104
            ],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_healthy()


def wait_for(url: str, timeout: float = 180) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise SystemExit(f"no healthy server at {url} after {timeout:g}s")


def write_outputs(outputs: dict[str, str]) -> None:
    path = os.environ.get("GITHUB_OUTPUT")
    lines = [f"{name}={value}" for name, value in outputs.items()]
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    else:
        print("\n".join(lines))


def orchestrate(url: str, token: str, lifetime: float, pid: int) -> None:
    """Complete every run the server started, until the lifetime ends; then
    stop the server."""
    server = ZenMLServer(Path(tempfile.gettempdir()))
    server.port = int(url.rsplit(":", 1)[1])
    server.admin_token = token
    done: set[str] = set()
    deadline = time.monotonic() + lifetime
    try:
        while time.monotonic() < deadline:
            try:
                page = server.admin("GET", "/api/v1/runs", params={"size": 100})
            except Exception:  # the server may be busy or gone
                time.sleep(1)
                continue
            for run in page["items"]:
                if run["id"] not in done and run["body"]["status"] in ("initializing", "provisioning", "running"):
                    complete_run(server, run)
                    done.add(run["id"])
            time.sleep(1)
    finally:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--advertise-host", default="127.0.0.1",
                        help="host the action's container uses to reach this machine")
    parser.add_argument("--lifetime", type=float, default=1800, help="seconds before both processes stop")
    parser.add_argument("--attach", metavar="URL", help="seed this running server instead of starting one")
    parser.add_argument("--orchestrate", nargs=2, metavar=("URL", "SERVER_PID"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.orchestrate:
        orchestrate(args.orchestrate[0], os.environ["SELFTEST_ADMIN_TOKEN"], args.lifetime, int(args.orchestrate[1]))
        return 0

    server = PublicServer(Path(tempfile.mkdtemp(prefix="zenml-selftest-")))
    if args.attach:
        server.port = int(args.attach.rstrip("/").rsplit(":", 1)[1])
        wait_for(f"{server.url}/health")
    else:
        server.start()
    server.activate()
    print(f"::add-mask::{server.api_key}", flush=True)
    snapshots = server.seed()
    if args.attach:
        write_outputs({
            "url": f"http://{args.advertise_host}:{server.port}",
            "api-key": server.api_key,
            "template": "trainer-prod",
            "snapshot-id": snapshots["trainer"],
        })
        return 0
    assert server.process is not None
    subprocess.Popen(
        [sys.executable, __file__, "--lifetime", str(args.lifetime),
         "--orchestrate", server.url, str(server.process.pid)],
        env={**os.environ, "SELFTEST_ADMIN_TOKEN": server.admin_token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    write_outputs({
        "url": f"http://{args.advertise_host}:{server.port}",
        "api-key": server.api_key,
        "template": "trainer-prod",
        "snapshot-id": snapshots["trainer"],
        "log": str(server.root / "server.log"),
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
