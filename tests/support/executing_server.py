"""A ZenML server that really executes the pipelines it is asked to run.

The `executing` tier's session fixture builds it from scratch, with no step
by hand, everything on loopback and in one temporary directory (how it was
first made to work: `../shared/reference/zenml-executing-server.md`):

- a ZenML 0.98 server with the stock `InMemoryWorkloadManager`, which starts
  each triggered run's "runner" as a local subprocess;
- ZenML's own `ssh` orchestrator, talking to an `sshd` this module starts
  with its own config, host key and authorized key (Debian's
  `openssh-server` is installed with apt-get when missing; its service is
  kept from starting);
- an `s3` artifact store on `moto_server`, where ZenML uploads the project's
  code, the steps write artifacts and logs, and the server reads step logs;
- a docker CLI stand-in (`docker_standin.py`, first on the SSH session's
  PATH), because no Docker daemon runs here: each "container" is its
  entrypoint run as a local process with the pipeline environment's python
  in an empty working directory (so the steps download the code from the
  artifact store, as in a container);
- runnable snapshots of `pipelines/training.py:training_pipeline` and of a
  test-only pipeline that waits for a file (`gated_pipeline.py`).

The runner subprocess gets only a few `ZENML_*` variables and no HOME, so
ZenML would write its client config under the home directory of whatever
user it resolves. The server therefore runs on an "overlay" interpreter: a
venv in the temporary directory that adds the project venv's packages and,
through a `.pth` line, gives every process of it without a HOME a
ZENML_CONFIG_PATH of its own in the temporary directory. Of its own, one per
process: in a real deployment each runner is a container with its own home,
and runners that share a config overwrite each other's API token, which is
scoped to one run (seen with three runs dispatched at once: "Unable to scope
API token to pipeline run A. The token used to authorize this request is
already scoped to pipeline run B.", and the runner failed).

Every process started here (server and runners, sshd, moto, containers) is
stopped on exit, also when a test fails.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from support import docker_standin
from support.action import SECRETS
from support.server import TESTS_DIR, Deployment, ZenMLServer, free_port, stop_process_group

ROOT = TESTS_DIR.parent
IN_MEMORY_WORKLOAD_MANAGER = (
    "zenml.zen_server.pipeline_execution.in_memory_workload_manager.InMemoryWorkloadManager"
)
# Image names in the registered builds: what the docker stand-in "runs".
TRAINING_IMAGE = "registry.invalid/zenml/training:standin"
GATED_IMAGE = "registry.invalid/zenml/gated:standin"
# A second build of the gated pipeline, whose "image pull" a test holds.
HELD_IMAGE = "registry.invalid/zenml/gated-held:standin"
NO_PROXY = "127.0.0.1,localhost"
# Runs the server dispatches at once: all of the tier's.
CONCURRENT_RUNS = 7


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout}s")


# -- sshd ---------------------------------------------------------------------


def ensure_sshd() -> str:
    """The sshd binary; installs Debian's openssh-server when it is missing
    (CI is root on a fresh Debian machine), without starting its service."""
    found = shutil.which("sshd") or "/usr/sbin/sshd"
    if os.path.exists(found):
        return found
    if os.geteuid() != 0:
        raise RuntimeError("sshd is missing: install openssh-server (apt-get install openssh-server)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Debian's maintainer scripts ask policy-rc.d before starting a service;
    # 101 means "not allowed": no system sshd is left running.
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        # Wait for another apt-get (another test run, unattended upgrades).
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300"]
        install = [*apt, "install", "-y", "-q", "--no-install-recommends", "openssh-server"]
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            # A fresh machine may have no package lists yet.
            subprocess.run([*apt, "update", "-q"], env=env, capture_output=True, timeout=600, check=True)
            result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"apt-get install openssh-server failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    finally:
        if created:
            policy.unlink()
    return "/usr/sbin/sshd"


@dataclass
class Sshd:
    """A loopback sshd with its own config, host key and one authorized key."""

    root: Path
    session_env: dict[str, str]
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=getpass.getuser)
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_key(self) -> Path:
        return self.root / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    def start(self) -> None:
        sshd = ensure_sshd()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        host_key = self.root / "host_ed25519"
        for key in (host_key, self.client_key):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "executing-tier", "-f", str(key)],
                check=True,
                capture_output=True,
            )
        authorized = self.root / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        host_public = host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_public[0]} {host_public[1]}\n")
        setenv = " ".join(f'"{k}={v}"' for k, v in self.session_env.items())
        config = self.root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    # The temporary directory sits in world-writable /tmp.
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    f"SetEnv {setenv}",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            # sshd's privilege-separation directory (the package's own).
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = open(self.root / "sshd.log", "ab")  # closed when the process ends
        self.process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, self.process, "sshd")

    def stop(self) -> None:
        stop_process_group(self.process)


# -- S3 on moto ----------------------------------------------------------------


@dataclass
class MotoS3:
    root: Path
    bucket: str = "zenml-executing"
    port: int = field(default_factory=free_port)
    key: str = "testing-key-id"
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "moto.log", "ab")  # closed when the process ends
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY},
        )
        wait_for_port(self.port, self.process, "moto_server")
        response = requests.put(f"{self.endpoint}/{self.bucket}", timeout=10, proxies={"http": "", "https": ""})
        response.raise_for_status()

    def stop(self) -> None:
        stop_process_group(self.process)


# -- the server's interpreter ----------------------------------------------------


def overlay_python(root: Path) -> Path:
    """A venv in `root` that sees the project venv's packages, and whose
    processes without a HOME (the server's runners) keep their ZenML client
    config in `root`, each in a directory of its own."""
    builder = venv.EnvBuilder(symlinks=True, with_pip=False, clear=True)
    builder.create(root)
    site_packages = Path(
        sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)})
    )
    project_site = sysconfig.get_path("purelib")
    config_path = root / "runner-config"
    (site_packages / "_executing_tier.pth").write_text(
        f"import site; site.addsitedir({project_site!r})\n"
        f"import os; os.environ.get('HOME') or os.environ.setdefault('ZENML_CONFIG_PATH', {str(config_path)!r} + '/' + str(os.getpid()))\n"
    )
    return root / "bin" / "python"


# -- the whole deployment ----------------------------------------------------------


@dataclass
class ExecutingDeployment(Deployment):
    root: Path = Path()
    standin_root: Path = Path()

    def gate(self, name: str) -> Path:
        """A path for `gated_pipeline`'s step to wait for (create it to open)."""
        gates = self.root / "gates"
        gates.mkdir(exist_ok=True)
        return gates / name

    def _hold_file(self, image: str) -> Path:
        return self.standin_root / "hold" / image.replace("/", "_").replace(":", "_")

    def hold(self, image: str = HELD_IMAGE) -> None:
        """Containers of `image` wait to start until `release`, as if their
        image were still being pulled: their runs stay `provisioning`."""
        self._hold_file(image).parent.mkdir(parents=True, exist_ok=True)
        self._hold_file(image).touch()

    def release(self, image: str = HELD_IMAGE) -> None:
        self._hold_file(image).unlink(missing_ok=True)

    def evidence(self) -> str:
        """What the "containers" printed and the stand-in and the server
        logged, for a failing test's message (the ends of each)."""
        parts = [
            f"--- {path.relative_to(self.root)}\n{path.read_text(errors='replace')[-3000:]}"
            for path in [
                *sorted((self.standin_root / "containers").glob("*/container.log")),
                *sorted((self.standin_root / "logs").glob("*.log")),
                self.server.root / "server.log",
            ]
            if path.exists()
        ]
        return "\n".join(parts)

    def stop_containers(self) -> None:
        pids = self.standin_root / "pids"
        for entry in pids.glob("*") if pids.exists() else []:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(entry.name), signal.SIGKILL)


def write_docker_shim(bin_dir: Path, python: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "docker"
    shim.write_text(f'#!/bin/sh\nexec "{python}" "{Path(__file__).with_name("docker_standin.py")}" "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@contextlib.contextmanager
def app_mount_point() -> Iterator[None]:
    """`/app`, where the docker stand-in mounts each container's own
    directory (docker_standin.py says why); removed again if made here and
    still empty."""
    app = Path(docker_standin.APP)
    made = not app.exists()
    if made:
        try:
            app.mkdir()
        except PermissionError:
            raise RuntimeError(f"the executing tier needs {app} as a mount point: run it as root or create it") from None
    try:
        yield
    finally:
        if made:
            with contextlib.suppress(OSError):
                app.rmdir()


@contextlib.contextmanager
def executing_deployment(root: Path) -> Iterator[ExecutingDeployment]:
    """Start everything in `root`; stop everything on exit, whatever happens."""
    root.mkdir(parents=True, exist_ok=True)
    python = overlay_python(root / "python")
    standin_root = root / "docker"
    standin_root.mkdir()
    write_docker_shim(root / "docker-bin", python)
    moto = MotoS3(root / "s3")
    sshd = Sshd(
        root / "sshd",
        session_env={
            "PATH": f"{root / 'docker-bin'}:{python.parent}:/usr/local/bin:/usr/bin:/bin",
            "DOCKER_STANDIN_ROOT": str(standin_root),
            "DOCKER_STANDIN_PYTHON": str(python),
        },
    )
    server = ZenMLServer(
        root / "server",
        workload_manager=IN_MEMORY_WORKLOAD_MANAGER,
        python=str(python),
        extra_env={
            "NO_PROXY": NO_PROXY,
            "no_proxy": NO_PROXY,
            # The tier's seven runs are dispatched at once (ZenML's default
            # is 2; more answer 429 until a runner has submitted its run).
            "ZENML_SERVER_MAX_CONCURRENT_SNAPSHOT_RUNS": str(CONCURRENT_RUNS),
        },
    )
    deployment = ExecutingDeployment(server, {}, root=root, standin_root=standin_root)
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(app_mount_point())
        cleanup.callback(moto.stop)
        cleanup.callback(sshd.stop)
        cleanup.callback(deployment.stop_containers)
        cleanup.callback(server.stop)
        cleanup.callback(deployment.stop_containers)
        moto.start()
        sshd.start()
        server.start()
        server.activate()
        config = {
            "source_root": str(ROOT),
            "bucket": moto.bucket,
            "s3_key": moto.key,
            "s3_secret": moto.secret,
            "s3_endpoint": moto.endpoint,
            "ssh_port": sshd.port,
            "ssh_user": sshd.user,
            "ssh_key_path": str(sshd.client_key),
            "known_hosts_path": str(sshd.known_hosts),
            "remote_workdir": str(root / "remote"),
            "image": TRAINING_IMAGE,
            "gated_image": GATED_IMAGE,
            "held_image": HELD_IMAGE,
        }
        deployment.snapshots = {
            name: str(value)
            for name, value in server.run_client(
                "support.register_executing",
                json.dumps(config),
                pythonpath=os.pathsep.join([str(ROOT), str(TESTS_DIR)]),
            ).items()
        }
        yield deployment


StartActions = Callable[[ExecutingDeployment, Path], AbstractContextManager[Any]]


class Tier:
    """The tier, prepared in a background thread from the moment the session
    knows it has tests for it (conftest's `pytest_collection_finish`): the
    deployment's set-up (about 40 s) and the minutes its runs take overlap
    the rest of the suite, which keeps 2 cores only about half busy (most
    of its tests wait on servers); the tier's tests run last
    (`pytest_collection_modifyitems`) and read what their runs did.
    `start_actions` (the test module's) starts the actions in a workspace
    and stops what is left of them on exit."""

    def __init__(self, start_actions: StartActions) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="zenml-executing-"))
        self._cleanup = contextlib.ExitStack()
        self._executor = ThreadPoolExecutor(max_workers=1)
        self._ready = self._executor.submit(self._prepare, start_actions)

    def _prepare(self, start_actions: StartActions) -> tuple[ExecutingDeployment, Any]:
        deployment = self._cleanup.enter_context(executing_deployment(self.root / "deployment"))
        SECRETS.add(deployment.api_key)
        workspace = self.root / "workspace"
        workspace.mkdir()
        actions = self._cleanup.enter_context(start_actions(deployment, workspace))
        return deployment, actions

    @property
    def deployment(self) -> ExecutingDeployment:
        return self._ready.result()[0]

    @property
    def actions(self) -> Any:
        return self._ready.result()[1]

    def close(self) -> None:
        """Stop every process the tier started and remove its directory."""
        with contextlib.suppress(BaseException):
            self._ready.result()  # its outcome was the tests' to report
        self._executor.shutdown()
        self._cleanup.close()
        shutil.rmtree(self.root, ignore_errors=True)


_tier: Tier | None = None


def start_tier(start_actions: StartActions) -> None:
    global _tier
    if _tier is None:
        _tier = Tier(start_actions)


def tier() -> Tier:
    if _tier is None:
        raise RuntimeError("the executing tier was not started: conftest's pytest_collection_finish starts it")
    return _tier


def close_tier() -> None:
    global _tier
    if _tier is not None:
        _tier.close()
        _tier = None
