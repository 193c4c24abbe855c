"""The benchmark's measurements other than the timed trigger rounds:
request counts, polling rate, time to notice a finished run, import time,
what the server-side path imports, and installed size."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import harness
from contenders import FLAT_PARAMETERS, ROOT, SNAPSHOT, Contender, Server
from counting_proxy import CountingProxy, Logged
from support.orchestrator import STEPS, complete_run, find_run
from support.server import ZenMLServer

PROFILED = ("action", "action-uuid", "floor")
STATUS_ROUTE = "GET /api/v1/runs/{id}/status"
TRIGGER_ROUTE = "POST /api/v1/pipeline_snapshots/{id}/runs"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- requests per trigger -----------------------------------------------------


@dataclass
class RequestCount:
    contender: str
    counts: list[int] = field(default_factory=list)  # per repetition
    walls: list[float] = field(default_factory=list)  # wall of each run through the proxy
    requests: list[list[Logged]] = field(default_factory=list)  # per repetition
    imports_ms: list[float] = field(default_factory=list)  # `-X importtime` total, Python contenders we profile
    maxrss_kib: list[int] = field(default_factory=list)  # true peak RSS (isolated launcher)

    @property
    def per_trigger(self) -> int:
        return int(statistics.median(self.counts))

    def routes(self) -> list[str]:
        return [entry.route for entry in self.requests[0]] if self.requests else []

    def median_seconds(self) -> list[float]:
        """Median server time of the i-th request over the repetitions that
        sent the same sequence as the first."""
        same = [r for r in self.requests if [e.route for e in r] == self.routes()]
        return [statistics.median(r[i].seconds for r in same) for i in range(len(self.routes()))]


def launcher_floor_kib(work: Path, env: dict[str, str]) -> int:
    """The smallest peak RSS the isolated launcher can show (`/bin/true`)."""
    true = shutil.which("true") or "/bin/true"
    return harness.measure([true], env, work, isolated=True).maxrss_kib


def count_requests(
    contenders: tuple[Contender, ...],
    server: Server,
    proxy: CountingProxy,
    work: Path,
    env: dict[str, str],
    reps: int,
) -> dict[str, RequestCount]:
    through_proxy = Server(proxy.url, server.api_key, server.snapshot_id)
    results = {c.key: RequestCount(c.key) for c in contenders}
    for rep in range(reps):
        for contender in contenders:
            invocation = contender.prepare(through_proxy, work, env)
            argv = invocation.argv
            profiled = contender.key in PROFILED and argv[0] == sys.executable
            if profiled:
                # Every import of the whole process, summed: for the breakdown.
                argv = [argv[0], "-X", "importtime", *argv[1:]]
            mark = proxy.mark()
            sample = harness.measure(argv, invocation.env, invocation.cwd, isolated=True)
            if not contender.run_id(sample.output):
                raise RuntimeError(f"{contender.label} failed through the proxy:\n{sample.output[-3000:]}")
            sent = proxy.since(mark)
            results[contender.key].counts.append(len(sent))
            results[contender.key].walls.append(sample.wall)
            results[contender.key].maxrss_kib.append(sample.maxrss_kib)
            results[contender.key].requests.append(sent)
            if profiled:
                results[contender.key].imports_ms.append(sum(parse_importtime(sample.stderr, whole=True).values()))
        log(f"counting pass {rep + 1}/{reps} done")
    return results


# -- polling while waiting ----------------------------------------------------


@dataclass(frozen=True)
class PollingMeasured:
    timeout: float
    poll_interval: float
    requests_first_minute: int  # all requests in the first 60 s after the trigger answered
    polls_first_minute: int  # status polls among them
    poll_offsets: list[float]  # seconds after the trigger answered
    before_trigger: list[str]  # routes sent up to the trigger
    after_timeout: list[str]  # routes sent after the last poll (e.g. the stop request)
    poll_seconds: float  # median server time of one status poll
    exit_code: int
    wall: float


def measure_polling(
    server: Server, proxy: CountingProxy, work: Path, env: dict[str, str], timeout: float, poll: float
) -> PollingMeasured:
    """Run the action with `wait: true` on a run nobody finishes, through the
    proxy, until its own timeout; read the poll times off the proxy's log."""
    run_env = dict(env)
    run_env.update({
        "INPUT_WORKSPACE-URL": proxy.url,
        "INPUT_API-KEY": server.api_key,
        "INPUT_TEMPLATE": SNAPSHOT,
        "INPUT_PARAMETERS": FLAT_PARAMETERS,
        "INPUT_WAIT": "true",
        "INPUT_TIMEOUT": f"{timeout:g}s",
        "INPUT_POLL-INTERVAL": f"{poll:g}s",
        "INPUT_RUN-NAME": f"bench-polling-{uuid.uuid4().hex[:8]}",
    })
    mark = proxy.mark()
    sample = harness.measure([sys.executable, str(ROOT / "entrypoint.py")], run_env, work, timeout + 120)
    sent = proxy.since(mark)
    trigger = next(i for i, e in enumerate(sent) if e.route == TRIGGER_ROUTE)
    answered = sent[trigger].started + sent[trigger].seconds
    after = sent[trigger + 1 :]
    first_minute = [e for e in after if e.started - answered < 60.0]
    polls = [e for e in after if e.route == STATUS_ROUTE]
    last_poll = max((i for i, e in enumerate(after) if e.route == STATUS_ROUTE), default=-1)
    return PollingMeasured(
        timeout=timeout,
        poll_interval=poll,
        requests_first_minute=len(first_minute),
        polls_first_minute=sum(1 for e in first_minute if e.route == STATUS_ROUTE),
        poll_offsets=[round(e.started - answered, 1) for e in polls],
        before_trigger=[e.route for e in sent[: trigger + 1]],
        after_timeout=[f"{e.route} -> {e.status}" for e in after[last_poll + 1 :]],
        poll_seconds=statistics.median(e.seconds for e in polls) if polls else 0.0,
        exit_code=sample.returncode,
        wall=sample.wall,
    )


@dataclass(frozen=True)
class PollingComputed:
    polls_first_minute: int
    polls_sixth_minute: int  # minute 5:00-6:00 of waiting
    steady_interval: float
    polls_first_hour: int


def compute_polling(next_interval: Callable[[float, float], float], first: float, latency: float) -> PollingComputed:
    """Replay `wait_for_run`'s schedule: sleep `next_interval(first, waited)`,
    then poll (taking `latency`), without waiting for real."""
    times: list[float] = []
    waited = 0.0
    while waited < 3600:
        waited += next_interval(first, waited)
        times.append(waited)
        waited += latency
    return PollingComputed(
        polls_first_minute=sum(1 for t in times if t < 60),
        polls_sixth_minute=sum(1 for t in times if 300 <= t < 360),
        steady_interval=next_interval(first, 300.0),
        polls_first_hour=len(times),
    )


# -- time to notice a finished run ---------------------------------------------


@dataclass(frozen=True)
class Notice:
    run_after: float  # seconds after the run appeared that it was finished
    waited: float  # from the run's appearance to the status change
    latency: float  # from the status change to the action's exit
    target: float
    exit_code: int
    conclusion: str

    @property
    def met(self) -> bool:
        return self.exit_code == 0 and self.conclusion == "success" and self.latency <= self.target


def measure_notice(admin: ZenMLServer, server: Server, work: Path, env: dict[str, str], run_after: float) -> Notice:
    """Start the action with `wait: true` and default polling, finish its run
    over REST `run_after` seconds after the run appears, and time from the
    status change to the action's exit.

    The status changes while the request completing the last step is being
    answered; the clock starts when that request is *sent* (so the figure
    errs against the action by up to that request's duration)."""
    run_name = f"bench-notice-{uuid.uuid4().hex[:8]}"
    run_env = dict(env)
    run_env.update({
        "INPUT_WORKSPACE-URL": server.url,
        "INPUT_API-KEY": server.api_key,
        "INPUT_TEMPLATE": SNAPSHOT,
        "INPUT_PARAMETERS": FLAT_PARAMETERS,
        "INPUT_WAIT": "true",
        "INPUT_POLL-INTERVAL": "5s",
        "INPUT_TIMEOUT": "10m",
        "INPUT_RUN-NAME": run_name,
    })
    running = harness.start([sys.executable, str(ROOT / "entrypoint.py")], run_env, work, timeout=900)
    run = find_run(admin, run_name, timeout=120)
    appeared = time.perf_counter()
    complete_run(admin, run, steps=STEPS[:-1])
    time.sleep(max(0.0, appeared + run_after - time.perf_counter()))
    changed = time.perf_counter()
    complete_run(admin, run, steps=STEPS[-1:])
    sample = running.finish()
    exited = running.started + sample.wall
    waited = changed - appeared
    conclusion = next(
        (line.split("=", 1)[1] for line in sample.stdout.splitlines() if line.startswith("conclusion=")), ""
    )
    return Notice(
        run_after=run_after,
        waited=waited,
        latency=exited - changed,
        target=max(5.0, 0.1 * waited),
        exit_code=sample.returncode,
        conclusion=conclusion,
    )


# -- import time and what the server-side path loads ------------------------------


IMPORT_STATEMENT = "import zenml_action.server_side, zenml_action.main"
FLOOR_IMPORT_STATEMENT = "import json, os, sys, urllib.parse, urllib.request"


@dataclass(frozen=True)
class ImportTime:
    label: str
    total_ms: list[float]  # summed self times, per repetition
    by_package_ms: dict[str, float]  # median self time per top-level package

    @property
    def median_ms(self) -> float:
        return statistics.median(self.total_ms)


# Packages whose whole import subtree is charged to them: what the
# server-side path pulls in (requests/urllib3 only if something brought them
# back: the action's HTTP is the standard library's).
DEPENDENCIES = ("requests", "urllib3", "jsonschema", "yaml")


def import_group(chain: list[str]) -> str:
    """Who is to blame for a module's import: `chain` runs from the
    top-level import statement down to the module."""
    if not chain[0].startswith("zenml_action"):
        return "interpreter start-up (site, encodings, .pth)"
    for name in chain:
        top = name.split(".")[0]
        if top in DEPENDENCIES:
            return "requests (+urllib3, charset_normalizer, idna, http.client, email...)" if top in (
                "requests", "urllib3"
            ) else (
                "jsonschema (+referencing, attrs, rpds...)" if top == "jsonschema" else "yaml (PyYAML)"
            )
    if chain[-1].startswith("zenml_action"):
        return "zenml_action's own modules"
    return "standard library imported by zenml_action itself"


def parse_importtime(stderr: str, whole: bool = False) -> dict[str, float]:
    """Self time (ms) per group (see `import_group`) from `-X importtime`
    output. The output lists children before their parent, indented two
    spaces per level; read backwards it is parent first."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _cumulative, name = line.removeprefix("import time:").split("|", 2)
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((int(own), depth, name.strip()))
    groups: dict[str, float] = {}
    chain: list[str] = []
    for self_us, depth, module in reversed(rows):
        del chain[depth:]
        chain.append(module)
        group = "all" if whole else import_group(chain)
        groups[group] = groups.get(group, 0.0) + self_us / 1000
    return groups


def measure_import_time(
    label: str, env: dict[str, str], work: Path, reps: int, statement: str = IMPORT_STATEMENT
) -> ImportTime:
    runs: list[dict[str, float]] = []
    env = dict(env, PYTHONPATH=str(ROOT))
    for _ in range(reps):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", statement],
            env=env, cwd=work, capture_output=True, text=True, check=True, timeout=120,
        )
        runs.append(parse_importtime(result.stderr))
    packages = sorted({p for r in runs for p in r})
    by_package = {p: statistics.median(r.get(p, 0.0) for r in runs) for p in packages}
    return ImportTime(label, [sum(r.values()) for r in runs], by_package)


PROOF_SCRIPT = """\
import contextlib, io, json, sys
from zenml_action.main import main

inputs = json.loads(sys.argv[1])
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main([], inputs)
run_id = next((l[7:] for l in out.getvalue().splitlines() if l.startswith("run-id=")), "")
third_party = sorted({
    m.split(".")[0] for m in sys.modules
    if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith("zenml_action")
} - {"__main__", "_distutils_hack"})
print(json.dumps({
    "exit_code": code,
    "run_id": run_id,
    "zenml_modules": sorted(m for m in sys.modules if m == "zenml" or m.startswith("zenml.")),
    "third_party": third_party,
    "modules": len(sys.modules),
}))
"""


@dataclass(frozen=True)
class NoZenml:
    exit_code: int
    run_id: str
    zenml_modules: list[str]
    third_party: list[str]
    modules: int

    @property
    def proven(self) -> bool:
        return self.exit_code == 0 and bool(self.run_id) and not self.zenml_modules


def prove_no_zenml(server: Server, work: Path, env: dict[str, str]) -> NoZenml:
    """Run the action's whole server-side path in one interpreter (a real
    trigger, `wait: false`), then list what it imported."""
    inputs = {
        "INPUT_WORKSPACE-URL": server.url,
        "INPUT_API-KEY": server.api_key,
        "INPUT_TEMPLATE": SNAPSHOT,
        "INPUT_PARAMETERS": FLAT_PARAMETERS,
        "INPUT_WAIT": "false",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROOF_SCRIPT, json.dumps(inputs)],
        env=dict(env, PYTHONPATH=str(ROOT)), cwd=work, capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the in-process action run failed:\n{result.stdout}\n{result.stderr}")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return NoZenml(**data)


# -- installed size ---------------------------------------------------------------


def uv_command() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


@dataclass(frozen=True)
class InstallSize:
    without_bytecode: int  # bytes over an empty venv
    with_bytecode: int
    distributions: int
    error: str = ""


def measure_install_size(requirements: Path) -> InstallSize:
    """`uv pip install -r requirements.txt` into a fresh venv; its
    site-packages minus an empty venv's, before and after compiling bytecode."""
    uv = uv_command()
    with tempfile.TemporaryDirectory(prefix="bench-size-") as tmp:
        empty, full = Path(tmp) / "empty", Path(tmp) / "full"
        try:
            for venv in (empty, full):
                subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True,
                               capture_output=True, timeout=300)
            subprocess.run(
                [*uv, "pip", "install", "--quiet", "--python", str(full / "bin" / "python"), "-r", str(requirements)],
                check=True, capture_output=True, timeout=600,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            stderr = getattr(exc, "stderr", b"") or b""
            return InstallSize(0, 0, 0, f"{type(exc).__name__}: {stderr.decode(errors='replace')[-500:]}")
        base = tree_bytes(site_packages(empty))
        raw = tree_bytes(site_packages(full)) - base
        dists = len(list(site_packages(full).glob("*.dist-info")))
        subprocess.run(
            [str(full / "bin" / "python"), "-m", "compileall", "-q", str(site_packages(full))],
            check=False, capture_output=True, timeout=600,
            env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
        )
        compiled = tree_bytes(site_packages(full)) - base
        return InstallSize(raw, compiled, dists)


# -- diagnostics -----------------------------------------------------------------


@dataclass(frozen=True)
class TagCost:
    without_tag: list[float]  # seconds per trigger request, interleaved with...
    with_tag: list[float]  # ...the same request carrying one unique tag, as the action sends


def measure_tag_cost(server: Server, reps: int) -> TagCost:
    """The trigger request alone, with and without a unique run tag (the
    action adds an idempotency tag to every trigger; the floor sends none),
    interleaved, over one token and the standard library."""
    import urllib.parse
    import urllib.request

    def call(path: str, data: bytes, headers: dict[str, str]) -> tuple[float, object]:
        request = urllib.request.Request(server.url + path, data=data, headers=headers)  # noqa: S310
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            body = json.loads(response.read())
        return time.perf_counter() - started, body

    form = urllib.parse.urlencode({"grant_type": "zenml-api-key", "password": server.api_key}).encode()
    _, login = call("/api/v1/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert isinstance(login, dict)
    headers = {"Authorization": f"Bearer {login['access_token']}", "Content-Type": "application/json"}
    path = f"/api/v1/pipeline_snapshots/{server.snapshot_id}/runs"
    steps = {"train_model": {"parameters": {"model_type": "gradient_boosting"}}}
    plain: list[float] = []
    tagged: list[float] = []
    for rep in range(reps):
        for tag in (False, True) if rep % 2 == 0 else (True, False):
            config: dict[str, object] = {"steps": steps}
            if tag:
                config["tags"] = [f"bench-tag-{uuid.uuid4().hex}"]
            seconds = call(path, json.dumps({"run_configuration": config}).encode(), headers)[0]
            (tagged if tag else plain).append(seconds)
    return TagCost(plain, tagged)
