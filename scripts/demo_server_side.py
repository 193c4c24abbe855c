"""Server-side demo: start a real ZenML server on loopback, register a
runnable snapshot, and trigger it through the action's entrypoint, exactly as
a workflow step would, then finish the run as an orchestrator would.

Run with `make demo-server-side`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.orchestrator import complete_run, find_run  # noqa: E402
from support.server import ZenMLServer  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="zenml-demo-") as tmp:
        server = ZenMLServer(Path(tmp) / "server")
        print(f"Starting a ZenML server on {server.url} ...", flush=True)
        server.start()
        try:
            server.activate()
            server.seed()
            run_name = f"demo-{int(time.time())}"
            env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "GITHUB_"))}
            env.update({
                "INPUT_WORKSPACE-URL": server.url,
                "INPUT_API-KEY": server.api_key,
                "INPUT_TEMPLATE": "trainer-prod",
                "INPUT_PARAMETERS": "data_url: s3://bucket/latest.csv\nmodel_type: gradient_boosting",
                "INPUT_RUN-NAME": run_name,
                "INPUT_POLL-INTERVAL": "1s",
            })
            # The test server starts no orchestrator: finish the run after a
            # few seconds, as a real one would report it.
            threading.Thread(
                target=lambda: (time.sleep(3), complete_run(server, find_run(server, run_name))), daemon=True
            ).start()
            return subprocess.call([sys.executable, str(ROOT / "entrypoint.py")], env=env)
        finally:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
