"""Sample ZenML *dynamic* pipeline that asks a person before it promotes.

It trains and evaluates `breast_cancer_classifier` with the steps of
`pipelines/training.py`, then asks through `zenml.wait` whether to promote
the new model version to `production`, with the version's metrics in the
question, and promotes it only when the answer is `true`.

While nobody answers, the run polls for `wait_timeout` seconds, then ZenML
(0.98 and later) **pauses** it: the run holds no compute until someone
resolves the question (the dashboard, the API, or this project's action with
`resolve: continue` and `answer: true`); the server then resumes the run,
without running the finished steps again. `resolve: abort` stops it.

Run it locally with `python -m pipelines.approval` (the question is asked in
the terminal); the action triggers a snapshot of it with the flat parameters
`data_url`, `model_type` and `wait_timeout`.
"""

import logging
from typing import Annotated, Final

import zenml
from zenml import Model, get_step_context, pipeline, step
from zenml.enums import ModelStages

from pipelines.training import (
    DEFAULT_DATA_URL,
    MODEL_NAME,
    check_model_type,
    evaluate,
    load_data,
    preprocess,
    train_model,
)

logger = logging.getLogger(__name__)

# The wait condition's name: the action's `wait-condition` input can name it.
WAIT_CONDITION_NAME: Final = "promote"
PROMOTION_STAGE: Final = ModelStages.PRODUCTION
DEFAULT_WAIT_TIMEOUT: Final = 600
# Metrics in the order the question shows them.
QUESTION_METRICS: Final = ("accuracy", "f1", "roc_auc")


def promotion_question(model_name: str, version_number: int, metrics: dict[str, float]) -> str:
    """What the reviewer is asked. Deterministic for the same inputs: a
    resumed run asks again with the same text, which ZenML requires to
    recognise the question it already asked."""
    shown = ", ".join(f"{name} {metrics[name]:.3f}" for name in QUESTION_METRICS if name in metrics)
    return f"Promote {model_name} version {version_number} ({shown}) to {PROMOTION_STAGE.value}?"


@step
def describe_candidate(metrics: dict[str, float]) -> Annotated[str, "question"]:
    """The question about the model version this run made."""
    version = get_step_context().model_version
    if version is None or version.number is None:
        raise RuntimeError(f"The run has no version of {MODEL_NAME!r}: the pipeline's `model` is missing.")
    return promotion_question(version.model.name, version.number, metrics)


@step
def promote_model() -> Annotated[int, "promoted_version"]:
    """Moves this run's model version to `production`; the version that held
    the stage is archived (`force`)."""
    version = get_step_context().model_version
    if version is None or version.number is None:
        raise RuntimeError(f"The run has no version of {MODEL_NAME!r} to promote.")
    version.set_stage(PROMOTION_STAGE, force=True)
    logger.info("Promoted %s version %d to %s", version.model.name, version.number, PROMOTION_STAGE.value)
    return version.number


# Dynamic: `zenml.wait` exists only in dynamic pipelines. Caching is off for
# the reasons in training.py.
@pipeline(
    dynamic=True,
    enable_cache=False,
    model=Model(name=MODEL_NAME, description="Binary classifier trained by the sample pipeline."),
)
def approval_pipeline(
    data_url: str = DEFAULT_DATA_URL,
    model_type: str = "random_forest",
    wait_timeout: int = DEFAULT_WAIT_TIMEOUT,
) -> None:
    """Trains and evaluates a classifier, asks whether to promote it, and
    promotes it to `production` on `true`."""
    check_model_type(model_type)
    data = load_data(data_url=data_url)
    # By name: in a dynamic pipeline, ZenML 0.98 can hand a step's outputs
    # back in another order than the step declares them.
    split = {output.output_name: output for output in preprocess(data=data)}
    model = train_model(x_train=split["x_train"], y_train=split["y_train"], model_type=model_type)
    metrics = evaluate(model=model, x_test=split["x_test"], y_test=split["y_test"])
    question = describe_candidate(metrics=metrics).load()
    approved = zenml.wait(
        schema=bool,
        question=question,
        timeout=wait_timeout,
        name=WAIT_CONDITION_NAME,
        metadata={"model": MODEL_NAME, "stage": PROMOTION_STAGE.value},
    )
    if approved:
        promote_model()
    else:
        logger.info("Not promoted: the answer was %r", approved)


if __name__ == "__main__":
    approval_pipeline()
