"""Run the action as GitHub runs it, and read back what it wrote.

The entrypoint runs in a subprocess with `INPUT_*` variables and temporary
`GITHUB_OUTPUT` / `GITHUB_STEP_SUMMARY` files; the files are read back with
a parser that follows the runner's rules.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The API keys of the test servers: no action run may print or write them.
SECRETS: set[str] = set()


def check_no_secret(transcript: str) -> None:
    """Everything one action run printed or wrote (log, outputs, summary)
    holds no API key and no token, in any encoding. Checked as each run ends,
    so it holds whatever the order or selection of the tests."""
    # The action announces each secret once in an `::add-mask::` line, the
    # runner's instruction to hide it: that line is the one exception.
    tokens = {value for value in masked_values(transcript) if len(value) > 20}
    body = without_mask_lines(transcript)
    found = [secret[:12] + "..." for secret in SECRETS | tokens if leaked(secret, body)]
    assert not found, f"an action run printed a secret: {found}"


def parse_output_file(text: str) -> dict[str, str]:
    """The runner's reading of a GITHUB_OUTPUT file: `name=value` lines and
    `name<<DELIMITER` blocks (universal newlines off: `\\n` only)."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        heredoc = re.fullmatch(r"([^=<]+)<<(.+)", line)
        if heredoc and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = heredoc.groups()
            value_lines = []
            while i < len(lines) and lines[i] != delimiter:
                value_lines.append(lines[i])
                i += 1
            if i >= len(lines):
                raise ValueError(f"unterminated output {name!r}")
            i += 1
            outputs[name] = "\n".join(value_lines)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
        else:
            raise ValueError(f"malformed output line {line!r}")
    return outputs


@dataclass
class ActionResult:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    output_text: str = ""
    # (monotonic time read, line) for each line printed, when started `stamped`.
    stamped: list[tuple[float, str]] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("::error")]

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("::warning")]


@dataclass
class ActionRunner:
    """Starts the entrypoint the way the runner does for a Docker action."""

    workspace: Path
    base_inputs: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    _count: int = 0

    def env(self, inputs: dict[str, str], files: Path) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("INPUT_", "GITHUB_", "ZENML_", "RUNNER_"))
            # A proxy of the machine running the tests must not sit between
            # the action and the loopback server (test_proxy.py sets its own).
            and not k.lower().endswith("_proxy")
        }
        env.update(
            GITHUB_ACTIONS="true",
            GITHUB_WORKSPACE=str(self.workspace),
            GITHUB_OUTPUT=str(files / "output"),
            GITHUB_STEP_SUMMARY=str(files / "summary"),
            GITHUB_RUN_ID="4242",
            GITHUB_RUN_ATTEMPT="1",
            GITHUB_ACTION="train",
            PYTHONPATH=str(ROOT),
        )
        env.update(self.extra_env)
        for name, value in {**self.base_inputs, **inputs}.items():
            env[f"INPUT_{name.upper()}"] = value
        return env

    def start(self, inputs: dict[str, str], extra_env: dict[str, str] | None = None, stamped: bool = False) -> RunningAction:
        """`stamped`: each line the action prints is read as it comes, with
        the time it was read (`ActionResult.stamped`)."""
        self._count += 1
        files = self.workspace.parent / f"files-{os.getpid()}-{self._count}-{time.monotonic_ns()}"
        files.mkdir()
        (files / "output").touch()
        (files / "summary").touch()
        env = self.env(inputs, files)
        env.update(extra_env or {})
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "entrypoint.py")],
            env=env,
            cwd=self.workspace,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        running = RunningAction(process, files)
        if stamped:
            running.read_as_it_comes()
        return running

    def run(self, inputs: dict[str, str], timeout: float = 120, extra_env: dict[str, str] | None = None) -> ActionResult:
        return self.start(inputs, extra_env).finish(timeout)

    def run_in_process(self, inputs: dict[str, str], extra_env: dict[str, str] | None = None) -> ActionResult:
        """`main()` in this process, with the same environment as `start`:
        for what never crosses the process boundary (input mistakes), at a
        fraction of a process start. Signals, exit codes and os._exit stay
        with `run`."""
        from zenml_action.main import main

        self._count += 1
        files = self.workspace.parent / f"files-{os.getpid()}-{self._count}-{time.monotonic_ns()}"
        files.mkdir()
        (files / "output").touch()
        (files / "summary").touch()
        env = {**self.env(inputs, files), **(extra_env or {})}
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            returncode = main([], env)
        output_text = (files / "output").read_text()
        summary = (files / "summary").read_text()
        check_no_secret("\n".join([stdout.getvalue(), stderr.getvalue(), output_text, summary]))
        return ActionResult(returncode, stdout.getvalue(), stderr.getvalue(), parse_output_file(output_text), summary, output_text)


@dataclass
class RunningAction:
    process: subprocess.Popen[str]
    files: Path
    stamped: list[tuple[float, str]] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def read_as_it_comes(self) -> None:
        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.stamped.append((time.monotonic(), line))

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    def _communicate(self, timeout: float) -> tuple[str, str]:
        if self._reader is None:
            return self.process.communicate(timeout=timeout)
        self.process.wait(timeout=timeout)
        self._reader.join(10)
        assert self.process.stderr is not None
        return "".join(line for _, line in self.stamped), self.process.stderr.read()

    def finish(self, timeout: float = 120) -> ActionResult:
        stdout, stderr = self._communicate(timeout)
        output_text = (self.files / "output").read_text()
        summary = (self.files / "summary").read_text()
        check_no_secret("\n".join([stdout, stderr, output_text, summary]))
        return ActionResult(
            returncode=self.process.returncode,
            stdout=stdout,
            stderr=stderr,
            outputs=parse_output_file(output_text),
            summary=summary,
            output_text=output_text,
            stamped=[(moment, line.rstrip("\n")) for moment, line in self.stamped],
        )


def leaked(secret: str, text: str) -> bool:
    """Is the secret in the text in any encoding the action could produce?"""
    forms = {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        urllib.parse.quote(urllib.parse.quote(secret, safe=""), safe=""),
        json.dumps(secret)[1:-1],
        secret.replace("_", "\\_"),
    }
    return any(form in text for form in forms if form)


def masked_values(stdout: str) -> list[str]:
    return [line[len("::add-mask::"):] for line in stdout.splitlines() if line.startswith("::add-mask::")]


def without_mask_lines(stdout: str) -> str:
    return "\n".join(line for line in stdout.splitlines() if not line.startswith("::add-mask::"))
