"""GitHub Actions runtime: workflow commands, step outputs and the job summary.

Spec: https://docs.github.com/actions/reference/workflow-commands-for-github-actions
"""

from __future__ import annotations

import html
import json
import re
import secrets
import sys
import threading
from collections.abc import Mapping
from typing import TextIO
from urllib.parse import quote, quote_plus

MIN_SECRET_LENGTH = 12
# GitHub shows an annotation's first few thousand characters at most.
MAX_ANNOTATION = 4000


def escape_data(value: str) -> str:
    """Escape a workflow command's message so it stays one command."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def shorten(text: str, limit: int = 80) -> str:
    """The text, or its start and "..." when longer than `limit`: a value
    quoted in a message or the summary must not make an oversized one."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quoted(value: str) -> str:
    """A user's or the server's value in a message, as a code span:
    shortened, its backticks made quotes so that it cannot end the span."""
    return "`" + shorten(value.replace("`", "'")) + "`"


def markdown_text(text: str) -> str:
    """Text that Markdown (GitHub's, in a job summary or comment) shows as
    it is: no HTML, no links, no emphasis, no breaking out of a table."""
    # Quotes are text outside an HTML attribute (`&#x27;` would show in a code span).
    text = html.escape(text, quote=False)
    for char in "\\`*_[]|!#~":
        text = text.replace(char, "\\" + char)
    # GitHub links bare addresses too (`https://...`, `www....`): an entity
    # for one character keeps them text, and they read the same.
    text = text.replace("://", "&#58;//").replace("www.", "www&#46;").replace("WWW.", "WWW&#46;")
    # A mention (`@user`, `@org/team`) notifies, a reference (`#3`, `owner/repo#3`, `GH-12`) cross-links:
    # GitHub finds them in the rendered text, so a zero-width space after `@`, `#` or `GH-` keeps them text.
    return _REFERENCE.sub(lambda match: match.group(0) + "&#8203;", text)


# An `@` after a word character (`user@host`, `model@production`) mentions no one.
_REFERENCE = re.compile(r"(?<![\w.\\-])@(?=[A-Za-z0-9])|\\#(?=[0-9])|\bGH-(?=[0-9])", re.IGNORECASE)


class Console:
    """Workflow commands and log lines on stdout. Every line passes through
    `_write`, which replaces registered secrets: a secret that reaches a
    message by accident is still never printed."""

    def __init__(self, stream: TextIO | None = None, debug: bool = False, in_github: bool = True) -> None:
        self._stream = stream or sys.stdout
        self._secrets: list[str] = []
        self.debug_enabled = debug
        # Outside GitHub nobody reads `::add-mask::` (secrets are still replaced).
        self._in_github = in_github

    def mask(self, secret: str) -> None:
        # Too short to be a real key or token: masking it would blank out
        # ordinary words and spaces in every message.
        if len(secret.strip()) < MIN_SECRET_LENGTH or secret in self._secrets:
            return
        # The ways a secret can appear in what the action writes: as it is, URL- and form-encoded (in an
        # echoed login request, once or twice), JSON-escaped, and escaped for Markdown (in the summary).
        url, plus = quote(secret, safe=""), quote_plus(secret)
        forms = {secret, url, plus, quote(url, safe=""), quote_plus(plus)}
        forms |= {json.dumps(secret)[1:-1], markdown_text(secret)}
        # Longest first: a form that contains another is replaced whole.
        self._secrets = sorted(forms.union(self._secrets), key=len, reverse=True)
        if self._in_github:
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
        """Plain log text. Text from users or the server that the runner could read as a command
        (actions/runner ActionCommand: `::` after leading white space, or a legacy `##[` anywhere in the line)
        is relayed inside `stop-commands`."""
        lines = message.splitlines() or [""]
        commands = any(line.lstrip().startswith("::") or "##[" in line for line in lines)
        relay = self.relay() if commands else None
        for line in lines:
            self._write(line)
        if relay:
            relay.close()

    def relay(self) -> Relay:
        """A block of text from elsewhere (a pipeline's own log)."""
        return Relay(self)

    def debug(self, message: str) -> None:
        if self.debug_enabled:
            self._write(f"::debug::{escape_data(self.redact(message))}")

    def _annotate(self, command: str, message: str, title: str) -> None:
        title = escape_data(title).replace(":", "%3A").replace(",", "%2C")
        props = f" title={title}" if title else ""
        self._write(f"::{command}{props}::{escape_data(shorten(self.redact(message), MAX_ANNOTATION))}")

    def warning(self, message: str, title: str = "") -> None:
        self._annotate("warning", message, title)

    def notice(self, message: str, title: str = "") -> None:
        self._annotate("notice", message, title)

    def error(self, message: str, title: str = "") -> None:
        self._annotate("error", message, title)

    def group(self, name: str) -> None:
        # Outside GitHub nothing folds groups: a plain heading reads better.
        self._write(f"::group::{escape_data(name)}" if self._in_github else f"--- {name} ---")

    def endgroup(self) -> None:
        self._write("::endgroup::" if self._in_github else "---")


class Relay:
    """Lines from elsewhere, written as inert text: inside `stop-commands` (with a token nobody can guess, so
    the text cannot end the block), under which the runner executes nothing, `::` and `##[` lines included;
    and with secrets redacted like every line."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._resume = secrets.token_hex(16)
        self._lock = threading.Lock()
        console._raw(f"::stop-commands::{self._resume}")

    def line(self, text: str) -> None:
        with self._lock:
            if self._resume:  # open
                self._console._write(text)

    def close(self) -> None:
        with self._lock:
            if self._resume:
                self._console._raw(f"::{self._resume}::")
                self._resume = ""


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


def write_outputs(outputs: Mapping[str, str], output_file: str, console: Console) -> None:
    """Append to GITHUB_OUTPUT, or print `name=value` lines outside GitHub."""
    if output_file:
        with open(output_file, "a", encoding="utf-8") as handle:
            handle.write(format_outputs(outputs))
        return
    for name, value in outputs.items():
        console.info(f"{name}={value}")
