"""Workload managers the test server loads by source path.

The server calls `run()` to start a snapshot run's orchestrator in a
container. These accept the run and execute nothing, so a test can play
the orchestrator over REST (see `tests/support/orchestrator.py`).

One module for every server version the tests start (0.85 to 0.98): the
interface moved from `template_execution` to `pipeline_execution` in 0.90,
`build_and_push_image` gained `workload_type=` in 0.94.1 (a manager with the
old signature makes every run fail), and the stock `InMemoryWorkloadManager`
exists from 0.94.3. Where it exists it stays the base, as a real server
would have it; elsewhere a minimal manager takes any arguments.
The two-slot limit `test_load.py` relies on is the server's own
(`max_concurrent_snapshot_runs`), whatever the manager.
"""

import time
from typing import Any

try:
    from zenml.zen_server.pipeline_execution.in_memory_workload_manager import (
        InMemoryWorkloadManager as _Base,
    )
except ImportError:  # before 0.94.3
    try:
        from zenml.zen_server.pipeline_execution.workload_manager_interface import (
            WorkloadManagerInterface,
        )
    except ImportError:  # before 0.90
        from zenml.zen_server.template_execution.workload_manager_interface import (  # type: ignore[no-redef]
            WorkloadManagerInterface,
        )

    class _Base(WorkloadManagerInterface):  # type: ignore[no-redef]
        """The interface's five methods, taking whatever each version passes."""

        def run(self, *args: Any, **kwargs: Any) -> None:
            return None

        def build_and_push_image(self, *args: Any, **kwargs: Any) -> str:
            # The server builds a runner image before every run; the image
            # name is all it needs back (nothing is built or pushed).
            return str(kwargs.get("image_name") or "registry.invalid/zenml/runner:test")

        def delete_workload(self, *args: Any, **kwargs: Any) -> None:
            return None

        def get_logs(self, *args: Any, **kwargs: Any) -> str:
            return ""

        def log(self, *args: Any, **kwargs: Any) -> None:
            return None


class NoopWorkloadManager(_Base):
    """Accepts every run and starts nothing."""

    def run(self, *args: Any, **kwargs: Any) -> None:
        return None


class SlowWorkloadManager(NoopWorkloadManager):
    """Holds each dispatch for a while, so the server's bounded executor fills
    up and answers 429 as a busy production server does."""

    def run(self, *args: Any, **kwargs: Any) -> None:
        time.sleep(1.5)
