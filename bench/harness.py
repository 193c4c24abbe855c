"""Start a process, wait for it with `os.wait4`, and measure it.

Wall time runs from just before the process is spawned to the moment its
exit is reaped; CPU time (user + system) comes from the rusage `wait4`
returns, which on Linux covers the process and every descendant it waited
for (curl and jq for the shell script).

Peak memory needs care: Linux carries the spawning process's peak RSS over
into a child's `ru_maxrss` (at `exec`, the old address space's high-water
mark is kept), so a child of this benchmark (tens of MiB) would never show
less than the benchmark itself. `measure(..., isolated=True)` therefore
starts the contender from a tiny launcher (`python -S`, about 5 MiB) that
forks it, reaps it and reports its rusage and wall time: memory below the
launcher's own peak cannot be seen, everything above is the contender's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds
    cpu: float  # user + system seconds, the process and its waited-for children
    maxrss_kib: int  # peak RSS of the largest process of the tree; true only when `isolated`
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr


@dataclass
class Running:
    """A started process; `finish()` reaps it and measures."""

    process: subprocess.Popen[bytes]
    started: float
    stdout: IO[bytes]  # closed by finish()
    stderr: IO[bytes]
    timeout: float

    def finish(self) -> Sample:
        timer = threading.Timer(self.timeout, self.process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(self.process.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - self.started
        self.process.returncode = os.waitstatus_to_exitcode(status)
        outputs = []
        for handle in (self.stdout, self.stderr):
            handle.seek(0)
            outputs.append(handle.read().decode(errors="replace"))
            handle.close()
        return Sample(
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            maxrss_kib=usage.ru_maxrss,
            returncode=self.process.returncode,
            stdout=outputs[0],
            stderr=outputs[1],
            timed_out=wall >= self.timeout,
        )


def start(argv: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = 300.0) -> Running:
    stdout = tempfile.TemporaryFile(prefix="bench-out-")
    stderr = tempfile.TemporaryFile(prefix="bench-err-")
    started = time.perf_counter()
    process = subprocess.Popen(
        list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
    )
    return Running(process, started, stdout, stderr, timeout)


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
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
"""


def measure(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = 300.0, isolated: bool = False
) -> Sample:
    """Run and measure; `isolated` for a true peak RSS (see the module doc):
    wall, CPU and memory are then the launcher's view of the contender."""
    if not isolated:
        return start(argv, env, cwd, timeout).finish()
    with tempfile.TemporaryDirectory(prefix="bench-rusage-") as tmp:
        report = Path(tmp) / "rusage"
        outer = start([sys.executable, "-S", "-c", LAUNCHER, str(report), *argv], env, cwd, timeout).finish()
        if not report.is_file():
            return outer
        wall, cpu, maxrss = report.read_text().split()
        return replace(outer, wall=float(wall), cpu=float(cpu), maxrss_kib=int(maxrss))
