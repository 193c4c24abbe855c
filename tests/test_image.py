"""The action's container image: how it is built, and that it runs the way
GitHub runs a Docker action.

The static checks of the Dockerfile run everywhere. The tests marked
`image` build the image and run it: with podman and a Debian stand-in for
`python:3.12-slim` (scripts/image/build.sh, for machines that reach no
container registry), or with Docker and the real base image when
IMAGE_ENGINE=docker (GitHub's CI). Select them with `-m image`, leave them
out with `-m "not image"`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Deployment
from support.action import SECRETS, check_no_secret, leaked, parse_output_file
from support.orchestrator import step_parameters
from support.server import ADMIN_PASSWORD

ROOT = Path(__file__).resolve().parents[1]
IMAGE_DIR = ROOT / "scripts" / "image"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
IMAGE_TAG = "localhost/zenml-pipeline-trigger-action:test"
# What the image adds to its base's environment, and nothing else.
IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "VIRTUAL_ENV": "/opt/venv"}


def requirement_pins(*files: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for name in files:
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#", 1)[0].split(";", 1)[0].strip()
            if "==" in line and not line.startswith("-"):
                package, version = line.split("==", 1)
                pins[re.sub(r"[-_.]+", "-", package.strip().lower())] = version.strip()
    return pins


# -- the Dockerfile, read -------------------------------------------------


@pytest.mark.offline
def test_dockerfile_builds_on_the_official_slim_python() -> None:
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE) == ["python:3.12-slim"] * 2


@pytest.mark.offline
def test_dockerfile_runs_as_root_with_the_documented_entrypoint() -> None:
    assert not re.search(r"^USER\b", DOCKERFILE, re.MULTILINE), "GitHub advises Docker actions not to set USER"
    assert re.search(r'^ENTRYPOINT \["python", "/app/entrypoint.py"\]$', DOCKERFILE, re.MULTILINE)
    for name, value in {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}.items():
        assert re.search(rf"\b{name}={value}\b", DOCKERFILE)


@pytest.mark.offline
def test_dockerfile_pins_uv_like_the_makefile() -> None:
    makefile = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    dockerfile = re.search(r"^ARG UV_VERSION=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert makefile and dockerfile and makefile.group(1) == dockerfile.group(1)
    # The uv code mode runs inside the image is the same one.
    assert requirement_pins("requirements-code.txt").get("uv", dockerfile.group(1)) == dockerfile.group(1)
    assert '"uv==${UV_VERSION}"' in DOCKERFILE


@pytest.mark.offline
def test_dockerfile_holds_no_secret_and_copies_no_more_than_needed() -> None:
    assert not re.search(r"^(ARG|ENV)\b.*(KEY|TOKEN|PASSWORD|SECRET)", DOCKERFILE, re.MULTILINE | re.IGNORECASE)
    assert "--mount=type=secret" not in DOCKERFILE
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.MULTILINE)
    sources = {source for line in copied for source in line.split()}
    assert sources == {
        "requirements.txt", "requirements-code.txt", "scripts/image/constraints.txt",
        "entrypoint.py", "zenml_action/",
    }
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert ignore[0] == "*", "the build context is an allow-list"


@pytest.mark.offline
def test_image_constraints_agree_with_the_requirements() -> None:
    """scripts/image/constraints.txt pins all the image installs; a bump in
    requirements*.txt must be made there too (regenerate it: see its header)."""
    constraints = requirement_pins("scripts/image/constraints.txt")
    lines = [
        line for line in (IMAGE_DIR / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert all("==" in line for line in lines)
    for package, version in requirement_pins("requirements.txt", "requirements-code.txt").items():
        assert constraints.get(package) == version, f"{package}: requirements {version}, constraints {constraints.get(package)}"


# -- building and running it ---------------------------------------------


@dataclass
class Engine:
    name: str  # podman or docker
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.name, *args], env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(args[:3])}... exit {result.returncode}\n{result.stderr[-3000:]}")
        return result

    def inspect(self, image: str) -> dict[str, object]:
        return dict(json.loads(self("image", "inspect", image).stdout)[0])


@dataclass
class Image:
    engine: Engine
    tag: str
    base: str
    build_seconds: float


def bin_path() -> str:
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="session")
def image() -> Iterator[Image]:
    name = os.environ.get("IMAGE_ENGINE", "podman")
    env = {**os.environ, "PATH": bin_path()}
    if name == "podman":
        env["CONTAINERS_CONF"] = str(IMAGE_DIR / "containers.conf")
    elif name != "docker":
        raise pytest.UsageError(f"IMAGE_ENGINE must be podman or docker, not {name!r}")
    engine = Engine(name, env)
    started = time.monotonic()
    if name == "podman":
        build = subprocess.run(
            ["bash", str(IMAGE_DIR / "build.sh")], env={**env, "ACTION_IMAGE": IMAGE_TAG},
            capture_output=True, text=True, timeout=1200,
        )
        base = "docker.io/library/python:3.12-slim"
    else:
        base = "python:3.12-slim"
        # BuildKit keeps the base out of the image store: act and the checks
        # below need it there.
        engine("pull", base, timeout=600)
        build = subprocess.run(
            ["docker", "build", "-t", IMAGE_TAG, str(ROOT)], env=env, capture_output=True, text=True, timeout=1200
        )
    assert build.returncode == 0, f"image build failed:\n{build.stdout[-2000:]}\n{build.stderr[-4000:]}"
    built = Image(engine, IMAGE_TAG, base, time.monotonic() - started)
    size = int(str(engine.inspect(IMAGE_TAG)["Size"]))
    print(f"\nimage {IMAGE_TAG}: built in {built.build_seconds:.0f} s, {size / 1e6:.0f} MB")
    yield built


@dataclass
class ContainerRun:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


def run_action(image: Image, workspace: Path, inputs: dict[str, str], python_args: tuple[str, ...] = ()) -> ContainerRun:
    """`docker run` as the runner does it for a Docker action: the workspace
    and file-command folders mounted, inputs as INPUT_* variables (passed by
    name, values from the environment, so they are not on the command line)."""
    files = workspace.parent / f"file_commands-{uuid.uuid4().hex[:8]}"
    files.mkdir()
    (files / "output").touch()
    (files / "summary").touch()
    variables = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": "/github/workspace",
        "GITHUB_OUTPUT": "/github/file_commands/output",
        "GITHUB_STEP_SUMMARY": "/github/file_commands/summary",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_ACTION": "train",
        **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
    }
    argv = [
        "run", "--rm", "--network", "host", "--workdir", "/github/workspace",
        "-v", f"{workspace}:/github/workspace", "-v", f"{files}:/github/file_commands",
    ]
    for name in variables:
        argv += ["-e", name]
    if python_args:
        argv += ["--entrypoint", "python", image.tag, *python_args, "/app/entrypoint.py"]
    else:
        argv.append(image.tag)
    result = image.engine(*argv, env=variables, check=False, timeout=300)
    output_text = (files / "output").read_text()
    summary = (files / "summary").read_text()
    check_no_secret("\n".join([result.stdout, result.stderr, output_text, summary]))
    return ContainerRun(result.returncode, result.stdout, result.stderr, parse_output_file(output_text), summary)


@pytest.fixture
def inputs(zenml: Deployment) -> dict[str, str]:
    return {"workspace-url": zenml.url, "api-key": zenml.api_key, "poll-interval": "1s"}


@pytest.mark.image
def test_triggers_a_run_as_github_runs_the_action(image: Image, zenml: Deployment, inputs: dict[str, str],
                                                  workspace: Path, unique_name: str) -> None:
    (workspace / "params.yaml").write_text("model_type: gradient_boosting\n")
    run = run_action(image, workspace, {
        **inputs, "template": "trainer-prod", "parameters": "params.yaml", "run-name": unique_name, "wait": "false",
    })
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs["conclusion"] == "triggered"
    assert run.outputs["run-name"] == unique_name
    assert run.outputs["snapshot-id"] == zenml.snapshots["trainer"]
    server = zenml.server
    found = server.admin("GET", f"/api/v1/runs/{run.outputs['run-id']}")
    assert found["name"] == unique_name
    # The parameters file came from the mounted workspace.
    assert step_parameters(server, run.outputs["run-id"])["train_model"]["model_type"] == "gradient_boosting"
    assert run.outputs["run-id"] in run.summary
    assert f"::add-mask::{inputs['api-key']}" in run.stdout
    body = "\n".join(line for line in run.stdout.splitlines() if not line.startswith("::add-mask::"))
    assert not leaked(inputs["api-key"], body + run.stderr + run.summary)


@pytest.mark.image
def test_rest_path_in_the_image_never_imports_zenml(image: Image, inputs: dict[str, str], workspace: Path) -> None:
    run = run_action(image, workspace, {**inputs, "template": "trainer-prod", "dry-run": "true"},
                     python_args=("-X", "importtime"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs["conclusion"] == "dry-run"
    imported = [line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")]
    assert "zenml_action.server_side" in imported, "import timing did not work"
    assert not [name for name in imported if name == "zenml" or name.startswith("zenml.")]


@pytest.mark.image
def test_a_wrong_input_fails_the_step_with_one_annotation(image: Image, inputs: dict[str, str], workspace: Path) -> None:
    run = run_action(image, workspace, {**inputs, "template": "trainer-prod", "timeout": "soon"})
    assert run.returncode == 1
    errors = [line for line in run.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and "timeout" in errors[0]
    assert "Traceback" not in run.stdout + run.stderr


@pytest.mark.image
def test_image_holds_what_the_action_needs_and_nothing_else(image: Image) -> None:
    script = "\n".join([
        "import importlib.metadata as m, os, shutil, subprocess, sys",
        "from pathlib import Path",
        "assert os.getuid() == 0",
        "assert sys.prefix == '/opt/venv', sys.prefix",
        "assert m.version('zenml') == '0.98.0'",
        "assert m.version('uv') == '0.13.9'",
        "subprocess.run([sys.executable, '-m', 'uv', '--version'], check=True, stdout=subprocess.DEVNULL)",
        "assert not [t for t in ('gcc', 'cc', 'make', 'git') if shutil.which(t)], 'build tools left'",
        "tag = sys.implementation.cache_tag",
        "assert list(Path('/app/zenml_action/__pycache__').glob(f'main.{tag}.pyc')), 'not precompiled'",
        "assert list(Path(m.distribution('zenml').locate_file('zenml/__pycache__')).glob(f'*.{tag}.pyc'))",
        "assert sorted(p.name for p in Path('/app').iterdir()) == ['__pycache__', 'entrypoint.py', 'zenml_action']",
        "for gone in ('/tmp/deps', '/root/.cache', '/app/tests', '/app/pipelines', '/app/.git', '/opt/venv/.git'):",
        "    assert not os.path.exists(gone), gone",
        "print('ok')",
    ])
    result = image.engine("run", "--rm", "--entrypoint", "python", image.tag, "-c", script, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.image
def test_image_metadata_leaks_no_secret(image: Image, zenml: Deployment) -> None:
    config = image.engine.inspect(image.tag)["Config"]
    assert isinstance(config, dict)
    assert config["Entrypoint"] == ["python", "/app/entrypoint.py"]
    assert not config.get("User")
    base_config = image.engine.inspect(image.base)["Config"]
    assert isinstance(base_config, dict)
    base_env = dict(item.split("=", 1) for item in base_config.get("Env") or [])
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    added = {name: value for name, value in env.items() if base_env.get(name) != value}
    assert added.pop("PATH").startswith("/opt/venv/bin:")
    assert added == IMAGE_ENV
    history = image.engine("history", "--no-trunc", image.tag).stdout
    everything = history + json.dumps(image.engine.inspect(image.tag))
    for secret in [*SECRETS, zenml.api_key, ADMIN_PASSWORD]:
        assert secret not in everything
    assert not re.search(r"ZEN(PRO)?KEY_|ZENML_STORE_API_KEY|GITHUB_TOKEN", everything)


@pytest.mark.image
def test_image_starts_fast(image: Image) -> None:
    """`--help` imports the action's modules and nothing heavy."""
    image.engine("run", "--rm", image.tag, "--help")  # warm the storage
    started = time.monotonic()
    result = image.engine("run", "--rm", image.tag, "--help")
    elapsed = time.monotonic() - started
    assert "--workspace-url" in result.stdout
    print(f"\ncontainer start + --help: {elapsed:.2f} s")
    assert elapsed < 15


@pytest.mark.image
def test_act_runs_the_action_from_a_workflow(image: Image, zenml: Deployment, unique_name: str) -> None:
    """act (GitHub's runner, locally) runs scripts/image/act-workflow.yml:
    a `uses: ./` step with inputs from vars and secrets, its outputs read by a
    later step, against the test server on loopback (act's host network)."""
    act = Path(sys.executable).parent / "act"
    if not act.exists() and not shutil.which("act"):
        pytest.skip("`act` is not installed: pip install -r requirements-lint.txt")
    env = {
        **image.engine.env,
        "ACT": str(act) if act.exists() else "act",
        "ACT_PREBUILT_IMAGE": image.tag,
        "IMAGE_ENGINE": image.engine.name,
        "ACT_RUNNER_IMAGE": image.base,
        "ZENML_API_KEY": zenml.api_key,
    }
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(IMAGE_DIR / "act.sh"), "--var", f"ZENML_URL={zenml.url}",
         "--var", f"RUN_NAME={unique_name}", "--secret", "ZENML_API_KEY"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    print(f"\nact run: {time.monotonic() - started:.1f} s")
    log = result.stdout + result.stderr
    check_no_secret(log)
    assert result.returncode == 0, log[-5000:]
    match = re.search(r"ACT-SELFTEST run-id=(\S+) conclusion=triggered", log)
    assert match, log[-5000:]
    assert "Job succeeded" in log
    run = zenml.server.admin("GET", f"/api/v1/runs/{match.group(1)}")
    assert run["name"] == unique_name
    assert zenml.api_key not in log
