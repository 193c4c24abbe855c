"""Small pipelines the test server holds snapshots of.

They are compiled into snapshots and never executed by the server: the
tests play the orchestrator (see `orchestrator.py`).
"""

from zenml import pipeline, step


@step
def load_data(data_url: str = "file:///data/default.csv", limit: int = 100) -> int:
    return limit


@step
def train_model(
    rows: int, model_type: str = "random_forest", learning_rate: float = 0.1
) -> float:
    return float(rows) * learning_rate


@pipeline(enable_cache=False)
def trainer(
    data_url: str = "file:///data/default.csv", model_type: str = "random_forest"
) -> None:
    rows = load_data(data_url=data_url)
    train_model(rows=rows, model_type=model_type)


def dynamic_trainer(
    data_url: str = "file:///data/default.csv", model_type: str = "random_forest"
) -> None:
    rows = load_data(data_url=data_url)
    train_model(rows=rows, model_type=model_type)


try:
    dynamic_trainer = pipeline(dynamic=True, enable_cache=False)(dynamic_trainer)
except TypeError:  # dynamic pipelines arrive in ZenML 0.92
    dynamic_trainer = None
