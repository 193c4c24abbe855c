"""Turn the benchmark's measurements into the Markdown report."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from contenders import Contender
from harness import Sample
from measurements import (
    ImportTime,
    InstallSize,
    Notice,
    NoZenml,
    PollingComputed,
    PollingMeasured,
    RequestCount,
    TagCost,
)

ACTION_VS_FLOOR = 1.15  # the action's wall time at most this many times the floor's
FASTER_THAN = {"curl": 2.0, "sdk": 3.0, "cli": 3.0}


@dataclass(frozen=True)
class Trial:
    sample: Sample
    run_id: str


@dataclass
class Results:
    mode: str
    rounds: int
    contenders: tuple[Contender, ...]
    trials: dict[str, list[Trial]]  # per contender, one per round, in round order
    machine: dict[str, str]
    setup_seconds: float = 0.0
    verified: str = ""
    counts: dict[str, RequestCount] = field(default_factory=dict)
    polling: PollingMeasured | None = None
    polling_computed: PollingComputed | None = None
    notices: list[Notice] = field(default_factory=list)
    import_warm: ImportTime | None = None
    import_cold: ImportTime | None = None
    import_floor: ImportTime | None = None
    no_zenml: NoZenml | None = None
    install: InstallSize | None = None
    image_size: str = ""
    json_tool: str = ""
    launcher_kib: int = 0
    tag_cost: TagCost | None = None
    runtime_seconds: float = 0.0

    # -- derived figures ---------------------------------------------------------

    def walls(self, key: str) -> list[float]:
        return [t.sample.wall for t in self.trials[key]]

    def median_wall(self, key: str) -> float:
        return statistics.median(self.walls(key))

    def median_cpu(self, key: str) -> float:
        return statistics.median(t.sample.cpu for t in self.trials[key])

    def median_rss_mib(self, key: str) -> str:
        """From the counting pass's isolated runs (see harness.py)."""
        count = self.counts.get(key)
        if count is None or not count.maxrss_kib:
            return "n/a"
        return f"{statistics.median(count.maxrss_kib) / 1024:.0f}"

    def ratio(self, key: str, base: str) -> float:
        """Median over rounds of wall(key) / wall(base) in the same round."""
        return statistics.median(a / b for a, b in zip(self.walls(key), self.walls(base), strict=True))

    def targets(self) -> list[tuple[str, str, bool, str]]:
        """(target, measured, met, what the floor itself reaches)."""
        rows = []
        for key, label in (("action", "by name"), ("action-uuid", "by UUID")):
            if key in self.trials and "floor" in self.trials:
                r = self.ratio(key, "floor")
                rows.append((
                    f"action ({label}) within {ACTION_VS_FLOOR:g}x of the floor", f"{r:.2f}x", r <= ACTION_VS_FLOOR, "1.00x"
                ))
        for key, factor in FASTER_THAN.items():
            if key in self.trials and "action" in self.trials:
                r = self.ratio(key, "action")
                best = f"{self.ratio(key, 'floor'):.2f}x" if "floor" in self.trials else "n/a"
                label = next(c.label for c in self.contenders if c.key == key)
                rows.append((f"action at least {factor:g}x faster than {label}", f"{r:.2f}x", r >= factor, best))
        for notice in self.notices:
            rows.append((
                f"notice a run finished after {notice.waited:.0f} s within max(5 s, 10%) = {notice.target:.1f} s",
                f"{notice.latency:.1f} s (exit {notice.exit_code}, {notice.conclusion or 'no conclusion'})",
                notice.met,
                "",
            ))
        return rows


def mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"


def short(route: str) -> str:
    return route.replace("/api/v1", "")


def yes(ok: bool) -> str:
    return "yes" if ok else "**NO**"


def trigger_table(res: Results) -> list[str]:
    lines = [
        "| Contender | Median wall (s) | Wall min-max (s) | Median CPU (s) | Wall / floor | Peak RSS (MiB) | Requests per trigger |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in res.contenders:
        walls = res.walls(c.key)
        ratio = f"{res.ratio(c.key, 'floor'):.2f}x" if "floor" in res.trials else "n/a"
        count = str(res.counts[c.key].per_trigger) if c.key in res.counts else "n/a"
        lines.append(
            f"| {c.label} | {res.median_wall(c.key):.2f} | {min(walls):.2f}-{max(walls):.2f} | "
            f"{res.median_cpu(c.key):.2f} | {ratio} | {res.median_rss_mib(c.key)} | {count} |"
        )
    return lines


def request_lists(res: Results) -> list[str]:
    lines: list[str] = []
    for c in res.contenders:
        count = res.counts.get(c.key)
        if count is None:
            continue
        routes = count.routes()
        if c.key in ("action", "action-uuid", "floor"):
            seconds = count.median_seconds()
            wall = statistics.median(count.walls)
            lines += [
                "",
                f"**{c.label}**: {count.per_trigger} requests "
                f"(process wall through the proxy {wall:.2f} s, of which {sum(seconds):.2f} s waiting for answers)",
                "",
                "| # | Request | Server time (s, median) |",
                "|---:|---|---:|",
            ]
            lines += [f"| {i + 1} | `{short(r)}` | {s:.2f} |" for i, (r, s) in enumerate(zip(routes, seconds, strict=True))]
        else:
            tally: dict[str, int] = {}
            for r in routes:
                tally[short(r)] = tally.get(short(r), 0) + 1
            listed = ", ".join(f"`{r}`" + (f" x{n}" if n > 1 else "") for r, n in tally.items())
            lines += ["", f"**{c.label}**: {count.per_trigger} requests: {listed}"]
    return lines


def breakdown(res: Results) -> list[str]:
    """Where the action's time goes, next to the floor's, from the counting
    pass (same processes: wall through the proxy, server time per request)."""
    if not {"action", "floor"} <= set(res.counts) or not all(res.counts[k].imports_ms for k in ("action", "floor")):
        return []

    def parts(key: str, imports_ms: float) -> dict[str, float]:
        count = res.counts[key]
        seconds = count.median_seconds()
        routes = [short(r) for r in count.routes()]
        got: dict[str, float] = {"imports": imports_ms / 1000}
        for route, s in zip(routes, seconds, strict=True):
            if route.endswith("/login"):
                name = "login (API key -> token)"
            elif "/runs" in route and route.startswith("POST"):
                name = "trigger"
            elif "pipeline_snapshots" in route or "pipelines" in route or "run_templates" in route:
                name = "snapshot lookup"
            else:
                name = "dashboard link (`GET /info`, beside the login)"
            got[name] = got.get(name, 0.0) + s
        wall = statistics.median(count.walls)
        got["rest: interpreter start, own CPU, process exit"] = wall - sum(got.values())
        got["total (wall through the proxy)"] = wall
        return got

    action = parts("action", statistics.median(res.counts["action"].imports_ms))
    floor = parts("floor", statistics.median(res.counts["floor"].imports_ms))
    order = [
        "imports", "login (API key -> token)", "snapshot lookup", "trigger",
        "dashboard link (`GET /info`, beside the login)",
        "rest: interpreter start, own CPU, process exit", "total (wall through the proxy)",
    ]
    lines = ["| Part | Action by name (s) | Floor (s) | Difference (s) |", "|---|---:|---:|---:|"]
    for name in order:
        a, f = action.get(name, 0.0), floor.get(name, 0.0)
        lines.append(f"| {name} | {a:.2f} | {f:.2f} | {a - f:+.2f} |")
    return lines


def tag_cost_section(res: Results) -> list[str]:
    t = res.tag_cost
    if t is None:
        return []
    plain, tagged = statistics.median(t.without_tag), statistics.median(t.with_tag)
    return [
        f"The trigger request alone, {len(t.with_tag)} times each, interleaved, same token: without a tag (as the floor) "
        f"median **{plain:.2f} s**, with one unique run tag (as the action's idempotency tag) median **{tagged:.2f} s** "
        f"({tagged - plain:+.2f} s).",
    ]


def imports_section(res: Results) -> list[str]:
    lines: list[str] = []
    warm, cold, floor = res.import_warm, res.import_cold, res.import_floor
    if warm is not None:
        lines.append(
            f"- `python -X importtime -c \"import zenml_action.server_side, zenml_action.main\"`, self times summed, "
            f"bytecode cached: **{warm.median_ms:.0f} ms** (median of {len(warm.total_ms)}; "
            f"runs: {', '.join(f'{t:.0f}' for t in warm.total_ms)})"
        )
    if cold is not None:
        lines.append(
            f"- the same with no bytecode at all (an empty cache, never written; the standard library compiled too, "
            f"so an upper bound for an image built without `compileall`): **{cold.median_ms:.0f} ms**"
        )
    if floor is not None:
        lines.append(f"- the floor's imports (`json, os, sys, urllib.parse, urllib.request`), cached: {floor.median_ms:.0f} ms")
    if warm is not None:
        groups = sorted(warm.by_package_ms.items(), key=lambda kv: -kv[1])
        lines += [
            "",
            "Where the cached import time goes (each module's self time charged to the dependency whose import "
            "pulled it in; medians):",
            "",
            "| Charged to | ms |",
            "|---|---:|",
        ]
        lines += [f"| {name} | {ms:.0f} |" for name, ms in groups]
    if res.no_zenml is not None:
        nz = res.no_zenml
        lines += [
            "",
            f"- `zenml` not imported by the server-side path: **{yes(nz.proven)}**. One interpreter ran "
            f"`zenml_action.main.main()` for real (trigger, `wait: false`; exit {nz.exit_code}, run `{nz.run_id}`); "
            f"afterwards `zenml` modules in `sys.modules`: {len(nz.zenml_modules)}; modules loaded in all: {nz.modules}; "
            f"third-party top-level packages: {', '.join(f'`{m}`' for m in nz.third_party)}.",
        ]
    return lines


def polling_section(res: Results) -> list[str]:
    lines: list[str] = []
    p, c = res.polling, res.polling_computed
    if p is not None:
        lines += [
            f"- **Measured** (action with `wait: true`, `poll-interval: {p.poll_interval:g}s`, `timeout: {p.timeout:g}s`, "
            f"on a run nobody finishes, through the counting proxy): **{p.requests_first_minute} requests in the first "
            f"minute after the trigger** ({p.polls_first_minute} of them status polls). "
            f"Polls at (s after the trigger): {', '.join(f'{t:g}' for t in p.poll_offsets)}.",
            f"  Before the trigger: {', '.join(f'`{short(r)}`' for r in p.before_trigger)}. "
            f"After the last poll (timeout): {', '.join(f'`{short(r)}`' for r in p.after_timeout) or 'nothing'}; "
            f"exit code {p.exit_code}.",
        ]
    if c is not None:
        lines.append(
            f"- **Computed** from `zenml_action.waiting.next_interval` (poll-interval 5 s; not waited for real): "
            f"{c.polls_first_minute} polls in the first minute, **{c.polls_sixth_minute} polls in minute 5-6** "
            f"(interval after 5 min: {c.steady_interval:g} s, i.e. {60 / c.steady_interval:.1f} requests/min from then on), "
            f"{c.polls_first_hour} polls in a whole hour."
        )
    return lines


def install_section(res: Results) -> list[str]:
    lines: list[str] = []
    if res.install is not None:
        i = res.install
        if i.error:
            lines.append(f"- installed size: could not measure ({i.error})")
        else:
            lines.append(
                f"- `uv pip install -r requirements.txt` into a fresh venv, site-packages minus an empty venv's: "
                f"**{mib(i.without_bytecode)}** as installed ({i.distributions} distributions), "
                f"{mib(i.with_bytecode)} after `compileall`"
            )
    lines.append(f"- image size: {res.image_size}")
    return lines


def markdown(res: Results) -> str:
    m = res.machine
    out = [
        "# Benchmark: triggering a ZenML run",
        "",
        f"Generated by `python bench/run.py{' --quick' if res.mode == 'quick' else ''}` "
        f"({res.rounds} interleaved rounds after one discarded warm-up round; whole benchmark {res.runtime_seconds:.0f} s). "
        "See `bench/README.md` for what each contender does and how to read this.",
        "",
        f"Machine: {m['nproc']} CPUs (`nproc`), {m['cpu']}; {m['os']}; Python {m['python']}; ZenML server {m['zenml']}; "
        f"{m['date']}; action code: {m['code']}. Load average (1/5/15 min) at start {m['load_start']}, at end "
        f"{m['load_end']}; 1-min load after each timed round: {m['load_rounds']} (the machine is shared: other work "
        "ran alongside, and CPU-bound time stretches with the load).",
        "",
        "## Trigger: process start to a known run ID",
        "",
        "Snapshot `trainer-prod`, `model_type: gradient_boosting` for step `train_model`; each contender is a fresh "
        "process. Wall / floor is the median over rounds of each round's ratio. CPU is user+system of the process "
        "and its children. Peak RSS is the largest process's, measured in the counting pass from a small launcher "
        f"(values under its own {res.launcher_kib / 1024:.0f} MiB cannot show; see `harness.py`).",
        "",
        *trigger_table(res),
        "",
        f"Runs verified: {res.verified}",
        "",
        "## Targets",
        "",
        "The last column is what the floor itself reaches against the same contender: no client that has to "
        "log in, look up and trigger can do better on this machine.",
        "",
        "| Target | Measured | Met | Floor's own figure |",
        "|---|---|---|---|",
        *[f"| {name} | {value} | {yes(ok)} | {best} |" for name, value, ok, best in res.targets()],
        "",
        "## Requests per trigger (counting proxy)",
        *request_lists(res),
        "",
        "## Where the action's time goes",
        "",
        "From the counting pass (same processes, run with `-X importtime`; medians of "
        f"{len(res.counts['action'].counts) if 'action' in res.counts else 0} runs each, so one sample with "
        "`--quick`): imports are every import of the process summed, server time is per request as the proxy saw it.",
        "",
        *breakdown(res),
        "",
        *tag_cost_section(res),
        "",
        "## Requests while waiting",
        "",
        *polling_section(res),
        "",
        "## Time to notice that a run finished",
        "",
        "Action with `wait: true` and default polling (`poll-interval: 5s`); the run is finished over REST (its last "
        "step reported completed) after the given time; measured from sending that request to the action's exit. "
        "One sample each: where the change falls between two polls is luck. By design the worst case is one poll "
        "interval, which starts 0.5 s early below the 30 s cap (4.5 s until 50 s of waiting, then 10% of the time "
        "waited less 0.5 s; 30 s from 5 minutes on), plus a poll's round trip "
        + (f"(median {res.polling.poll_seconds:.2f} s here) " if res.polling else "")
        + "plus the action's exit: within the target.",
        "",
        "| Run finished after (s) | Notice latency (s) | Target (s) | Met |",
        "|---:|---:|---:|---|",
        *[f"| {n.waited:.1f} | {n.latency:.2f} | {n.target:.1f} | {yes(n.met)} |" for n in res.notices],
        "",
        "## Imports (server-side path)",
        "",
        *imports_section(res),
        "",
        "## Size",
        "",
        *install_section(res),
        "",
    ]
    if res.json_tool != "jq":
        out.insert(out.index("## Targets") - 1, "Note: `jq` was not found; the curl script read JSON with `python3 -c`.\n")
    return "\n".join(out)
