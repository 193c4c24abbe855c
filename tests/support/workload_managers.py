"""Workload managers the test server loads by source path.

The server calls `run()` to start a snapshot run's orchestrator in a
container. These accept the run and execute nothing, so a test can play
the orchestrator over REST (see `tests/support/orchestrator.py`).
"""

import time
from uuid import UUID

from zenml.zen_server.pipeline_execution.in_memory_workload_manager import (
    InMemoryWorkloadManager,
)


class NoopWorkloadManager(InMemoryWorkloadManager):
    """Accepts every run and starts nothing."""

    def run(
        self,
        workload_id: UUID,
        image: str,
        command: list[str],
        arguments: list[str],
        environment: dict[str, str] | None = None,
        sync: bool = True,
        timeout_in_seconds: int = 0,
    ) -> None:
        return None


class SlowWorkloadManager(NoopWorkloadManager):
    """Holds each dispatch for a while, so the server's bounded executor fills
    up and answers 429 as a busy production server does."""

    def run(
        self,
        workload_id: UUID,
        image: str,
        command: list[str],
        arguments: list[str],
        environment: dict[str, str] | None = None,
        sync: bool = True,
        timeout_in_seconds: int = 0,
    ) -> None:
        time.sleep(1.5)
