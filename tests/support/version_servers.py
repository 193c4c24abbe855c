"""The old ZenML versions' servers `tests/test_versions.py` runs against.

Setting one up (install, start, activate, seed) takes about a minute on 2
cores. They are set up one after the other in a background thread that
starts as soon as the session knows which versions its tests need (from
`pytest_collection_finish` in conftest.py), so the set-up overlaps the
tests that run before them; `test_versions.py` waits for each when it gets
there. Each version's server twin without a workload manager (for the 405)
starts beside the set-up, once the database is ready.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from support.action import SECRETS
from support.server import ZenMLServer
from support.zenml_versions import OLD_VERSIONS, server_python


@dataclass
class Prepared:
    server: ZenMLServer
    without_runner: ZenMLServer
    snapshots: dict[str, str]


def server_without_runner(first: ZenMLServer, root: Path) -> ZenMLServer:
    """The same database served with no workload manager: runs answer 405."""
    return ZenMLServer(
        root,
        workload_manager=None,
        jwt_secret=first.jwt_secret,
        python=first.python,
        extra_env={"ZENML_STORE_URL": f"sqlite:///{first.root / 'zenml.db'}"},
    )


def prepare(version: str, root: Path) -> Prepared:
    server = ZenMLServer(root / "server", python=server_python(version))
    server.start()
    second = server_without_runner(server, root / "server-405")
    second.launch()
    try:
        server.activate()
        SECRETS.add(server.api_key)
        snapshots = server.seed()
    except BaseException:
        second.stop()
        server.stop()
        raise
    second.api_key = server.api_key
    second.admin_token = server.admin_token
    return Prepared(server, second, snapshots)


class OldServers:
    def __init__(self, versions: Iterable[str]) -> None:
        self._root = Path(tempfile.mkdtemp(prefix="zenml-versions-"))
        self._executor = ThreadPoolExecutor(max_workers=1)  # 2 cores: one at a time
        self._futures: dict[str, Future[Prepared]] = {}
        for version in versions:
            self.submit(version)

    def submit(self, version: str) -> None:
        if version not in self._futures:
            self._futures[version] = self._executor.submit(prepare, version, self._root / version)

    def get(self, version: str) -> Prepared:
        self.submit(version)
        return self._futures[version].result()

    def stop(self, version: str) -> None:
        future = self._futures.pop(version, None)
        if future is None or future.cancel():  # never started
            return
        try:
            prepared = future.result()
        except Exception:  # the test that needed it reported it
            return
        prepared.without_runner.stop()
        prepared.server.stop()

    def close(self) -> None:
        for version in list(self._futures):
            self.stop(version)
        self._executor.shutdown()
        shutil.rmtree(self._root, ignore_errors=True)


_servers: OldServers | None = None


def start(versions: Iterable[str]) -> OldServers:
    """Begin setting up these versions (once per session)."""
    global _servers
    if _servers is None:
        _servers = OldServers([v for v in OLD_VERSIONS if v in set(versions)])
    return _servers


def close() -> None:
    global _servers
    if _servers is not None:
        _servers.close()
        _servers = None
