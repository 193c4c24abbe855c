"""A test-only dynamic pipeline (ZenML's `@pipeline(dynamic=True)`): how
many steps run is decided while the pipeline runs, by its parameter.

The executing tier triggers a snapshot of it: ZenML's `ssh` orchestrator
starts one orchestrator container (`docker run -d`), which runs the
pipeline's function and its steps. Each step logs a number on the run, so
the action's `metrics` output shows that every step ran.
"""

from zenml import get_step_context, log_metadata, pipeline, step


@step
def square(n: int) -> int:
    """Logs n² on the run as `square_of_<n>`."""
    result = n * n
    log_metadata(metadata={f"square_of_{n}": result}, run_id_name_or_prefix=get_step_context().pipeline_run.id)
    return result


@pipeline(dynamic=True, enable_cache=False)
def dynamic_pipeline(width: int = 2) -> None:
    for n in range(1, width + 1):
        square(n=n)
