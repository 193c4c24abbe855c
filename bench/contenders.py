"""The ways of triggering a ZenML run that the benchmark compares.

Each contender triggers snapshot `trainer-prod` of pipeline `trainer` with
`model_type: gradient_boosting` for step `train_model`, as its own process,
and ends when it has printed the new run's ID.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent

SNAPSHOT = "trainer-prod"
PIPELINE = "trainer"
# The action takes flat pipeline parameters and gives them to the steps that
# take them; the others are given the step-level form the server accepts.
FLAT_PARAMETERS = "model_type: gradient_boosting\n"
STEP_CONFIG_YAML = "steps:\n  train_model:\n    parameters:\n      model_type: gradient_boosting\n"
STEP_CONFIG = {"steps": {"train_model": {"parameters": {"model_type": "gradient_boosting"}}}}

SDK_SCRIPT = f"""\
from zenml.client import Client

run = Client().trigger_pipeline(
    snapshot_name_or_id={SNAPSHOT!r},
    pipeline_name_or_id={PIPELINE!r},
    run_configuration={STEP_CONFIG!r},
)
print(run.id)
"""

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Server:
    url: str
    api_key: str
    snapshot_id: str


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    what: str  # one line for the table's notes
    prepare: Callable[[Server, Path, dict[str, str]], Invocation]
    run_id: Callable[[str], str]  # from stdout (+ stderr), "" when absent


def last_uuid(output: str) -> str:
    found = _UUID.findall(output)
    return found[-1] if found else ""


def action_run_id(stdout: str) -> str:
    for line in stdout.splitlines():
        if line.startswith("run-id="):
            value = line.removeprefix("run-id=").strip()
            return value if _UUID.fullmatch(value) else ""
    return ""


def cli_run_id(output: str) -> str:
    match = re.search(r"Started snapshot run `(" + _UUID.pattern + ")`", output)
    return match.group(1) if match else ""


def python() -> str:
    return sys.executable


def zenml_cli() -> str:
    cli = Path(sys.executable).parent / "zenml"
    return str(cli) if cli.exists() else (shutil.which("zenml") or "zenml")


def _action(by_uuid: bool) -> Callable[[Server, Path, dict[str, str]], Invocation]:
    def prepare(server: Server, work: Path, base: dict[str, str]) -> Invocation:
        env = dict(base)
        env.update({
            "INPUT_WORKSPACE-URL": server.url,
            "INPUT_API-KEY": server.api_key,
            "INPUT_TEMPLATE": server.snapshot_id if by_uuid else SNAPSHOT,
            "INPUT_PARAMETERS": FLAT_PARAMETERS,
            "INPUT_WAIT": "false",
        })
        return Invocation([python(), str(ROOT / "entrypoint.py")], env, work)

    return prepare


def _zenml_env(server: Server, work: Path, base: dict[str, str]) -> dict[str, str]:
    """A fresh ZenML client configuration, as on a fresh CI runner."""
    env = dict(base)
    env.update(
        ZENML_STORE_URL=server.url,
        ZENML_STORE_API_KEY=server.api_key,
        ZENML_CONFIG_PATH=tempfile.mkdtemp(prefix="zenml-config-", dir=work),
        # Analytics would try to reach the internet; off keeps the SDK and
        # CLI from waiting on a network this benchmark does not have.
        ZENML_ANALYTICS_OPT_IN="false",
    )
    return env


def _cli(server: Server, work: Path, base: dict[str, str]) -> Invocation:
    config = work / "config.yaml"
    config.write_text(STEP_CONFIG_YAML)
    argv = [zenml_cli(), "pipeline", "snapshot", "run", SNAPSHOT, "--pipeline", PIPELINE, "--config", str(config)]
    return Invocation(argv, _zenml_env(server, work, base), work)


def _sdk(server: Server, work: Path, base: dict[str, str]) -> Invocation:
    return Invocation([python(), "-c", SDK_SCRIPT], _zenml_env(server, work, base), work)


def _curl(server: Server, work: Path, base: dict[str, str]) -> Invocation:
    env = dict(base, ZENML_STORE_URL=server.url, ZENML_STORE_API_KEY=server.api_key)
    return Invocation(["bash", str(BENCH_DIR / "curl_trigger.sh"), SNAPSHOT, PIPELINE], env, work)


def _floor(server: Server, work: Path, base: dict[str, str]) -> Invocation:
    env = dict(base, ZENML_STORE_URL=server.url, ZENML_STORE_API_KEY=server.api_key)
    return Invocation([python(), str(BENCH_DIR / "floor_client.py"), SNAPSHOT], env, work)


ACTION = Contender(
    "action", "action (by name)", "`python entrypoint.py`, `INPUT_TEMPLATE=trainer-prod`, flat parameters",
    _action(by_uuid=False), action_run_id,
)
ACTION_UUID = Contender(
    "action-uuid", "action (by UUID)", "`python entrypoint.py`, `INPUT_TEMPLATE=<snapshot UUID>`",
    _action(by_uuid=True), action_run_id,
)
CLI = Contender(
    "cli", "ZenML CLI", "`zenml pipeline snapshot run trainer-prod --pipeline trainer --config config.yaml`",
    _cli, cli_run_id,
)
SDK = Contender(
    "sdk", "ZenML SDK", "`python -c` with `Client().trigger_pipeline(...)`",
    _sdk, last_uuid,
)
CURL = Contender(
    "curl", "curl + jq", "`bash bench/curl_trigger.sh`: API key as bearer on 3 requests",
    _curl, last_uuid,
)
FLOOR = Contender(
    "floor", "floor (stdlib client)", "`python bench/floor_client.py`: login, lookup, trigger",
    _floor, last_uuid,
)
ALL = (ACTION, ACTION_UUID, CLI, SDK, CURL, FLOOR)


def base_env(pycache: Path) -> dict[str, str]:
    """The environment every contender starts from: ours, without ZenML,
    GitHub or action settings, and with bytecode caching on (into a
    benchmark-private directory, so nothing is written into the repository
    or the virtual environment)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ZENML_", "INPUT_", "GITHUB_", "RUNNER_", "PYTHON"))
    }
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
