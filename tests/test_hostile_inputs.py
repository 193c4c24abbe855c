"""Bad and hostile inputs: each ends the step cleanly, says which input is
wrong and how to fix it, and neither starts a run nor writes a result.

Every case runs the action's `main()` in this process (an input mistake
never crosses the process boundary; exit codes and signals are tested with
real processes elsewhere), with `HTTP(S)_PROXY` pointing at a recording
sink: an attempt to contact any non-loopback host would land there instead
of on the network. Mistakes in the inputs themselves need no server: a
recorder stands in for it and must receive nothing. Mistakes only the
snapshot reveals run against the real test server, which must see no
trigger.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import Deployment
from support.action import ActionResult, ActionRunner
from support.fault_proxy import FaultProxy, Recorder

from zenml_action.parameters import load_parameters

# Nine levels of nine aliases: 9**9 (about 387 million) values once expanded.
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, cur in zip("abcdefgh", "bcdefghi", strict=True)
)
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@dataclass(frozen=True)
class Bad:
    """One bad input. `$PORT`, `$TMP` (the directory above the workspace) and
    `$KEY` (the real API key) are replaced in the inputs."""

    id: str
    inputs: dict[str, str]
    # Must appear in the `::error::` line: which input...
    names: str
    # ...and how to fix it.
    fix: str
    # Files to create, relative to the workspace (`../` for outside it).
    files: dict[str, str | bytes] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)  # link -> target ($TMP allowed)
    dirs: tuple[str, ...] = ()
    fifos: tuple[str, ...] = ()
    # Must not appear anywhere in what the action printed or wrote.
    secret: str = ""
    # Found only once the snapshot is read (but still before any trigger).
    reaches_server: bool = False
    # Environment variables of the runner (`$TMP` and `$WS` allowed).
    env: dict[str, str] = field(default_factory=dict)


T = {"template": "trainer-prod"}
CODE = {"pipeline": "pipelines/training.py:training_pipeline"}
PARAMS = "Input `parameters`"
URL = "Input `workspace-url`"
KEY = "Input `api-key`"
NOT_URL = "Give the full URL with its scheme"
INSECURE = "`allow-insecure-http: true`"
DURATION = "Use a positive duration"
BOOLEAN = "Use `true` or `false`"
OUTSIDE = "Give a path inside the repository checkout"
FIX_PARAMS = "Fix `parameters`."

CASES = [
    # -- YAML that is not what it should be ----------------------------------
    Bad("yaml-unclosed-flow", {**T, "parameters": "model_type: [gradient"}, f"{PARAMS}: is not valid YAML", "Write a mapping"),
    Bad("yaml-bad-indent", {**T, "parameters": "model_type: a\n  data_url: b"}, f"{PARAMS}: is not valid YAML (line 2", "Write a mapping"),
    Bad("yaml-tab-indent", {**T, "parameters": "steps:\n\ttrain_model: {}"}, f"{PARAMS}: is not valid YAML", "Write a mapping"),
    Bad("yaml-list", {**T, "parameters": "- model_type\n- data_url"}, f"{PARAMS}: is YAML of type list, not a mapping", "Write `name: value` pairs"),
    Bad("yaml-scalar", {**T, "parameters": "gradient_boosting"}, f"{PARAMS}: is YAML of type str, not a mapping", "Write `name: value` pairs"),
    Bad("yaml-number", {**T, "parameters": "42"}, f"{PARAMS}: is YAML of type int", "Write `name: value` pairs"),
    Bad("yaml-billion-laughs", {**T, "parameters": BILLION_LAUGHS}, f"{PARAMS}: has more than 20000 values once its aliases are expanded", "without nested YAML aliases"),
    Bad("yaml-recursive-alias", {**T, "parameters": "steps: &s {train_model: {parameters: {x: *s}}}"}, f"{PARAMS}: is nested too deeply", "Flatten the YAML"),
    Bad("yaml-deep-nesting", {**T, "parameters": "model_type: " + "[" * 3000 + "]" * 3000}, f"{PARAMS}: is nested too deeply", "Flatten the YAML"),
    Bad("yaml-nested-60", {**T, "parameters": "steps: {}\nextra: " + "[" * 60 + "]" * 60}, f"{PARAMS}: is nested more than 50 levels deep", "Flatten the YAML"),
    Bad("yaml-oversized-file", {**T, "parameters": "big.yaml"}, f"{PARAMS}: `big.yaml` is larger than 256 KiB", "Use a smaller file", files={"big.yaml": "model_type: " + "x" * (300 * 1024) + "\n"}),
    Bad("yaml-too-many-values", {**T, "config": "many.yaml"}, "Input `config`: has more than 20000 values", "Pass only the settings you change", files={"many.yaml": "".join(f"k{i}: 1\n" for i in range(12_000))}),
    Bad("yaml-python-tag", {**T, "parameters": "!!python/object/apply:os.system ['touch /tmp/pwned']"}, f"{PARAMS}: is not valid YAML", "Write a mapping"),
    # -- keys that are not strings ---------------------------------------------
    Bad("key-int", {**T, "parameters": "1: x"}, f"{PARAMS}: has a key `1` at the top level that is not a string", "Quote the key"),
    Bad("key-null", {**T, "parameters": "null: x"}, f"{PARAMS}: has a key `None`", "Quote the key"),
    Bad("key-bool", {**T, "parameters": "true: x"}, f"{PARAMS}: has a key `True`", "Quote the key"),
    Bad("key-list", {**T, "parameters": "[a]: x"}, f"{PARAMS}: is not valid YAML", "Write a mapping"),
    Bad("key-nested-int", {**T, "parameters": "steps: {train_model: {parameters: {1: x}}}"}, f"{PARAMS}: has a key `1` at `steps.train_model.parameters`", "Quote the key"),
    Bad("key-int-in-list", {**T, "parameters": "steps: {}\ntags: [{1: x}]"}, f"{PARAMS}: has a key `1` at `tags[0]`", "Quote the key"),
    # -- values JSON cannot carry ------------------------------------------------
    Bad("value-date", {**T, "parameters": "steps: {}\nextra: {when: 2024-01-01}"}, f"{PARAMS}: has the date `2024-01-01` at `extra.when`", "Quote it"),
    Bad("value-nan", {**T, "parameters": "steps: {}\nextra: {x: .nan}"}, f"{PARAMS}: has the value `nan` at `extra.x`, which is not a finite number", "Use a finite number"),
    Bad("value-binary", {**T, "parameters": "steps: {}\nextra: {x: !!binary aGVsbG8=}"}, f"{PARAMS}: has a value of YAML type `bytes`", "Use plain strings"),
    Bad("value-set", {**T, "parameters": "steps: {}\nextra: !!set {a, b}"}, f"{PARAMS}: has a value of YAML type `set`", "Use plain strings"),
    # -- wrong value types (checked against the real snapshot) -----------------
    Bad("type-steps-list", {**T, "parameters": "steps: [train_model]"}, "`steps` must be a mapping of step names", FIX_PARAMS, reaches_server=True),
    Bad("type-step-scalar", {**T, "parameters": "steps: {train_model: 5}"}, "`steps.train_model` must be a mapping", FIX_PARAMS, reaches_server=True),
    Bad("type-step-parameters-list", {**T, "parameters": "steps: {train_model: {parameters: [1, 2]}}"}, "`steps.train_model.parameters` must be a mapping", FIX_PARAMS, reaches_server=True),
    Bad("type-parameters-list", {**T, "parameters": "parameters: [1, 2]"}, "`parameters` must be a mapping", FIX_PARAMS, reaches_server=True),
    Bad("type-int-for-string", {**T, "parameters": "model_type: 5"}, "`model_type` of pipeline `trainer` has the wrong value 5: expected string", FIX_PARAMS, reaches_server=True),
    Bad("type-tags-scalar", {**T, "parameters": "steps: {}\ntags: 5"}, "`tags` must be a list of tag names", FIX_PARAMS, reaches_server=True),
    Bad("type-enable-cache", {**T, "parameters": "steps: {}\nenable_cache: maybe"}, "`enable_cache` must be `true` or `false`", FIX_PARAMS, reaches_server=True),
    Bad("type-run-name-list", {**T, "parameters": "steps: {}\nrun_name: [a]"}, "`run_name` must be a string", FIX_PARAMS, reaches_server=True),
    # -- template and pipeline ---------------------------------------------------
    Bad("template-malformed-uuid", {"template": "1234abcd-1234-1234-1234-12345678"}, "Input `template`: `1234abcd-1234-1234-1234-12345678` looks like a UUID", "Copy the full snapshot ID"),
    Bad("template-uuid-too-long", {"template": "f6dfc8b1-0558-4ba5-8655-696a213da3d9-0"}, "Input `template`:", "Copy the full snapshot ID"),
    Bad("template-newline", {"template": "trainer-prod\n::error::forged"}, "Input `template`: contains a line break", "Give a single-line name"),
    Bad("template-oversized", {"template": "t" * 300}, "Input `template`: is longer than 255 characters", "Give a shorter name"),
    Bad("neither-template-nor-pipeline", {"template": "", "pipeline": ""}, "Input `template`: is not set, and neither is `pipeline`", "Set `template`"),
    Bad("pipeline-carriage-return", {"pipeline": "trainer\rx"}, "Input `pipeline`: contains a line break", "Give a single-line name"),
    Bad("project-newline", {**T, "project": "default\nother"}, "Input `project`: contains a line break", "Give a single-line name"),
    # -- run name -----------------------------------------------------------------
    Bad("run-name-newline", {**T, "run-name": "nightly\n::set-output name=run-id::forged"}, "Input `run-name`: contains a line break", "Give a single-line name"),
    Bad("run-name-line-separator", {**T, "run-name": "nightly\u2028::error::forged"}, "Input `run-name`: contains a line break", "Give a single-line name"),
    Bad("run-name-unbalanced-brace", {**T, "run-name": "nightly-{date"}, "Input `run-name`: has unbalanced braces", "`{{`"),
    Bad("run-name-positional-placeholder", {**T, "run-name": "nightly-{0}"}, "Input `run-name`: has the placeholder `{0}`", "`{date}`"),
    Bad("run-name-oversized", {**T, "run-name": "r" * 300}, "Input `run-name`: is longer than 255 characters", "Give a shorter name"),
    # -- workspace-url ----------------------------------------------------------
    Bad("url-no-scheme", {**T, "workspace-url": "127.0.0.1:$PORT"}, f"{URL}: `127.0.0.1:", NOT_URL),
    Bad("url-host-only", {**T, "workspace-url": "zenml.example.com"}, f"{URL}: `zenml.example.com` is not an http(s) URL", NOT_URL),
    Bad("url-ftp", {**T, "workspace-url": "ftp://127.0.0.1/zenml"}, f"{URL}: `ftp://127.0.0.1/zenml` is not an http(s) URL", NOT_URL),
    Bad("url-javascript", {**T, "workspace-url": "javascript:alert(1)"}, f"{URL}: `javascript:alert(1)` is not an http(s) URL", NOT_URL),
    Bad("url-http-remote-host", {**T, "workspace-url": "http://zenml.example.com"}, f"{URL}: `http://zenml.example.com` uses plain http to a non-local host", INSECURE),
    Bad("url-http-remote-ip", {**T, "workspace-url": "http://10.20.30.40:8080/"}, f"{URL}: `http://10.20.30.40:8080/` uses plain http", INSECURE),
    Bad("url-http-lookalike-host", {**T, "workspace-url": "http://localhost.example.com"}, f"{URL}: `http://localhost.example.com` uses plain http", INSECURE),
    Bad("url-credentials-remote", {**T, "workspace-url": "https://ci-bot:hunter2-secret@zenml.example.com"}, f"{URL}: contains credentials", "pass a service-account key in `api-key`", secret="hunter2-secret"),
    Bad("url-credentials-loopback", {**T, "workspace-url": "http://admin:loop-secret@127.0.0.1:$PORT"}, f"{URL}: contains credentials", "pass a service-account key in `api-key`", secret="loop-secret"),
    Bad("url-query", {**T, "workspace-url": "http://127.0.0.1:$PORT/?next=https://evil.example"}, f"{URL}: has a query or fragment", "Give the server's base URL only"),
    Bad("url-bad-port", {**T, "workspace-url": "http://127.0.0.1:99999"}, f"{URL}: `http://127.0.0.1:99999` has an invalid port", "Fix the port number"),
    Bad("url-two-urls", {**T, "workspace-url": "http://127.0.0.1:$PORT http://evil.example"}, f"{URL}: contains white space", "Give a single URL"),
    Bad("url-control-characters", {**T, "workspace-url": "http://127.0.0.1:$PORT/\x1b[31m"}, f"{URL}: contains white space or control characters", "Give a single URL"),
    Bad("url-oversized", {**T, "workspace-url": "http://127.0.0.1:$PORT/" + "a" * 5000}, f"{URL}: is longer than 2048 characters", "Give the server's base URL only"),
    # The positive case: allowed, but never contacted (the timeout is refused first).
    Bad("url-http-remote-allowed", {**T, "workspace-url": "http://zenml.example.com", "allow-insecure-http": "true", "timeout": "abc"}, "Input `timeout`: `abc` is not a duration", DURATION),
    # -- api-key --------------------------------------------------------------------
    Bad("key-empty", {**T, "api-key": ""}, f"{KEY}: is not set", "store it as a repository secret"),
    Bad("key-padded", {**T, "api-key": " $KEY "}, f"{KEY}: has leading/trailing white space", "Re-create the secret"),
    Bad("key-trailing-newline", {**T, "api-key": "$KEY\n"}, f"{KEY}: has leading/trailing white space or a line break", "Re-create the secret"),
    Bad("key-inner-newline", {**T, "api-key": "ZENKEY_abcdefgh\nZENKEY_ijklmnop"}, f"{KEY}: has leading/trailing white space or a line break", "Re-create the secret", secret="ZENKEY_abcdefgh"),
    Bad("key-jwt", {**T, "api-key": JWT}, f"{KEY}: does not look like a ZenML API key", "Pass a service-account API key", secret=JWT),
    Bad("key-password", {**T, "api-key": "correct-horse-battery"}, f"{KEY}: does not look like a ZenML API key", "Pass a service-account API key", secret="correct-horse-battery"),
    Bad("key-oversized", {**T, "api-key": "ZENKEY_" + "A" * 20_000}, f"{KEY}: is 20007 characters long", "Pass a service-account API key"),
    # -- durations ----------------------------------------------------------------
    Bad("timeout-negative", {**T, "timeout": "-5"}, "Input `timeout`: `-5` is not a duration", DURATION),
    Bad("timeout-zero", {**T, "timeout": "0"}, "Input `timeout`: `0` is shorter than 1 seconds", DURATION),
    Bad("timeout-word", {**T, "timeout": "abc"}, "Input `timeout`: `abc` is not a duration", DURATION),
    Bad("timeout-unit", {**T, "timeout": "10x"}, "Input `timeout`: `10x` is not a duration", DURATION),
    Bad("timeout-too-long", {**T, "timeout": "200h"}, "Input `timeout`: `200h` is longer than 7 days", DURATION),
    Bad("timeout-oversized", {**T, "timeout": "9" * 5000}, "Input `timeout`: `999", DURATION),
    Bad("poll-interval-too-short", {**T, "poll-interval": "0.1s"}, "Input `poll-interval`: `0.1s` is shorter than 1 seconds", DURATION),
    # -- booleans -------------------------------------------------------------------
    Bad("bool-wait", {**T, "wait": "ture"}, "Input `wait`: `ture` is not a boolean", BOOLEAN),
    Bad("bool-dry-run", {**T, "dry-run": "Y"}, "Input `dry-run`: `Y` is not a boolean", BOOLEAN),
    Bad("bool-stop-on-cancel", {**T, "stop-on-cancel": "enabled"}, "Input `stop-on-cancel`: `enabled` is not a boolean", BOOLEAN),
    Bad("bool-fail-on-run-failure", {**T, "fail-on-run-failure": "nope"}, "Input `fail-on-run-failure`: `nope` is not a boolean", BOOLEAN),
    Bad("bool-stream-logs", {**T, "stream-logs": "quiet"}, "Input `stream-logs`: `quiet` is not a boolean", BOOLEAN),
    Bad("bool-allow-insecure-http", {**T, "allow-insecure-http": "yes please"}, "Input `allow-insecure-http`: `yes please` is not a boolean", BOOLEAN),
    # -- files ---------------------------------------------------------------------
    Bad("path-dotdot", {**T, "parameters": "../outside.yaml"}, f"{PARAMS}: `../outside.yaml` is outside the workspace", OUTSIDE, files={"../outside.yaml": "model_type: x\n"}),
    Bad("path-absolute", {**T, "parameters": "$TMP/outside.yaml"}, f"{PARAMS}: `", OUTSIDE, files={"../outside.yaml": "model_type: x\n"}),
    Bad("path-etc", {**T, "parameters": "/etc/x.yaml"}, f"{PARAMS}: `/etc/x.yaml` is outside the workspace", OUTSIDE),
    Bad("path-symlink-out", {**T, "parameters": "link.yaml"}, f"{PARAMS}: `link.yaml` is outside the workspace", OUTSIDE, files={"../outside.yaml": "model_type: x\n"}, symlinks={"link.yaml": "$TMP/outside.yaml"}),
    Bad("path-symlinked-dir-out", {**T, "config": "ci/run.yaml"}, "Input `config`: `ci/run.yaml` is outside the workspace", OUTSIDE, files={"../elsewhere/run.yaml": "steps: {}\n"}, symlinks={"ci": "$TMP/elsewhere"}),
    Bad("config-missing", {**T, "config": "ci/run.yaml"}, "Input `config`: file `ci/run.yaml` does not exist", "Check the path"),
    Bad("config-dotdot", {**T, "config": "ci/../../run.yaml"}, "Input `config`: `ci/../../run.yaml` is outside the workspace", OUTSIDE, files={"../run.yaml": "steps: {}\n"}),
    Bad("config-directory", {**T, "config": "x.yaml"}, "Input `config`: `x.yaml` is not a regular file", "Give the path of a YAML file", dirs=("x.yaml",)),
    Bad("config-fifo", {**T, "config": "pipe.yaml"}, "Input `config`: `pipe.yaml` is not a regular file", "Give the path of a YAML file", fifos=("pipe.yaml",)),
    Bad("config-not-utf8", {**T, "config": "latin1.yaml"}, "Input `config`: file `latin1.yaml` cannot be read", "encoding (UTF-8)", files={"latin1.yaml": b"model_type: caf\xe9\n\xff\xfe"}),
    Bad("config-not-a-mapping", {**T, "config": "list.yaml"}, "Input `config`: is YAML of type list", "Write `name: value` pairs", files={"list.yaml": "- a\n- b\n"}),
    Bad("ca-bundle-missing", {**T, "ca-bundle": "certs/ca.pem"}, "Input `ca-bundle`: `certs/ca.pem` is not a file", "Give the path of a PEM bundle"),
    # -- the runner's environment: proxies, CA bundles, output files ----------
    Bad("proxy-bad-port", {**T, "allow-insecure-http": "true"}, "HTTPS_PROXY/HTTP_PROXY/ALL_PROXY", "Fix the proxy URL",
        env={"HTTP_PROXY": "http://proxy.corp:abc", "http_proxy": "http://proxy.corp:abc", "NO_PROXY": "", "no_proxy": ""}),
    Bad("proxy-socks", T, "HTTPS_PROXY/HTTP_PROXY/ALL_PROXY", "http:// or https:// proxy",
        env={"HTTP_PROXY": "socks5://proxy.corp:1080", "http_proxy": "socks5://proxy.corp:1080", "NO_PROXY": "", "no_proxy": ""}),
    Bad("ca-bundle-not-pem", {**T, "ca-bundle": "certs/bad.pem"}, "Input `ca-bundle`", "BEGIN CERTIFICATE",
        files={"certs/bad.pem": "not a certificate\n"}),
    Bad("ca-bundle-binary", {**T, "ca-bundle": "certs/bad.der"}, "Input `ca-bundle`", "BEGIN CERTIFICATE",
        files={"certs/bad.der": bytes(range(256))}),
    Bad("requests-ca-bundle-not-pem", T, "Input `REQUESTS_CA_BUNDLE`", "BEGIN CERTIFICATE",
        files={"certs/bad.pem": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"},
        env={"REQUESTS_CA_BUNDLE": "$WS/certs/bad.pem"}),
    Bad("url-empty-host-label", {**T, "workspace-url": "https://zenml..example.com"}, URL, "doubled dot"),
    Bad("url-long-host-label", {**T, "workspace-url": f"https://{'a' * 70}.example.com"}, URL, "1 to 63 characters"),
    Bad("url-unclosed-ipv6", {**T, "workspace-url": "http://[::1"}, URL, "Give the full URL"),
    Bad("github-output-missing-dir", {**T, "dry-run": "true"}, "GITHUB_OUTPUT", "existing directory",
        env={"GITHUB_OUTPUT": "$TMP/no/such/dir/output"}, reaches_server=True),
    Bad("github-output-is-a-directory", {**T, "dry-run": "true"}, "GITHUB_OUTPUT", "existing directory",
        dirs=("outdir",), env={"GITHUB_OUTPUT": "$WS/outdir"}, reaches_server=True),

    # -- judging: a rule or baseline that cannot work starts nothing ---------
    Bad("gate-not-a-rule", {**T, "gate": "accuracy is good"}, "Input `gate`: line 1", "METRIC OP VALUE"),
    Bad("gate-code", {**T, "gate": "__import__('os').system('id') >= 1"}, "Input `gate`: line 1", "METRIC OP VALUE"),
    Bad("gate-bad-number", {**T, "gate": "f1 >= 0.9.1"}, "Input `gate`: line 1", "METRIC OP VALUE"),
    Bad("gate-without-wait", {**T, "gate": "f1 >= 0.9", "wait": "false"}, "Input `gate`: needs a finished run", "`wait: true`"),
    Bad("compare-to-without-wait", {**T, "compare-to": "main", "wait": "false"}, "Input `compare-to`: needs a finished run", "`wait: true`"),
    Bad("compare-to-bad-stage", {**T, "compare-to": "model:clf@prod"}, "Input `compare-to`", "production"),
    Bad("compare-to-not-a-branch", {**T, "compare-to": "main..dev"}, "Input `compare-to`", "model:NAME@STAGE"),
    # The same in code mode (the pipeline runs from the repository's code).
    Bad("code-mode-gate-malformed", {**CODE, "gate": "accuracy >= 0.9\nf1 => baseline"}, "Input `gate`: line 2 (`f1 => baseline`): `=>` is not an operator", "METRIC OP VALUE"),
    Bad("code-mode-gate-with-create-snapshot", {**CODE, "gate": "f1 >= 0.9", "create-snapshot": "nightly"}, "Input `gate`: needs a finished run", "`create-snapshot` runs nothing"),
    Bad("yaml-duplicate-key", {**T, "parameters": "model_type: a\nmodel_type: b"}, f"{PARAMS}: is not valid YAML (line 2", "one key per line"),
    Bad("yaml-duplicate-nested-key", {**T, "parameters": "steps:\n  train_model: {parameters: {a: 1, a: 2}}"}, f"{PARAMS}: is not valid YAML", "one key per line"),
    Bad("yaml-5000-digit-integer", {**T, "parameters": "model_type: " + "9" * 5000}, f"{PARAMS}: has a value Python cannot read", "Quote very long numbers"),
    Bad("parameter-5000-element-list", {**T, "parameters": "no_such_parameter: [" + ", ".join(["1"] * 5000) + "]"},
        "is not a parameter", FIX_PARAMS, reaches_server=True),
]


# A key of the right shape for the cases that never reach a server.
WELL_FORMED_KEY = "ZENKEY_" + "k" * 40
INPUT_CASES = [case for case in CASES if not case.reaches_server]
SNAPSHOT_CASES = [case for case in CASES if case.reaches_server]


def proxy_env(sink: Recorder) -> dict[str, str]:
    env = {}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = sink.url
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def run_count(zenml: Deployment) -> int:
    return int(zenml.server.admin("GET", "/api/v1/runs", params={"size": "1"})["total"])


def prepare(case: Bad, workspace: Path) -> None:
    tmp = workspace.parent
    for relative, content in case.files.items():
        path = (workspace / relative).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    for link, target in case.symlinks.items():
        (workspace / link).symlink_to(target.replace("$TMP", str(tmp)))
    for directory in case.dirs:
        (workspace / directory).mkdir(parents=True)
    for fifo in case.fifos:
        os.mkfifo(workspace / fifo)


@pytest.fixture(scope="module")
def sink() -> Iterator[Recorder]:
    with Recorder() as recorder:
        yield recorder


def run_case(case: Bad, server_url: str, api_key: str, root: Path, sink: Recorder) -> tuple[ActionResult, int]:
    """The case's action run against `server_url`, and how many requests
    went to the sink (towards a non-loopback host)."""
    workspace = root / case.id / "workspace"
    workspace.mkdir(parents=True)
    prepare(case, workspace)
    port = server_url.rsplit(":", 1)[1]
    inputs = {
        name: value.replace("$PORT", port).replace("$TMP", str(root / case.id)).replace("$KEY", api_key)
        for name, value in case.inputs.items()
    }
    env = {name: value.replace("$TMP", str(root / case.id)).replace("$WS", str(workspace)) for name, value in case.env.items()}
    runner = ActionRunner(workspace, base_inputs={"workspace-url": server_url, "api-key": api_key, "poll-interval": "1s"})
    before = len(sink.received)
    result = runner.run_in_process(inputs, extra_env={**proxy_env(sink), **env})
    return result, len(sink.received) - before


def assert_fails_cleanly(case: Bad, result: ActionResult) -> None:
    everything = "\n".join([result.stdout, result.stderr, result.output_text, result.summary])
    assert result.returncode == 1, everything
    assert len(result.errors) == 1, result.stdout
    error = result.errors[0]
    assert case.names in error, error
    assert case.fix in error, error
    assert "title=Internal error" not in error
    assert "Traceback" not in result.stdout + result.stderr
    # An oversized value is not echoed back whole.
    assert len(error) < 2000
    # Nothing that could be read as a result.
    assert result.output_text == ""
    assert "run-id" not in result.outputs
    assert "| Run |" not in result.summary
    if case.secret:
        printed = "\n".join(line for line in everything.splitlines() if not line.startswith("::add-mask::"))
        assert case.secret not in printed


@pytest.fixture(scope="module")
def stand_in() -> Iterator[Recorder]:
    """Where `workspace-url` points when no server is needed."""
    with Recorder() as recorder:
        yield recorder


@pytest.mark.offline
@pytest.mark.parametrize("case", INPUT_CASES, ids=[case.id for case in INPUT_CASES])
def test_an_input_mistake_fails_before_any_request(case: Bad, tmp_path: Path, stand_in: Recorder, sink: Recorder) -> None:
    before = len(stand_in.received)
    result, escaped = run_case(case, stand_in.url, WELL_FORMED_KEY, tmp_path, sink)
    assert_fails_cleanly(case, result)
    assert len(stand_in.received) == before
    assert escaped == 0


@dataclass
class Outcome:
    result: ActionResult
    # What reached the real server (through a recording proxy), by path.
    requests: list[str]
    escaped: int


@pytest.fixture(scope="module")
def outcomes(zenml: Deployment, tmp_path_factory: pytest.TempPathFactory, sink: Recorder) -> dict[str, Outcome]:
    """The cases the snapshot reveals, one after the other, before the tests
    read their outcomes; each through its own recording proxy."""
    root = tmp_path_factory.mktemp("hostile")
    before = run_count(zenml)
    results = {}
    for case in SNAPSHOT_CASES:
        with FaultProxy(zenml.url) as proxy:
            result, escaped = run_case(case, proxy.url, zenml.api_key, root, sink)
            results[case.id] = Outcome(result, [f"{r.method} {r.path}" for r in proxy.records], escaped)
    assert run_count(zenml) == before, "a bad input started a run"
    return results


@pytest.mark.parametrize("case", SNAPSHOT_CASES, ids=[case.id for case in SNAPSHOT_CASES])
def test_a_mistake_the_snapshot_reveals_fails_before_the_trigger(case: Bad, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.id]
    assert_fails_cleanly(case, outcome.result)
    assert not any(r.startswith("POST") and r.endswith("/runs") for r in outcome.requests), outcome.requests
    assert outcome.escaped == 0


@pytest.mark.offline
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("model_type: custom.yaml", {"model_type": "custom.yaml"}),
        ("config_file: ci/params.yaml", {"config_file": "ci/params.yaml"}),
        ("{file: x.yaml}", {"file": "x.yaml"}),
    ],
)
def test_inline_yaml_that_mentions_a_yaml_file_is_not_taken_for_a_path(
    raw: str, expected: dict[str, str], workspace: Path
) -> None:
    assert load_parameters(raw, workspace) == expected
