"""A test-only pipeline whose step waits for a file the test creates.

The executing tier uses it to hold a run in `running` for as long as a test
needs (a timeout, a stop), instead of racing the clock. It runs on the same
machine as the test (the docker stand-in runs steps as local processes), so
a path is a signal both sides see.
"""

import logging
import time
from pathlib import Path

from zenml import pipeline, step

logger = logging.getLogger(__name__)

# The step gives up after this long, so a test that dies never leaves a run
# waiting for ever.
GATE_MAX_SECONDS = 300


@step
def wait_for_gate(gate: str = "", ticks: int = 0, say: str = "") -> str:
    """First prints what the file `say` holds (if given), a line that looks
    like a workflow command and `ticks` numbered lines a second apart, for
    the action to stream while the step runs; then waits until the file
    `gate` exists (no wait when empty)."""
    if say:
        print(f"saying {Path(say).read_text().strip()}", flush=True)
    if ticks:
        print("::error::a step's line is no command", flush=True)
    for number in range(1, ticks + 1):
        print(f"tick {number}", flush=True)
        time.sleep(1)
    started = time.monotonic()
    logger.info("Waiting for %s", gate or "nothing")
    while gate and not Path(gate).exists():
        if time.monotonic() - started > GATE_MAX_SECONDS:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.2)
    return "opened"


@pipeline(enable_cache=False)
def gated_pipeline(gate: str = "", ticks: int = 0, say: str = "") -> None:
    wait_for_gate(gate=gate, ticks=ticks, say=say)
