"""GitHub Actions runtime: workflow commands, step outputs and the job summary.

Spec: https://docs.github.com/actions/reference/workflow-commands-for-github-actions
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO


def escape_data(value: str) -> str:
    """Escape a workflow command's message so it stays one command."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


MIN_SECRET_LENGTH = 12


def looks_like_command(line: str) -> bool:
    """Would the runner read this log line as a workflow command?
    (actions/runner ActionCommand: `::` after trimming, legacy `##[`.)"""
    return line.lstrip().startswith("::") or "##[" in line


class Console:
    """Writes workflow commands and log lines to stdout.

    Every line passes through `_write`, which replaces registered secrets, so
    a secret that reaches a message by accident is still never printed.
    """

    def __init__(self, stream: TextIO | None = None, debug: bool = False, in_github: bool = True) -> None:
        self._stream = stream or sys.stdout
        self._secrets: list[str] = []
        self.debug_enabled = debug
        # Outside GitHub nobody reads `::add-mask::`; secrets are still
        # replaced in every line written.
        self._announce_masks = in_github

    def mask(self, secret: str) -> None:
        # Too short to be a real key or token: masking it would blank out
        # ordinary words and spaces in every message.
        if len(secret.strip()) < MIN_SECRET_LENGTH or secret in self._secrets:
            return
        self._secrets.append(secret)
        if not self._announce_masks:
            return
        # The runner masks each line of a multi-line value separately.
        for line in secret.splitlines():
            if line.strip():
                self._raw(f"::add-mask::{line}")

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _raw(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()

    def _write(self, line: str) -> None:
        self._raw(self.redact(line))

    def info(self, message: str) -> None:
        """Plain log text. Text from users or the server that the runner
        could read as a command (`::` after leading white space, or a legacy
        `##[...]` anywhere in the line) is wrapped in `stop-commands`, under
        which the runner executes nothing."""
        lines = message.splitlines() or [""]
        if not any(looks_like_command(line) for line in lines):
            for line in lines:
                self._write(line)
            return
        resume = secrets.token_hex(16)
        self._raw(f"::stop-commands::{resume}")
        for line in lines:
            self._write(line)
        self._raw(f"::{resume}::")

    def debug(self, message: str) -> None:
        if self.debug_enabled:
            self._write(f"::debug::{escape_data(message)}")

    def warning(self, message: str, title: str = "") -> None:
        props = f" title={escape_property(title)}" if title else ""
        self._write(f"::warning{props}::{escape_data(message)}")

    def notice(self, message: str, title: str = "") -> None:
        props = f" title={escape_property(title)}" if title else ""
        self._write(f"::notice{props}::{escape_data(message)}")

    def error(self, message: str, title: str = "") -> None:
        props = f" title={escape_property(title)}" if title else ""
        self._write(f"::error{props}::{escape_data(message)}")

    def group(self, name: str) -> None:
        # Outside GitHub nothing folds groups: a plain heading reads better.
        self._write(f"::group::{escape_data(name)}" if self._announce_masks else f"--- {name} ---")

    def endgroup(self) -> None:
        self._write("::endgroup::" if self._announce_masks else "---")


def format_outputs(outputs: Mapping[str, str]) -> str:
    """Render outputs in the file-command format with a fresh delimiter per
    value, so no value (however hostile) can close its block early."""
    chunks = []
    for name, value in outputs.items():
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        while delimiter in value:
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(chunks)


def write_outputs(outputs: Mapping[str, str], output_file: Path | None, console: Console) -> None:
    """Append to GITHUB_OUTPUT, or print `name=value` lines outside GitHub."""
    if output_file is not None:
        with output_file.open("a", encoding="utf-8") as handle:
            handle.write(format_outputs(outputs))
        return
    for name, value in outputs.items():
        console.info(f"{name}={value}")


def append_summary(markdown: str, summary_file: Path | None) -> None:
    if summary_file is None:
        return
    with summary_file.open("a", encoding="utf-8") as handle:
        handle.write(markdown)
