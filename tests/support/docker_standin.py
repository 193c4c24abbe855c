#!/usr/bin/env python3
"""A stand-in for the `docker` CLI on the executing tier's SSH host.

Why a stand-in: no Docker daemon runs on the machines this suite runs on
(and no registry is reachable to pull an image from), but ZenML's `ssh`
orchestrator runs every step through the Docker CLI on its SSH host. This
script implements exactly the three invocations that orchestrator makes
(`zenml/integrations/ssh/`), and runs each "container" as what the image
would run: its entrypoint and command, as a local process with the pipeline
environment's python, with only the container's environment and an empty
`/app` of its own (the image's working directory: ZenML's entrypoints change
into `/app` and download and unpack the code there). So each step downloads
the project's code from the artifact store and talks to the server exactly as
it would inside a container.

Each "container" gets its own `/app` through a private mount namespace
(`unshare --mount`, its directory bind-mounted on `/app`): processes on one
host otherwise share one `/app`, and two steps starting at the same moment
then overwrite and delete each other's code archive (seen under load: a step
failing in the code download with "Compressed file ended before the
end-of-stream marker was reached", leaving its run `provisioning` or
`running` for ever, since nothing tells ZenML a step died before it started).
The mount point `/app` must exist (the fixture makes it).

- `docker --version`: the orchestrator's pre-flight check.
- `docker compose up -d` (static pipelines): reads `docker-compose.yml` in
  the working directory and returns at once, leaving a detached supervisor
  that starts each service once the services it `depends_on` completed
  successfully (`service_completed_successfully`); a failed service's
  dependents never start, as with Compose.
- `docker run -d --name N [--network M] [--env-file F] [-v X]... [--gpus G]
  [--entrypoint E] IMAGE ARGS...` (dynamic pipelines): reads the env file at
  once (the orchestrator deletes it right after) and starts the process.

Set up by the test fixture through the SSH session's environment:
`DOCKER_STANDIN_ROOT` (where containers, logs and process ids go) and
`DOCKER_STANDIN_PYTHON` (the pipeline environment's python). While a file
`<root>/hold/<image, `/` and `:` replaced by `_`>` exists, containers of that
image wait before starting, as if their image were still being pulled: a
test holds a run in `provisioning` with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

VERSION = "Docker version 27.0.0-standin, build local-processes"
# The working directory of ZenML's images, where its entrypoints download the
# code (zenml/entrypoints/base_entrypoint_configuration.py).
APP = "/app"


def root() -> Path:
    return Path(os.environ["DOCKER_STANDIN_ROOT"])


def python() -> str:
    return os.environ.get("DOCKER_STANDIN_PYTHON", sys.executable)


def hold_file(image: str) -> Path:
    return root() / "hold" / image.replace("/", "_").replace(":", "_")


def container_env(extra: dict[str, str], home: Path) -> dict[str, str]:
    """What a container sees: its own variables on a minimal base."""
    env = {
        "PATH": f"{Path(python()).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def start_container(name: str, image: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start one "container": wait while its image is held, then run its
    command with the pipeline's python in an empty directory."""
    while hold_file(image).exists():
        time.sleep(0.2)
    home = root() / "containers" / f"{name}-{uuid.uuid4().hex[:6]}"
    workdir = home / "app"
    workdir.mkdir(parents=True)
    if argv and Path(argv[0]).name in ("python", "python3"):
        argv = [python(), *argv[1:]]
    log = open(home / "container.log", "ab")  # the child owns it
    process = subprocess.Popen(
        [*private_app(workdir), *argv],
        cwd=workdir,
        env=container_env(env, home),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    record_pid(process.pid)
    return process


def private_app(workdir: Path) -> list[str]:
    """The command prefix that runs a command with `workdir` as its `/app`,
    in a mount namespace of its own (the mount ends with the process)."""
    # Without root, a user namespace maps this user to root inside it.
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    mount = f'mount --bind "$0" {APP} && cd {APP} && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", *user, "--", "sh", "-c", mount, str(workdir)]


def record_pid(pid: int) -> None:
    """Every process group started here, for the fixture to stop."""
    pids = root() / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    (pids / str(pid)).touch()


def detach(args: list[str], log_name: str) -> None:
    """Run this script again with `args` in its own session, so the SSH
    command returns while it works (as `-d` does)."""
    logs = root() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / log_name, "ab") as log:
        process = subprocess.Popen(
            [python(), __file__, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record_pid(process.pid)


def unescape(value: Any) -> Any:
    """Compose reads `$$` as a literal `$` (ZenML escapes every `$`)."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [unescape(v) for v in value]
    if isinstance(value, dict):
        return {k: unescape(v) for k, v in value.items()}
    return value


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def compose_up(compose_file: Path) -> int:
    import yaml

    document = unescape(yaml.safe_load(compose_file.read_text()))
    services = document.get("services") or {}
    if not services:
        print("no services in docker-compose.yml", file=sys.stderr)
        return 1
    state_file = compose_file.parent / "standin-compose.json"
    state_file.write_text(json.dumps(services))
    detach(["_supervise-compose", str(state_file)], f"compose-{compose_file.parent.name}.log")
    for name in services:
        print(f"Container {name}  Created")
    return 0


def supervise_compose(state_file: Path) -> int:
    """Start services in dependency order; stop starting when one fails."""
    services: dict[str, dict[str, Any]] = json.loads(state_file.read_text())
    running: dict[str, subprocess.Popen[bytes]] = {}
    done: dict[str, int] = {}
    while len(done) < len(services):
        for name, service in services.items():
            if name in running or name in done:
                continue
            needs = service.get("depends_on") or {}
            if any(done.get(dep) not in (0, None) for dep in needs):
                done[name] = -1  # a dependency failed: never started
                print(f"{name}: not started, a dependency failed", flush=True)
                continue
            if all(done.get(dep) == 0 for dep in needs):
                argv = as_list(service.get("entrypoint")) + as_list(service.get("command"))
                env = {str(k): str(v) for k, v in (service.get("environment") or {}).items()}
                print(f"{name}: starting", flush=True)
                running[name] = start_container(
                    service.get("container_name", name), str(service.get("image", "")), argv, env
                )
        for name, process in list(running.items()):
            code = process.poll()
            if code is not None:
                print(f"{name}: exited {code}", flush=True)
                done[name] = code
                del running[name]
        time.sleep(0.2)
    return 0


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key] = value
    return env


def docker_run(args: list[str]) -> int:
    options_with_value = {"--name", "--network", "--env-file", "--entrypoint", "-v", "--volume", "--gpus", "-e", "--env"}
    name, entrypoint, env = f"standin-{uuid.uuid4().hex[:8]}", "", {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        option = args[i]
        if option == "-d":
            i += 1
            continue
        if option not in options_with_value or i + 1 >= len(args):
            print(f"docker stand-in: unsupported option {option}", file=sys.stderr)
            return 125
        value = args[i + 1]
        if option == "--name":
            name = value
        elif option == "--entrypoint":
            entrypoint = value
        elif option == "--env-file":
            env.update(read_env_file(Path(value)))
        elif option in ("-e", "--env") and "=" in value:
            key, val = value.split("=", 1)
            env[key] = val
        i += 2
    if i >= len(args):
        print("docker stand-in: no image given", file=sys.stderr)
        return 125
    image, command = args[i], args[i + 1 :]
    argv = ([entrypoint] if entrypoint else []) + command
    state = root() / "logs" / f"run-{name}.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"name": name, "image": image, "argv": argv, "env": env}))
    state.chmod(0o600)  # carries the store's token, like the env file did
    detach(["_supervise-run", str(state)], f"run-{name}.log")
    print(uuid.uuid4().hex * 2)
    return 0


def supervise_run(state_file: Path) -> int:
    spec = json.loads(state_file.read_text())
    state_file.unlink()
    process = start_container(spec["name"], spec["image"], spec["argv"], spec["env"])
    return process.wait()


def main(argv: list[str]) -> int:
    if argv in (["--version"], ["version"]):
        print(VERSION)
        return 0
    if argv[:2] == ["compose", "up"]:
        return compose_up(Path.cwd() / "docker-compose.yml")
    if argv[:1] == ["run"] and "-d" in argv:
        return docker_run(argv[1:])
    if argv[:1] == ["_supervise-compose"]:
        return supervise_compose(Path(argv[1]))
    if argv[:1] == ["_supervise-run"]:
        return supervise_run(Path(argv[1]))
    print(f"docker stand-in: `docker {' '.join(argv)}` is not implemented", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
