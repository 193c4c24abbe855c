"""Values from users or the server cannot forge outputs, workflow commands
or summary content; TLS is always verified; the key goes to the configured
host only.

Workflow commands are checked with `runner_commands`, a reading of stdout
that follows the runner's own parser (actions/runner `ActionCommand.cs`):
a line is a command when, after trimming leading white space, it starts
with `::NAME` (`TryParseV2`), or when it contains the legacy `##[NAME ...]`
anywhere (`TryParse`); `::stop-commands::TOKEN` suspends both until
`::TOKEN::`. Lines end at `\\n`, `\\r` or `\\r\\n`.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Deployment
from support.action import ROOT, ActionResult, ActionRunner, leaked, parse_output_file, without_mask_lines
from support.fault_proxy import Answer, Received, Recorder
from support.orchestrator import run_details

from zenml_action import github
from zenml_action.github import Console, format_outputs
from zenml_action.http import Transport, system_trust
from zenml_action.report import Report, cell, summary_markdown

DECLARED_OUTPUTS = set(yaml.safe_load((ROOT / "action.yml").read_text())["outputs"])
RUNNER_COMMANDS = {
    "add-mask", "add-matcher", "add-path", "debug", "echo", "endgroup", "error", "group",
    "notice", "remove-matcher", "save-state", "set-env", "set-output", "stop-commands", "warning",
}

HOSTILE = [
    "::error::forged",
    "  ::set-output name=run-id::forged",
    "\t::add-mask::a",
    "\u00a0::warning::after a no-break space",
    "x ##[error]forged legacy annotation",
    "x ##[set-output name=run-id;]forged",
    "##[stop-commands]tok",
    "a\n::error::after a newline",
    "a\r::error::after a carriage return",
    "a\r\n::set-output name=status::forged",
    "a\u2028::error::after a line separator",
    "%0A::error::pre-escaped",
    "run-id<<EOF\nforged\nEOF",
    "ghadelimiter_0123456789abcdef0123456789abcdef",
    "</td><script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[link](http://evil.example)",
    "![pixel](http://evil.example/p.png)",
    "| x | y |",
    "`code` *bold* _it_ # heading ~strike~ \\",
    "<!-- hidden -->",
    "&lt;script&gt;",
]
# Markup and table breakers, without anything the runner reads as a command
# (for the end-to-end run whose log must stay clean).
MARKUP = "::warning::w </td><script>alert(1)</script> | x | [x](http://evil.example) <img src=x onerror=alert(1)>"
LEGACY_COMMANDS = "x ##[set-output name=run-id;]forged ##[error]forged ##[add-mask]e"
KEY = "ZENKEY_" + "t" * 40
# A key with characters each encoding changes.
ODD_KEY = "ZENKEY_" + "a_b/c+d=" * 6


# -- the runner's reading of stdout -------------------------------------------


def _unescape(value: str, mappings: list[tuple[str, str]]) -> str:
    for token, replacement in mappings:
        value = value.replace(replacement, token)
    return value


DATA_ESCAPES = [("\r", "%0D"), ("\n", "%0A"), ("%", "%25")]
PROPERTY_ESCAPES = [("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), (",", "%2C"), ("%", "%25")]
LEGACY_ESCAPES = [(";", "%3B"), ("\r", "%0D"), ("\n", "%0A"), ("]", "%5D"), ("%", "%25")]


def _parse_v2(line: str, registered: set[str]) -> tuple[str, dict[str, str], str] | None:
    message = line.lstrip()  # .NET TrimStart: Unicode white space, as str.lstrip
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    info = message[2:end]
    name, _, props = info.partition(" ")
    if name.lower() not in registered:
        return None
    properties = {}
    for prop in props.strip().split(","):
        key, sep, value = prop.partition("=")
        if sep and key and value:
            properties[key] = _unescape(value, PROPERTY_ESCAPES)
    return name.lower(), properties, _unescape(message[end + 2 :], DATA_ESCAPES)


def _parse_legacy(line: str, registered: set[str]) -> tuple[str, dict[str, str], str] | None:
    start = line.find("##[")
    if start < 0:
        return None
    close = line.find("]", start)
    if close < 0:
        return None
    info = line[start + 3 : close]
    name, _, props = info.partition(" ")
    if name.lower() not in registered:
        return None
    properties = {}
    for prop in props.split(";"):
        key, sep, value = prop.partition("=")
        if sep and key and value:
            properties[key] = _unescape(value, LEGACY_ESCAPES)
    return name.lower(), properties, _unescape(line[close + 1 :], LEGACY_ESCAPES)


def runner_commands(stdout: str) -> list[tuple[str, dict[str, str], str]]:
    """The workflow commands the runner would execute, in order."""
    registered = set(RUNNER_COMMANDS)
    stop_token = ""
    commands = []
    for line in re.split(r"\r\n|\r|\n", stdout):
        parsed = _parse_v2(line, registered) or _parse_legacy(line, registered)
        if parsed is None:
            continue
        name, _, data = parsed
        if stop_token:
            if name == stop_token.lower():
                registered.discard(stop_token.lower())
                stop_token = ""
            continue
        if name == "stop-commands":
            stop_token = data
            registered.add(data.lower())
            continue
        commands.append(parsed)
    return commands


@pytest.mark.offline
def test_the_runner_reading_finds_real_commands() -> None:
    """The helper itself: it finds what the runner finds."""
    found = runner_commands("  ::error title=T%3A1::a%0Ab\nx ##[warning]legacy\n::stop-commands::t1\n::error::no\n::t1::\n::debug::d")
    assert found == [("error", {"title": "T:1"}, "a\nb"), ("warning", {}, "legacy"), ("debug", {}, "d")]


# -- pure functions -------------------------------------------------------------


@pytest.mark.offline
def test_outputs_round_trip_whatever_the_values() -> None:
    outputs = {f"out-{i}": value for i, value in enumerate(HOSTILE)}
    outputs.update({"empty": "", "trailing-newline": "v\n", "only-newlines": "\n\n", "crlf": "a\r\nb"})

    text = format_outputs(outputs)

    assert parse_output_file(text) == outputs
    # One block per output, each closed by its own delimiter.
    assert len(re.findall(r"^[a-z0-9-]+<<ghadelimiter_[0-9a-f]{32}$", text, flags=re.MULTILINE)) == len(outputs)


@pytest.mark.offline
def test_a_value_containing_the_delimiter_gets_another_one(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter(["a" * 32, "a" * 32, "b" * 32])
    monkeypatch.setattr(github.secrets, "token_hex", lambda n: next(tokens))
    value = f"before\nghadelimiter_{'a' * 32}\nrun-id<<x\nforged"

    text = format_outputs({"run-name": value})

    assert f"ghadelimiter_{'b' * 32}" in text
    assert parse_output_file(text) == {"run-name": value}


@pytest.mark.offline
@pytest.mark.parametrize("value", HOSTILE)
def test_console_lines_cannot_become_commands(value: str) -> None:
    stream = io.StringIO()
    console = Console(stream=stream, debug=True, in_github=True)

    console.info(value)
    console.info(f"Started run `{value}`")
    console.warning(value, title=value)
    console.error(value, title=value)
    console.debug(value)
    console.group(value)
    console.endgroup()

    commands = runner_commands(stream.getvalue())
    # Exactly the commands asked for, with the data and title intact.
    assert [name for name, _, _ in commands] == ["warning", "error", "debug", "group", "endgroup"], stream.getvalue()
    for name, properties, data in commands[:3]:
        assert data == value
        if name != "debug":
            assert properties["title"] == value


@pytest.mark.offline
def test_console_masks_secrets_in_every_line() -> None:
    stream = io.StringIO()
    console = Console(stream=stream, in_github=True)
    console.mask("s3cr3t-token")
    console.mask("line-one\nline-two")

    console.info("token s3cr3t-token and line-two")
    console.error("failed with s3cr3t-token")

    printed = stream.getvalue()
    # The runner masks each line of a multi-line secret on its own.
    masks = [data for name, _, data in runner_commands(printed) if name == "add-mask"]
    assert masks == ["s3cr3t-token", "line-one", "line-two"]
    body = "\n".join(line for line in printed.splitlines() if not line.startswith("::add-mask::"))
    assert "s3cr3t" not in body


@pytest.mark.offline
@pytest.mark.parametrize("write", ["info", "warning", "notice", "error"])
@pytest.mark.parametrize(
    "secret", ["pa%ss:w0rd-long-enough", "pa%ss w0rd long enough", "k3y:with,commas-long-enough", "ZENKEY_abc%0Adef-long"]
)
def test_every_kind_of_line_hides_a_secret_that_escaping_would_change(write: str, secret: str) -> None:
    # A notice once escaped `%` before redacting: `pa%25ss:w0rd...` matched no masked form (before 2830748).
    stream = io.StringIO()
    console = Console(stream=stream, in_github=True)
    console.mask(secret)
    getattr(console, write)(f"failed with {secret} here")
    body = "\n".join(line for line in stream.getvalue().splitlines() if not line.startswith("::add-mask::"))
    assert "***" in body
    assert secret not in body and secret.replace("%", "%25") not in body


# A Markdown link or image that is not escaped: `[text](target)`.
LINK = re.compile(r"(?<!\\)\[(?:[^\]\\]|\\.)*(?<!\\)\]\(")


# The only HTML the summary holds: the action's own folded sections.
FOLDS = re.compile(r"^(<details><summary>(Run configuration sent|Run metadata|Other run metadata|GitHub context)</summary>|</details>)$", re.M)


def assert_summary_is_inert(summary: str, allowed_links: int = 0) -> None:
    assert "<" not in FOLDS.sub("", summary), summary
    assert len(LINK.findall(summary)) == allowed_links, summary
    for line in summary.splitlines():
        if line.startswith("|"):
            # Two columns: three unescaped bars, whatever the cells hold.
            assert len(re.findall(r"(?<!\\)\|", line)) == 3, line
            assert line.endswith(" |") or line == "|---|---|", line


@pytest.mark.offline
@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_shows_text_only(value: str) -> None:
    shown = cell(value)

    assert "\n" not in shown and "\r" not in shown
    assert "<" not in shown
    assert not re.search(r"(?<!\\)\|", shown)
    assert not LINK.search(shown)


@pytest.mark.offline
def test_summary_with_hostile_values_everywhere_stays_inert() -> None:
    evil = " ".join(HOSTILE)
    report = Report(
        target=evil,
        pipeline=evil,
        run_id=evil,
        run_name=evil,
        run_url="http://127.0.0.1/runs/x)[evil](http://evil.example",
        status=evil,
        conclusion="success",
        duration_seconds=3,
        sent={evil: evil, "steps": {evil: {"parameters": {"p": [evil, {"k": evil}]}}}},
        metadata={evil: {"nested": evil}, "number": 1.5},
        error=evil,
    )

    summary = summary_markdown(report)

    # The dashboard link is the only link, and its target cannot be closed early.
    assert_summary_is_inert(summary, allowed_links=1)
    dashboard = next(line for line in summary.splitlines() if line.startswith("| Run |"))
    link = LINK.search(dashboard)
    assert link is not None
    target = dashboard[link.end() :].split(")", 1)[0]
    assert target == "http://127.0.0.1/runs/x%29[evil]%28http://evil.example"


@pytest.mark.offline
@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<script>x</script>", "//evil.example/x"])
def test_summary_links_only_web_urls(url: str) -> None:
    summary = summary_markdown(Report(target="t", run_id="r", run_url=url, conclusion="triggered"))

    assert_summary_is_inert(summary, allowed_links=0)


# -- what a hostile server answers, in this process ------------------------------
# No ZenML server: a recorder answers in its place. Each case ends in one
# clean error; nothing reaches another host (a redirect's target, or through
# the proxy variables a sink on loopback); the key is never shown.

JSON = {"Content-Type": "application/json"}
# Where a redirect points: `ELSEWHERE` is replaced by a local recorder.
ELSEWHERE = "http://elsewhere.invalid"


def refusing(detail: Any) -> Callable[[Received], Answer]:
    return lambda received: (401, JSON, json.dumps({"detail": detail}).encode())


def echoing_the_login(received: Received) -> Answer:
    """A server (or proxy) that quotes the login request in its 401."""
    return refusing(["AuthorizationException", f"Invalid credentials: {received.body.decode()}"])(received)


def redirecting(code: int, target: str, login_too: bool = True) -> Callable[[Received], Answer]:
    def answer(received: Received) -> Answer:
        if received.path.startswith("/api/v1/login") and not login_too:
            return 200, JSON, b'{"access_token": "token-for-the-first-host-only"}'
        return code, {"Location": target + received.path, "Content-Length": "0"}, b""

    return answer


@dataclass(frozen=True)
class HostileServer:
    id: str
    answer: Callable[[Received], Answer]
    in_error: str  # in the one `::error`
    api_key: str = KEY


HOSTILE_SERVERS = [
    HostileServer("commands-and-markup-in-its-error", refusing("nope\n::error::forged\r\n##[set-output name=run-id;]forged " + MARKUP), "nope"),
    HostileServer("echoes-the-login", echoing_the_login, "Invalid credentials", api_key=ODD_KEY),
    *(
        HostileServer(f"redirects-{code}-{'on' if login_too else 'after'}-login", redirecting(code, ELSEWHERE, login_too), "redirected")
        for code in (302, 307, 308)
        for login_too in (True, False)
    ),
    # With every proxy variable pointing at the sink, an attempt to go
    # there would land in it.
    HostileServer("redirects-to-a-remote-host", redirecting(307, "https://evil.example"), "`workspace-url`"),
]


@pytest.mark.offline
@pytest.mark.parametrize("server", HOSTILE_SERVERS, ids=[server.id for server in HOSTILE_SERVERS])
def test_a_hostile_server_gets_one_clean_error_and_nothing_else(server: HostileServer, workspace: Path) -> None:
    with Recorder() as elsewhere, Recorder() as sink:

        def answer(received: Received) -> Answer:
            status, headers, body = server.answer(received)
            if "Location" in headers:
                headers = {**headers, "Location": headers["Location"].replace(ELSEWHERE, elsewhere.url)}
            return status, headers, body

        with Recorder(answer) as zenml:
            runner = ActionRunner(workspace, base_inputs={"workspace-url": zenml.url, "api-key": server.api_key})
            proxies = {name: sink.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")}
            result = runner.run_in_process({"template": "trainer-prod"}, extra_env={**proxies, "NO_PROXY": "127.0.0.1"})

    assert result.returncode == 1
    names = [name for name, _, _ in runner_commands(result.stdout)]
    assert names.count("error") == 1 and set(names) <= {"add-mask", "error", "warning"}, result.stdout
    assert server.in_error in result.errors[0], result.errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert result.output_text == ""
    assert_summary_is_inert(result.summary)
    assert elsewhere.received == [] and sink.received == []
    for text in (without_mask_lines(result.stdout), result.summary, result.output_text):
        assert not leaked(server.api_key, text)


# -- end to end, against the real server ------------------------------------------


def assert_log_has_no_forged_commands(result: ActionResult, errors: int = 0) -> None:
    names = [name for name, _, _ in runner_commands(result.stdout)]
    assert names.count("error") == errors, result.stdout
    assert set(names) <= {"add-mask", "error", "warning"}, result.stdout
    assert names.count("warning") == 0, result.stdout


def test_hostile_run_name_and_parameters_reach_the_server_as_text(
    action: ActionRunner, zenml: Deployment
) -> None:
    run_name = f"{MARKUP} {os.getpid()}-{datetime.datetime.now().timestamp()}"
    result = action.run(
        {
            "template": "trainer-prod",
            "wait": "false",
            "run-name": run_name,
            "parameters": json.dumps({"model_type": MARKUP}),
        }
    )

    assert result.returncode == 0, result.stdout
    outputs = parse_output_file(result.output_text)
    assert set(outputs) == DECLARED_OUTPUTS
    assert outputs["run-name"] == run_name
    assert outputs["conclusion"] == "triggered"
    assert outputs["status"] == "initializing"
    assert outputs["snapshot-id"] == zenml.snapshots["trainer"]
    run = run_details(zenml.server, outputs["run-id"])
    assert run["name"] == run_name
    assert outputs["run-url"] == f"{zenml.url}/projects/default/runs/{run['id']}"
    assert_log_has_no_forged_commands(result)
    assert_summary_is_inert(result.summary, allowed_links=1)


def test_hostile_parameters_in_a_dry_run(action: ActionRunner) -> None:
    value = MARKUP + " a\nb\r\nc"
    result = action.run(
        {"template": "trainer-prod", "dry-run": "true", "parameters": json.dumps({"model_type": value})}
    )

    assert result.returncode == 0, result.stdout
    outputs = parse_output_file(result.output_text)
    assert set(outputs) == DECLARED_OUTPUTS
    assert outputs["conclusion"] == "dry-run" and outputs["run-id"] == ""
    assert json.dumps(value) in result.stdout  # the request shown, as JSON text
    assert_log_has_no_forged_commands(result)
    assert_summary_is_inert(result.summary)


def test_legacy_command_syntax_in_a_run_name_is_not_executed(action: ActionRunner, zenml: Deployment) -> None:
    """The runner also executes `##[name]data` found ANYWHERE in a line
    (`ActionCommand.TryParse`); a run name echoed in a log line must not
    set outputs, annotate or mask."""
    run_name = f"{LEGACY_COMMANDS} {os.getpid()}-{datetime.datetime.now().timestamp()}"
    result = action.run({"template": "trainer-prod", "wait": "false", "run-name": run_name})

    assert result.returncode == 0, result.stdout
    assert parse_output_file(result.output_text)["run-name"] == run_name
    assert_log_has_no_forged_commands(result)


# -- the key in its encoded forms --------------------------------------------------


@pytest.mark.offline
@pytest.mark.parametrize(
    "shown",
    [
        ODD_KEY,
        urllib.parse.quote(ODD_KEY, safe=""),
        urllib.parse.quote_plus(ODD_KEY),
        urllib.parse.quote(urllib.parse.quote(ODD_KEY, safe=""), safe=""),
        json.dumps(ODD_KEY)[1:-1],
        cell(ODD_KEY),
    ],
    ids=["plain", "url", "form", "url-twice", "json", "markdown"],
)
def test_the_key_is_redacted_in_every_encoding(shown: str) -> None:
    stream = io.StringIO()
    console = Console(stream=stream, in_github=True)
    console.mask(ODD_KEY)
    console.error(f"the server said: password={shown}")
    console.info(f"echo {shown}")
    assert console.redact(f"| {shown} |") == "| *** |"
    body = without_mask_lines(stream.getvalue())
    assert not leaked(ODD_KEY, body) and "a_b" not in body.replace("%", "")


def test_a_key_in_a_value_stays_out_of_summary_and_outputs(action: ActionRunner, zenml: Deployment) -> None:
    """The user pasted the key into a parameter and the run name."""
    key = zenml.api_key
    result = action.run(
        {"template": "trainer-prod", "parameters": f"data_url: {key}", "run-name": f"nightly {key}", "wait": "false"}
    )
    assert result.returncode == 0, result.stdout
    assert result.outputs["run-name"] == "nightly ***"
    assert "data\\_url" in result.summary and "***" in result.summary
    for text in (without_mask_lines(result.stdout), result.summary, result.output_text):
        assert not leaked(key, text)


# -- TLS ------------------------------------------------------------------------------


@pytest.mark.offline
def test_tls_verification_is_on_by_default() -> None:
    transport = Transport("https://zenml.example.com")
    assert transport.verify is True
    context = system_trust()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True



def test_tls_with_an_unknown_ca_fails_before_sending_the_key(
    https_server: tuple[Recorder, Path], workspace: Path
) -> None:
    server, _ = https_server
    runner = ActionRunner(workspace, base_inputs={"workspace-url": server.url, "api-key": KEY})

    result = runner.run({"template": "trainer-prod"})

    assert result.returncode == 1
    assert len(result.errors) == 1
    assert "title=Cannot reach the ZenML server" in result.errors[0]
    assert "did not verify" in result.errors[0] and "`ca-bundle`" in result.errors[0]
    assert server.received == []


@pytest.mark.parametrize(
    "environment_bundle",
    [None, "system"],
    ids=["no-REQUESTS_CA_BUNDLE", "REQUESTS_CA_BUNDLE-set"],
)
def test_ca_bundle_makes_the_handshake_pass(
    https_server: tuple[Recorder, Path], workspace: Path, environment_bundle: str | None
) -> None:
    """`ca-bundle` is used, even on a runner whose environment names another
    CA bundle (REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, as corporate runners do)."""
    server, _ = https_server
    runner = ActionRunner(workspace, base_inputs={"workspace-url": server.url, "api-key": KEY})
    env = {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}
    if environment_bundle:
        system = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
        env = {"REQUESTS_CA_BUNDLE": system, "CURL_CA_BUNDLE": system}

    result = runner.run({"template": "trainer-prod", "ca-bundle": "certs/ca.pem"}, extra_env=env)

    assert result.returncode == 1
    assert "title=ZenML authentication failed" in result.errors[0], result.stdout
    # The handshake passed: the login arrived (beside the public /info,
    # which is read alongside it).
    assert sorted(r.path for r in server.received) == ["/api/v1/info", "/api/v1/login"]


def test_netrc_credentials_are_not_added(workspace: Path, tmp_path: Path) -> None:
    """A `.netrc` entry for the server's host must not replace the token
    (requests adds netrc credentials when it trusts the environment)."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-password\n")
    netrc.chmod(0o600)

    def answer(received: Received) -> Answer:
        if received.path.startswith("/api/v1/login"):
            return 200, {"Content-Type": "application/json"}, b'{"access_token": "the-token"}'
        return 404, {"Content-Type": "application/json"}, b'{"detail": ["KeyError", "nothing here"]}'

    with Recorder(answer) as server:
        runner = ActionRunner(workspace, base_inputs={"workspace-url": server.url, "api-key": KEY})
        runner.run({"template": "trainer-prod"}, extra_env={"NETRC": str(netrc), "HOME": str(tmp_path)})

    received = [r for r in server.received if r.path != "/api/v1/info"]
    # The public /info carries no credentials at all.
    assert all(r.headers.get("authorization") is None for r in server.received if r.path == "/api/v1/info")
    authorizations: list[Any] = [r.headers.get("authorization") for r in received]
    # The login sends the key in its form body, and nothing else.
    assert authorizations[0] is None, authorizations
    assert authorizations[1:] and all(a == "Bearer the-token" for a in authorizations[1:]), authorizations


def test_a_pipeline_log_cannot_issue_workflow_commands(workspace: Path) -> None:
    """Code mode relays the pipeline's own log; a data file whose header
    holds a newline and a command (and one in a legacy `##[` form) stays
    text there, and the action's one `::error` is the only command."""
    import shutil

    shutil.copytree(ROOT / "pipelines", workspace / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    data = workspace / "data.csv"
    data.write_text('"a\n::warning::forged-by-csv","b ##[error]forged-legacy"\n1,2\n3,4\n')
    runner = ActionRunner(workspace)

    result = runner.run(
        {"pipeline": "pipelines/training.py:training_pipeline", "parameters": f"data_url: {data}"}, timeout=300
    )

    assert result.returncode == 1
    assert "forged-by-csv" in result.stdout  # the log was shown...
    commands = runner_commands(result.stdout)
    assert [name for name, _, _ in commands if name not in ("add-mask", "group", "endgroup")] == ["error"], result.stdout
    assert not any("forged" in data for name, _, data in commands if name != "error")
