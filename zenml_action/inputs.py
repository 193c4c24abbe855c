"""Read the action's inputs once, validate them, and freeze them.

GitHub passes input `foo-bar` as `INPUT_FOO-BAR`; some runners and users
write `INPUT_FOO_BAR`: both are accepted. Each input is also a command-line
flag (`--foo-bar`) so the entrypoint works as a local CLI; a flag wins over
the environment.
"""

from __future__ import annotations

import re
import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from zenml_action.connection_inputs import parse_api_key, parse_ca_bundle, parse_proxy, parse_workspace_url
from zenml_action.errors import InputError
from zenml_action.github import quoted
from zenml_action.promotion import parse_promote_to, parse_run_for_commit
from zenml_action.provenance import github_context
from zenml_action.proxies import proxy_for

if TYPE_CHECKING:  # imported when used: most runs judge nothing, and start-up time counts
    from zenml_action.gate import Rule
    from zenml_action.judge import CompareTo
    from zenml_action.questions import Answering

# name -> default, as in action.yml (a test keeps the two in step).
DEFAULTS: dict[str, str] = {
    "workspace-url": "", "api-key": "", "template": "", "pipeline": "", "project": "", "parameters": "",
    "config": "", "run-name": "", "wait": "true", "timeout": "1h", "poll-interval": "5s",
    "stream-logs": "true", "stop-on-cancel": "true", "fail-on-run-failure": "true", "dry-run": "false",
    "ca-bundle": "", "allow-insecure-http": "false", "stack": "", "requirements": "", "create-snapshot": "",
    "compare-to": "", "gate": "", "on-missing-baseline": "pass", "run-id": "", "resolve": "", "answer": "",
    "wait-condition": "", "promote-to": "", "run-for-commit": "",
}

# What a new run is made from: none of it applies to a run that exists.
NOT_WITH_RUN_ID = ("template", "pipeline", "parameters", "config", "run-name", "create-snapshot")
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
UUID_LIKE = re.compile(r"[0-9a-fA-F-]{20,}")
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


@dataclass(frozen=True)
class Inputs:
    workspace_url: str
    api_key: str
    template: str
    pipeline: str
    project: str
    parameters: str
    config: str
    run_name: str
    wait: bool
    timeout: float
    poll_interval: float
    stop_on_cancel: bool
    fail_on_run_failure: bool
    dry_run: bool
    ca_bundle: Path | None
    workspace: Path
    debug: bool
    github_run_id: str
    github_run_attempt: str
    github_action: str
    read_timeout: float  # seconds to wait for an answer; tests shorten it to inject slow replies
    stack: str
    requirements: str
    create_snapshot: str
    # The proxy for `workspace-url` ("" for none), from the environment as curl and requests read it.
    proxy: str
    # `ca-bundle`, else the one a runner may name in REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE.
    cafile: str | None
    compare_to_text: str
    compare_to: CompareTo | None
    gate: tuple[Rule, ...]
    on_missing_baseline: str
    run_id: str  # attach to this run instead of starting one
    answering: Answering | None  # answer the run's question (`resolve`)
    action_ref: str  # `OWNER/REPO@REF` of this action, for the step a summary suggests
    stream_logs: bool  # the steps' log lines in the GitHub log while waiting (transitions show either way)
    github: dict[str, str]  # where the run came from, recorded on it as run metadata
    promote_to: str  # the stage for the run's model version (promote.py)
    run_for_commit: str  # attach to the newest completed run of this commit

    @property
    def attached(self) -> bool:
        """A run that exists is followed: the action starts none."""
        return bool(self.run_id or self.run_for_commit)

    @property
    def code_mode(self) -> bool:
        """`pipeline: file.py:attr` or `package.module:attr` runs code."""
        return ":" in self.pipeline


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def parse_bool(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise InputError(name, f"{quoted(raw)} is not a boolean.", "Use `true` or `false`.")


def parse_duration(name: str, raw: str) -> float:
    """`90`, `90s`, `45m`, `2h`, `1h30m` -> seconds (at least 1)."""
    text = raw.strip().lower()
    fix = "Use a positive duration such as `90s`, `45m`, `2h` or a number of seconds."
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    elif text and DURATION_PART.sub("", text) == "":
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in DURATION_PART.findall(text))
    else:
        raise InputError(name, f"{quoted(raw)} is not a duration.", fix)
    if seconds < 1:
        raise InputError(name, f"{quoted(raw)} is shorter than 1 seconds.", fix)
    if seconds > MAX_TIMEOUT_SECONDS:
        raise InputError(name, f"{quoted(raw)} is longer than 7 days.", fix)
    return seconds


def parse_name(name: str, raw: str) -> str:
    value = raw.strip()
    if "\n" in value or "\r" in value or not value.isprintable():
        # Also vertical tabs, U+2028 and the like, which split log lines.
        raise InputError(name, "contains a line break or another control character.", "Give a single-line name.")
    if len(value) > 255:
        raise InputError(name, "is longer than 255 characters.", "Give a shorter name.")
    return value


def parse_run_name(raw: str) -> str:
    """A run name, whose `{placeholders}` ZenML fills in (`{date}`, `{time}`
    and the configuration's `substitutions`): they must be plain names."""
    value = parse_name("run-name", raw)
    fix = "Use placeholders such as `{date}` and `{time}`, and `{{` / `}}` for literal braces."
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(value) if field is not None]
    except ValueError as exc:
        raise InputError("run-name", f"has unbalanced braces ({exc}).", fix) from exc
    for placeholder in fields:
        if not placeholder.isidentifier():
            raise InputError("run-name", f"has the placeholder `{{{placeholder}}}`, which is not a plain name.", fix)
    return value


def parse_template(raw: str) -> str:
    value = parse_name("template", raw)
    if UUID_LIKE.fullmatch(value) and "-" in value and parse_uuid(value) is None:
        fix = "Copy the full snapshot ID (36 characters) or use its name."
        raise InputError("template", f"`{value}` looks like a UUID but is not a valid one.", fix)
    return value


def parse_run_id(raw: Mapping[str, str]) -> str:
    """`run-id`: a run that exists, to wait for and judge as if the action
    had started it (by a schedule, ZenML's own triggers, an earlier job)."""
    text = raw["run-id"].strip()
    if not text:
        return ""
    parsed = parse_uuid(text)
    if parsed is None:
        raise InputError("run-id", f"{quoted(text)} is not a run ID (a UUID).", "Copy the run's ID from the dashboard or an earlier step's `run-id` output.")
    for name in NOT_WITH_RUN_ID:
        if raw[name].strip():
            problem = f"cannot be combined with `{name}`: it follows a run that exists, made with its own settings."
            raise InputError("run-id", problem, f"Leave `{name}` empty, or `run-id` to start a new run.")
    return str(parsed)


def parse_on_missing_baseline(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("pass", "fail"):
        fix = "Use `pass` (rules on the baseline are skipped while none exists yet) or `fail`."
        raise InputError("on-missing-baseline", f"{quoted(raw)} is neither `pass` nor `fail`.", fix)
    return value


def raw_inputs(environ: Mapping[str, str], argv: Sequence[str]) -> tuple[dict[str, str], bool]:
    """Collect raw strings: flags over `INPUT_*` over defaults."""
    values = {}
    for name, default in DEFAULTS.items():
        keys = (f"INPUT_{name.upper()}", f"INPUT_{name.upper().replace('-', '_')}")
        values[name] = next((environ[key] for key in keys if environ.get(key, "") != ""), default)
    if not argv:  # as GitHub runs it: no flags, and no argparse to import
        return values, False
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise InputError("command line", f"{message}.", "Run `python entrypoint.py --help` for the flags.")

    description = "Trigger a ZenML pipeline run and report it (inputs as in action.yml)."
    parser = Parser(prog="entrypoint.py", description=description)
    for name in DEFAULTS:
        parser.add_argument(f"--{name}", dest=name)
    parser.add_argument("--debug", action="store_true", help="print request details (never secrets)")
    args = vars(parser.parse_args(list(argv)))
    debug = bool(args.pop("debug"))
    values.update({k: v for k, v in args.items() if v is not None})
    return values, debug


def read_inputs(environ: Mapping[str, str], argv: Sequence[str]) -> Inputs:
    raw, debug = raw_inputs(environ, argv)
    workspace = Path(environ.get("GITHUB_WORKSPACE") or Path.cwd())
    allow_http = parse_bool("allow-insecure-http", raw["allow-insecure-http"])
    run_id = parse_run_id(raw)
    run_for_commit = parse_run_for_commit(raw, ("run-id", *NOT_WITH_RUN_ID))
    template = parse_template(raw["template"])
    pipeline = parse_name("pipeline", raw["pipeline"])
    if not template and not pipeline and not run_id and not run_for_commit:
        raise InputError(
            "template",
            "is not set, and neither is `pipeline`.",
            "Set `template` to a snapshot or run template name or ID, "
            "or `pipeline` to run its newest runnable snapshot (or `run-id` or `run-for-commit` to follow a run that exists).",
        )
    # Code mode (`pipeline: file.py:name`) may run on a local store: then no
    # server, and no key, is needed.
    code_mode = ":" in pipeline
    raw_url = raw["workspace-url"] or environ.get("ZENML_STORE_URL", "")
    raw_key = raw["api-key"] or environ.get("ZENML_STORE_API_KEY", "")
    workspace_url = parse_workspace_url(raw_url, allow_http) if raw_url.strip() or not code_mode else ""
    if code_mode and template:
        fix = "Use `template` to run a snapshot on the server, or `pipeline: file.py:name` to run code."
        raise InputError("template", "cannot be combined with a code `pipeline` (`file.py:name`).", fix)
    create_snapshot = parse_name("create-snapshot", raw["create-snapshot"])
    if create_snapshot and not (code_mode and workspace_url):
        problem = "needs a code `pipeline` (`file.py:name`) and a `workspace-url` to store the snapshot on."
        fix = "Set both, and a remote `stack` so that the snapshot can be run by the server."
        raise InputError("create-snapshot", problem, fix)
    ca_path = raw["ca-bundle"].strip()  # relative to the workspace, unless absolute
    ca_bundle = parse_ca_bundle("ca-bundle", raw["ca-bundle"], workspace / ca_path) if ca_path else None
    # As requests reads them: REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE; `ca-bundle` wins over both.
    ca_name = next((n for n in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") if environ.get(n, "").strip()), "")
    raw_ca = environ.get(ca_name, "").strip()
    cafile = str(ca_bundle) if ca_bundle else None
    if workspace_url and ca_bundle is None and raw_ca:
        cafile = str(parse_ca_bundle(ca_name, raw_ca, Path(raw_ca)))
    compare_to: CompareTo | None = None
    if raw["compare-to"].strip():
        from zenml_action.judge import parse_compare_to

        compare_to = parse_compare_to(raw["compare-to"])
    rules: tuple[Rule, ...] = ()
    if raw["gate"].strip():
        from zenml_action.gate import parse

        rules = parse(raw["gate"])
    answering: Answering | None = None
    if any(raw[name].strip() for name in ("resolve", "answer", "wait-condition")):
        from zenml_action.questions import parse_answering

        answering = parse_answering(raw, run_id)
    wait = parse_bool("wait", raw["wait"])
    for name, given in (("gate", bool(rules)), ("compare-to", compare_to is not None)):
        if given and (not wait or create_snapshot):
            why = "`wait` is false." if not wait else "`create-snapshot` runs nothing."
            fix = f"Set `wait: true`, or leave `{name}` empty."
            raise InputError(name, f"needs a finished run to judge, and {why}", fix)
    repository, ref = (environ.get(f"GITHUB_ACTION_{part}", "").strip() for part in ("REPOSITORY", "REF"))
    return Inputs(
        workspace_url=workspace_url,
        api_key=parse_api_key(raw_key) if workspace_url or not code_mode else "",
        template=template,
        pipeline=pipeline,
        project=parse_name("project", raw["project"]),
        parameters=raw["parameters"],
        config=raw["config"].strip(),
        run_name=parse_run_name(raw["run-name"]),
        wait=wait,
        timeout=parse_duration("timeout", raw["timeout"]),
        poll_interval=parse_duration("poll-interval", raw["poll-interval"]),
        stream_logs=parse_bool("stream-logs", raw["stream-logs"]),
        stop_on_cancel=parse_bool("stop-on-cancel", raw["stop-on-cancel"]),
        fail_on_run_failure=parse_bool("fail-on-run-failure", raw["fail-on-run-failure"]),
        dry_run=parse_bool("dry-run", raw["dry-run"]),
        ca_bundle=ca_bundle,
        workspace=workspace,
        debug=debug or environ.get("RUNNER_DEBUG") == "1",
        github_run_id=environ.get("GITHUB_RUN_ID", ""),
        github_run_attempt=environ.get("GITHUB_RUN_ATTEMPT", ""),
        github_action=environ.get("GITHUB_ACTION", ""),
        read_timeout=parse_duration("ZENML_ACTION_READ_TIMEOUT", environ.get("ZENML_ACTION_READ_TIMEOUT") or "60"),
        stack=parse_name("stack", raw["stack"]),
        requirements=raw["requirements"].strip(),
        create_snapshot=create_snapshot,
        proxy=parse_proxy(proxy_for(workspace_url, environ)) if workspace_url else "",
        cafile=cafile,
        compare_to_text=raw["compare-to"].strip(),
        compare_to=compare_to,
        gate=rules,
        on_missing_baseline=parse_on_missing_baseline(raw["on-missing-baseline"]),
        run_id=run_id,
        answering=answering,
        action_ref=f"{repository}@{ref}" if repository and ref else "OWNER/REPO@<release-sha>",
        github=github_context(environ),
        promote_to=parse_promote_to(raw["promote-to"], wait=wait, create_snapshot=create_snapshot, has_server=bool(workspace_url)),
        run_for_commit=run_for_commit,
    )
