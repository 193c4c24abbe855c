"""Benchmark: is the action the fastest way to trigger a ZenML run?

    python bench/run.py            # 7 interleaved rounds, writes bench/RESULTS.md
    python bench/run.py --quick    # 2 rounds, shorter waits (CI), writes bench/results/quick.md

Starts a real ZenML 0.98 server on loopback (the test suite's, with a
workload manager that starts nothing), seeds the test snapshots, then
measures the action against the ZenML CLI, the SDK, a curl script and a
minimal standard-library client (the floor). See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

import harness  # noqa: E402
import measurements as ms  # noqa: E402
from contenders import ALL, CURL, Contender, Server, base_env  # noqa: E402
from counting_proxy import CountingProxy  # noqa: E402
from render import Results, Trial, markdown  # noqa: E402
from support.orchestrator import step_parameters  # noqa: E402
from support.server import ZenMLServer  # noqa: E402

from zenml_action.waiting import next_interval  # noqa: E402

log = ms.log


class BenchError(RuntimeError):
    pass


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 7; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="2 rounds, one counting pass, a 15 s long run")
    parser.add_argument("--output", type=Path, default=None, help="where to write the Markdown report")
    parser.add_argument("--check", action="store_true", help="exit 2 when a target is missed")
    parser.add_argument("--skip-install-size", action="store_true", help="do not build a venv to measure size")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 7
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.output is None:
        args.output = BENCH_DIR / ("results/quick.md" if args.quick else "RESULTS.md")
    return args


def command_output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except OSError:
        return "n/a"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def code_version() -> str:
    """The commit measured, and whether the working tree differed from it."""
    head = command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "zenml_action", "entrypoint.py"])
    return f"{head}" + (" with uncommitted changes to zenml_action/" if dirty else "")


def image_size() -> str:
    from_env = os.environ.get("BENCH_IMAGE_SIZE", "").strip()
    if from_env:
        return from_env
    path = BENCH_DIR / "image-size.txt"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    return "n/a (see README Image section)"


def timed_rounds(
    contenders: tuple[Contender, ...], server: Server, work: Path, env: dict[str, str], rounds: int,
    loads: list[float],
) -> dict[str, list[Trial]]:
    """Round-robin: every round runs each contender once, the order rotated
    each round; round 0 is a warm-up (bytecode, disk cache) and is dropped."""
    trials: dict[str, list[Trial]] = {c.key: [] for c in contenders}
    for round_no in range(rounds + 1):
        shift = round_no % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            invocation = contender.prepare(server, work, env)
            sample = harness.measure(invocation.argv, invocation.env, invocation.cwd)
            run_id = contender.run_id(sample.output)
            if sample.returncode != 0 or not run_id:
                raise BenchError(
                    f"{contender.label} failed (exit {sample.returncode}, run ID {run_id or 'none'}):\n"
                    f"{sample.output[-4000:]}"
                )
            if round_no > 0:
                trials[contender.key].append(Trial(sample, run_id))
        if round_no > 0:
            loads.append(os.getloadavg()[0])
        log(f"round {round_no}/{rounds} done" + (" (warm-up, discarded)" if round_no == 0 else ""))
    return trials


def verify(server: ZenMLServer, trials: dict[str, list[Trial]]) -> str:
    """Every run ID a contender printed exists on the server; the first run
    of each contender got `model_type: gradient_boosting` for `train_model`."""
    known: set[str] = set()
    page = 1
    while True:
        body = server.admin("GET", "/api/v1/runs", params={"size": "1000", "page": str(page)})
        known.update(str(item["id"]) for item in body["items"])
        if page >= int(body["total_pages"]):
            break
        page += 1
    printed = [t.run_id for ts in trials.values() for t in ts]
    missing = [r for r in printed if r not in known]
    if missing:
        raise BenchError(f"run IDs printed but not on the server: {missing}")
    for key, ts in trials.items():
        params = step_parameters(server, ts[0].run_id).get("train_model", {})
        if params.get("model_type") != "gradient_boosting":
            raise BenchError(f"{key}'s run {ts[0].run_id} has train_model parameters {params}")
    return (
        f"all {len(printed)} run IDs exist on the server; the first run of each contender has "
        "`train_model.model_type = gradient_boosting`."
    )


def in_thread(target: Callable[..., object], *args: object) -> tuple[threading.Thread, dict[str, object]]:
    box: dict[str, object] = {}

    def body() -> None:
        try:
            box["result"] = target(*args)
        except Exception as exc:  # reported by the caller
            box["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, box


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    quick = bool(args.quick)
    machine = {
        "nproc": command_output(["nproc"]) or str(os.cpu_count()),
        "cpu": cpu_model(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": load(),
        "zenml": "?",
        "code": code_version(),
    }
    json_tool = "jq" if shutil.which("jq") else "python3"
    contenders = tuple(
        c if c is not CURL or json_tool == "jq" else Contender(
            c.key, "curl + python3 (no jq)", c.what, c.prepare, c.run_id
        )
        for c in ALL
    )
    with tempfile.TemporaryDirectory(prefix="zenml-bench-") as tmp:
        tmpdir = Path(tmp)
        work = tmpdir / "work"
        work.mkdir()
        env = base_env(tmpdir / "pycache")
        zenml = ZenMLServer(tmpdir / "server", workload_manager="support.workload_managers.NoopWorkloadManager")
        log(f"starting a ZenML server on {zenml.url} (NoopWorkloadManager) ...")
        zenml.start()
        try:
            zenml.activate()
            snapshots = zenml.seed()
            machine["zenml"] = str(zenml.admin("GET", "/api/v1/info").get("version", "?"))
            setup = time.monotonic() - started
            log(f"server ready and seeded in {setup:.0f} s")
            server = Server(zenml.url, zenml.api_key, snapshots["trainer"])
            loads: list[float] = []
            res = Results(
                mode="quick" if quick else "full",
                rounds=args.rounds,
                contenders=contenders,
                trials=timed_rounds(contenders, server, work, env, args.rounds, loads),
                machine=machine,
                setup_seconds=setup,
                json_tool=json_tool,
                image_size=image_size(),
            )
            machine["load_rounds"] = ", ".join(f"{x:.1f}" for x in loads)
            res.verified = verify(zenml, res.trials)
            res.tag_cost = ms.measure_tag_cost(server, reps=4 if quick else 10)
            res.launcher_kib = ms.launcher_floor_kib(work, env)
            with CountingProxy(zenml.url) as proxy:
                res.counts = ms.count_requests(contenders, server, proxy, work, env, reps=1 if quick else 3)
            with CountingProxy(zenml.url) as polling_proxy:
                log("polling pass (70 s) started in the background")
                polling_thread, polling = in_thread(ms.measure_polling, server, polling_proxy, work, env, 70.0, 5.0)
                for after in (3.0, 15.0 if quick else 40.0):
                    log(f"time to notice: run finished after {after:g} s ...")
                    res.notices.append(ms.measure_notice(zenml, server, work, env, after))
                reps = 3 if quick else 5
                res.import_warm = ms.measure_import_time("cached", env, work, reps)
                res.import_floor = ms.measure_import_time("floor", env, work, reps, ms.FLOOR_IMPORT_STATEMENT)
                # Nothing compiled at all: an empty cache that is never written.
                cold_env = dict(env, PYTHONPYCACHEPREFIX=str(tmpdir / "empty-pycache"), PYTHONDONTWRITEBYTECODE="1")
                res.import_cold = ms.measure_import_time("no bytecode", cold_env, work, reps)
                res.no_zenml = ms.prove_no_zenml(server, work, env)
                if not args.skip_install_size:
                    log("measuring installed size (uv) ...")
                    res.install = ms.measure_install_size(ROOT / "requirements.txt")
                polling_thread.join()
                if "error" in polling:
                    raise BenchError(f"polling pass failed: {polling['error']}")
                measured = polling["result"]
                assert isinstance(measured, ms.PollingMeasured)
                res.polling = measured
            res.polling_computed = ms.compute_polling(next_interval, 5.0, res.polling.poll_seconds)
        finally:
            zenml.stop()
    machine["load_end"] = load()
    res.runtime_seconds = time.monotonic() - started
    report = markdown(res)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    log(f"wrote {args.output} ({res.runtime_seconds:.0f} s in all)")
    missed = [name for name, _, ok, _ in res.targets() if not ok]
    if missed:
        log("targets missed: " + "; ".join(missed))
    return 2 if (args.check and missed) else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
