"""Sample ZenML pipelines the action can trigger (see `pipelines/README.md`)."""
