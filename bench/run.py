"""Benchmark: is the action the fastest way to trigger a ZenML run?

    python bench/run.py                            # 7 timed rounds, report on stdout
    python bench/run.py --quick                    # 2 timed rounds
    python bench/run.py --output bench/RESULTS.md  # also write the report there
    python bench/run.py --check                    # exit 2 when a target is missed

Starts a real ZenML server on loopback with the test suite's
`tests/support/server.py`, then runs every contender (the action by name and by
UUID, the floor client, the curl script, the ZenML SDK and CLI) once per round,
each as a fresh process triggering snapshot `trainer-prod` with
`model_type: gradient_boosting` for step `train_model`. Method: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.fault_proxy import FaultProxy  # noqa: E402
from support.github_env import github_env  # noqa: E402
from support.orchestrator import step_parameters  # noqa: E402
from support.server import ZenMLServer  # noqa: E402

SNAPSHOT, PIPELINE = "trainer-prod", "trainer"
STEP_CONFIG = {"steps": {"train_model": {"parameters": {"model_type": "gradient_boosting"}}}}
SDK_SCRIPT = (
    "from zenml.client import Client\n"
    f"print(Client().trigger_pipeline(snapshot_name_or_id={SNAPSHOT!r}, pipeline_name_or_id={PIPELINE!r},"
    f" run_configuration={STEP_CONFIG!r}).id)\n"
)
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# key: (label, where its run ID is printed). The floor comes first: every
# ratio is taken against it or against the action, round by round.
CONTENDERS = {
    "floor": ("floor (stdlib client)", rf"({UUID})\s*$"),
    "action": ("**action**, template by name", rf"^run-id=({UUID})$"),
    "action-uuid": ("**action**, template by UUID", rf"^run-id=({UUID})$"),
    # Not a target: the action by name outside a workflow (no GitHub context
    # to record), to show what that request costs.
    "action-bare": ("action by name, no GitHub context (not a target)", rf"^run-id=({UUID})$"),
    "curl": ("curl + jq", rf"({UUID})\s*$"),
    "sdk": ("ZenML SDK (`Client().trigger_pipeline`)", rf"({UUID})\s*$"),
    "cli": ("ZenML CLI (`zenml pipeline snapshot run`)", rf"Started snapshot run `({UUID})`"),
}
FLOOR_RATIO = 1.15  # the action's wall time at most this many times the floor's
FASTER_THAN = {"curl": 2.0, "sdk": 3.0, "cli": 3.0}

# Started by a tiny `python -S` that forks and execs the contender, so that
# wall time runs from spawn to exit, CPU covers the contender's children
# (curl, jq) and peak RSS is not the benchmark's own: Linux hands the peak
# RSS of the process that calls exec on to the program it starts.
LAUNCHER = """\
import os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(report, "w") as handle:
    handle.write(f"{wall} {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}")
os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds, spawn to exit
    cpu: float  # user + system seconds, with the children waited for
    rss_mib: float  # peak RSS of the largest process of the tree
    run_id: str


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# What a workflow run gives every step: the action records it on the run
# (one more request after the trigger), so the benchmark pays for it too.
GITHUB_CONTEXT = {**github_env("acme/models", "refs/heads/main"), "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1"}


def invocation(key: str, url: str, api_key: str, snapshot_id: str, work: Path, base: dict[str, str]) -> tuple[
    list[str], dict[str, str]
]:
    """The command line and environment of one contender's run."""
    if key in ("action", "action-uuid", "action-bare"):
        env = dict(base, **{
            "INPUT_WORKSPACE-URL": url, "INPUT_API-KEY": api_key, "INPUT_WAIT": "false",
            "INPUT_TEMPLATE": snapshot_id if key == "action-uuid" else SNAPSHOT,
            "INPUT_PARAMETERS": "model_type: gradient_boosting\n",  # flat: the action finds the step
        }, **({} if key == "action-bare" else GITHUB_CONTEXT))
        return [sys.executable, str(ROOT / "entrypoint.py")], env
    env = dict(base, ZENML_STORE_URL=url, ZENML_STORE_API_KEY=api_key)
    if key == "floor":
        return [sys.executable, str(BENCH / "floor_client.py"), SNAPSHOT], env
    if key == "curl":
        return ["bash", str(BENCH / "curl_trigger.sh"), SNAPSHOT, PIPELINE], env
    # The SDK and the CLI: a fresh client configuration, as on a fresh CI
    # runner; analytics off (they would wait on a network this machine lacks).
    env.update(ZENML_CONFIG_PATH=tempfile.mkdtemp(prefix="zenml-config-", dir=work), ZENML_ANALYTICS_OPT_IN="false")
    if key == "sdk":
        return [sys.executable, "-c", SDK_SCRIPT], env
    config = work / "config.yaml"
    config.write_text("steps:\n  train_model:\n    parameters:\n      model_type: gradient_boosting\n")
    cli = Path(sys.executable).parent / "zenml"
    return [str(cli), "pipeline", "snapshot", "run", SNAPSHOT, "--pipeline", PIPELINE, "--config", str(config)], env


def measure(key: str, argv: list[str], env: dict[str, str], work: Path) -> Sample:
    report = work / "rusage"
    report.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, str(report), *argv],
        env=env, cwd=work, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False,
    )
    # The last match on stdout, or else on stderr (where the CLI logs).
    found = re.findall(CONTENDERS[key][1], done.stdout, re.MULTILINE) or re.findall(
        CONTENDERS[key][1], done.stderr, re.MULTILINE
    )
    if done.returncode != 0 or not found or not report.is_file():
        raise BenchError(f"{key} failed (exit {done.returncode}, no run ID):\n{(done.stdout + done.stderr)[-3000:]}")
    wall, cpu, rss_kib = report.read_text().split()
    return Sample(float(wall), float(cpu), int(rss_kib) / 1024, found[-1])


def base_environment(work: Path) -> dict[str, str]:
    """Ours without ZenML, GitHub, Python or proxy settings; bytecode cached
    (as in the action's image) in a directory of our own."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("ZENML_", "INPUT_", "GITHUB_", "RUNNER_", "PYTHON")) and not k.lower().endswith("_proxy")
    }
    return dict(env, PYTHONPYCACHEPREFIX=str(work / "pycache"))


def run_rounds(
    server: ZenMLServer, proxy: FaultProxy, snapshot_id: str, work: Path, rounds: int
) -> tuple[dict[str, list[Sample]], dict[str, list[str]], list[str]]:
    """Every round runs each contender once, the order rotated each round.
    Round 0 warms the caches and goes through the proxy, which counts each
    contender's requests; it is left out of the timings."""
    base = base_environment(work)
    keys = list(CONTENDERS)
    samples: dict[str, list[Sample]] = {k: [] for k in keys}
    requests: dict[str, list[str]] = {}
    run_ids: list[str] = []
    for round_no in range(rounds + 1):
        shift = round_no % len(keys)
        for key in keys[shift:] + keys[:shift]:
            url = proxy.url if round_no == 0 else server.url
            proxy.clear()
            sample = measure(key, *invocation(key, url, server.api_key, snapshot_id, work, base), work)
            run_ids.append(sample.run_id)
            if round_no == 0:
                requests[key] = [f"{r.method} {re.sub(UUID, '{id}', r.path.removeprefix('/api/v1'))}"
                                 for r in proxy.requests()]
            else:
                samples[key].append(sample)
        log(f"round {round_no}/{rounds} done" + (" (warm-up through the proxy, not timed)" if round_no == 0 else ""))
    return samples, requests, run_ids


def verify(server: ZenMLServer, run_ids: list[str], first: dict[str, str]) -> None:
    """Every printed run ID is a run on the server; each contender's first run
    got the parameter for its step."""
    known: set[str] = set()
    page, pages = 1, 1
    while page <= pages:
        body = server.admin("GET", "/api/v1/runs", params={"size": "1000", "page": str(page)})
        known.update(str(item["id"]) for item in body["items"])
        pages, page = int(body["total_pages"]), page + 1
    if missing := [r for r in run_ids if r not in known]:
        raise BenchError(f"run IDs printed but not on the server: {missing}")
    for key, run_id in first.items():
        if step_parameters(server, run_id).get("train_model", {}).get("model_type") != "gradient_boosting":
            raise BenchError(f"{key}'s run {run_id} did not get model_type=gradient_boosting")


def import_cost(work: Path, statement: str, reps: int = 5) -> tuple[float, float]:
    """Median ms the imports of `statement` take, and the `requests` part of
    them (`-X importtime`, cumulative, interpreter start-up included)."""
    totals: list[float] = []
    of_requests: list[float] = []
    env = dict(base_environment(work), PYTHONPATH=str(ROOT))
    for _ in range(reps):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", statement],
                             env=env, cwd=work, capture_output=True, text=True, check=True, timeout=60).stderr
        rows = [line.removeprefix("import time:").split("|") for line in err.splitlines()[1:]]
        totals.append(sum(int(cum) for _, cum, name in rows if not name.startswith("  ")) / 1000)
        of_requests.append(sum(int(cum) for _, cum, name in rows if name.strip() == "requests") / 1000)
    return statistics.median(totals), statistics.median(of_requests)


def ratio(samples: dict[str, list[Sample]], key: str, base: str) -> float:
    """Median over the rounds of key's wall time over base's in the same round."""
    return statistics.median(a.wall / b.wall for a, b in zip(samples[key], samples[base], strict=True))


def targets(samples: dict[str, list[Sample]]) -> list[tuple[str, float, bool, float | None]]:
    """(target, measured ratio, met, the floor's own ratio)."""
    rows: list[tuple[str, float, bool, float | None]] = []
    for key in ("action", "action-uuid"):
        r = ratio(samples, key, "floor")
        rows.append((f"{CONTENDERS[key][0]}: at most {FLOOR_RATIO:g}x the floor's wall", r, r <= FLOOR_RATIO, None))
    for key, factor in FASTER_THAN.items():
        r = ratio(samples, key, "action")
        rows.append((f"action by name at least {factor:g}x faster than {CONTENDERS[key][0]}", r, r >= factor,
                     ratio(samples, key, "floor")))
    return rows


def report(args: argparse.Namespace, samples: dict[str, list[Sample]], requests: dict[str, list[str]],
           facts: dict[str, str]) -> tuple[str, bool]:
    lines = [
        "# Benchmark: triggering a ZenML run", "",
        f"`python bench/run.py{' --quick' if args.quick else ''}`: {args.rounds} timed rounds after a warm-up round; "
        f"{facts['machine']}. Method: `bench/README.md`.", "",
        "| Contender | Median wall (s) | Median CPU (s) | Wall / floor | Peak RSS (MiB) | Requests |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, (label, _) in CONTENDERS.items():
        runs = samples[key]
        lines.append(
            f"| {label} | {statistics.median(s.wall for s in runs):.2f} | {statistics.median(s.cpu for s in runs):.2f} "
            f"| {ratio(samples, key, 'floor'):.2f}x | {statistics.median(s.rss_mib for s in runs):.0f} "
            f"| {len(requests[key])} |"
        )
    checked = targets(samples)
    lines += ["", "| Target | Measured | Met | The floor's own |", "|---|---:|---|---:|"]
    lines += [f"| {name} | {r:.2f}x | {'yes' if ok else '**NO**'} | {f'{floor:.2f}x' if floor else ''} |"
              for name, r, ok, floor in checked]
    lines += ["", "Requests per trigger (the warm-up round, through the test suite's `FaultProxy`):", ""]
    lines += [f"- {CONTENDERS[key][0]}: " + ", ".join(f"`{r}`" for r in sent) for key, sent in requests.items()]
    lines += ["", f"{facts['runs']}. {facts['imports']}.", ""]
    return "\n".join(lines), all(ok for _, _, ok, _ in checked)


def machine_facts(server: ZenMLServer) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    version = server.admin("GET", "/api/v1/info").get("version", "?")
    return (f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, ZenML server {version} on loopback, "
            f"commit {commit}, {time.strftime('%Y-%m-%d', time.gmtime())}, load average {load} at the end")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 timed rounds instead of 7")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 7, 2 with --quick)")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument("--check", action="store_true", help="exit 2 when a target is missed")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 7)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zenml-bench-") as tmp:
        work = Path(tmp)
        server = ZenMLServer(work / "server")
        log(f"starting a ZenML server on {server.url} ...")
        server.start()
        try:
            server.activate()
            snapshot_id = server.seed()["trainer"]
            with FaultProxy(server.url) as proxy:  # no rules: it forwards and records
                samples, requests, run_ids = run_rounds(server, proxy, snapshot_id, work, args.rounds)
            verify(server, run_ids, {key: runs[0].run_id for key, runs in samples.items()})
            imports, of_requests = import_cost(work, "import zenml_action.main, zenml_action.server_side")
            floor_imports, _ = import_cost(work, "import json, os, sys, urllib.parse, urllib.request")
            facts = {
                "machine": machine_facts(server),
                "runs": f"All {len(run_ids)} printed run IDs exist on the server; each contender's first timed run "
                        "has `train_model.model_type = gradient_boosting`",
                "imports": f"Imports (`-X importtime`, cumulative, median of 5): the action's server-side path "
                           f"{imports:.0f} ms, of which `requests` {of_requests:.0f} ms; the floor's {floor_imports:.0f} ms",
            }
        finally:
            server.stop()
    text, met = report(args, samples, requests, facts)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        log(f"wrote {args.output}")
    log(f"done in {time.monotonic() - started:.0f} s; " + ("all targets met" if met else "a target was MISSED"))
    return 2 if args.check and not met else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
