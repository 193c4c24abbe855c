"""Sample ZenML training pipeline: load a CSV, split it, fit a binary
classifier and log its held-out metrics on the pipeline run and on the
version of the `breast_cancer_classifier` model that the run creates in
ZenML's model control plane.

Run it locally with `python -m pipelines.training`; the action triggers it
with the flat parameters `data_url` and `model_type`.
"""

import http.client
import importlib
import io
import logging
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Annotated, Any, ClassVar, Final

import pandas as pd  # type: ignore[import-untyped]
from sklearn.base import BaseEstimator  # type: ignore[import-untyped]
from sklearn.datasets import load_breast_cancer  # type: ignore[import-untyped]
from sklearn.ensemble import (  # type: ignore[import-untyped]
    GradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.metrics import (  # type: ignore[import-untyped]
    accuracy_score,
    f1_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]
from sklearn.pipeline import make_pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]
from zenml import Model, get_step_context, log_metadata, pipeline, step
from zenml.enums import ArtifactType
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.metadata.metadata_types import MetadataType

logger = logging.getLogger(__name__)

# A dataset that ships inside scikit-learn, so the default run needs no
# network and no file next to the code.
SKLEARN_SCHEME: Final = "sklearn"
SKLEARN_DATASETS: Final = ("breast_cancer",)
DEFAULT_DATA_URL: Final = "sklearn://breast_cancer"

TARGET_COLUMN: Final = "target"
MODEL_TYPES: Final = ("random_forest", "gradient_boosting", "logistic_regression")

MODEL_NAME: Final = "breast_cancer_classifier"

SEED: Final = 42
TEST_SIZE: Final = 0.25
# With a 25% stratified test split, 5 rows per class guarantee that both the
# train and the test split hold each class, which ROC AUC needs.
MIN_ROWS_PER_CLASS: Final = 5
HTTP_TIMEOUT_SECONDS: Final = 30.0

# fsspec names the missing package itself, but only once fsspec is installed;
# this lets the error name it when fsspec is missing too.
FSSPEC_PACKAGES: Final = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "adl": "adlfs",
}

ACCEPTED_FORMS: Final = (
    "a local CSV path, a file:///absolute/path.csv URL, an http(s):// URL, "
    "an object-store URL such as s3://, gs:// or az:// (needs fsspec and the "
    f"store's package), or {DEFAULT_DATA_URL}"
)


class DataLoadError(ValueError):
    """The data behind `data_url` cannot be loaded or is not usable."""

    def __init__(self, data_url: str, problem: str, fix: str) -> None:
        super().__init__(f"Cannot use data_url {data_url!r}: {problem}. {fix}")
        self.data_url = data_url


# ---------------------------------------------------------------- loading


def read_dataset(data_url: str) -> pd.DataFrame:
    """Reads the raw table behind `data_url`, without validating it."""
    if not data_url.strip():
        raise DataLoadError(data_url, "it is empty", f"Pass {ACCEPTED_FORMS}.")
    # Only `scheme://` counts as a URL, so that Windows drive letters and
    # file names containing a colon stay plain paths.
    if "://" not in data_url:
        return _read_local(data_url, Path(data_url).expanduser())
    scheme = urllib.parse.urlsplit(data_url).scheme.lower()
    if scheme == SKLEARN_SCHEME:
        return _load_sklearn(data_url)
    if scheme == "file":
        return _read_local(data_url, _file_url_to_path(data_url))
    if scheme in ("http", "https"):
        return _read_http(data_url)
    return _read_fsspec(data_url, scheme)


def _load_sklearn(data_url: str) -> pd.DataFrame:
    parsed = urllib.parse.urlsplit(data_url)
    name = (parsed.netloc + parsed.path).strip("/")
    if name not in SKLEARN_DATASETS:
        raise DataLoadError(
            data_url,
            f"unknown bundled dataset {name!r}",
            f"Use one of: {', '.join(f'sklearn://{n}' for n in SKLEARN_DATASETS)}.",
        )
    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    return frame


def _file_url_to_path(data_url: str) -> Path:
    parsed = urllib.parse.urlsplit(data_url)
    if parsed.netloc not in ("", "localhost"):
        # `file://data.csv` parses `data.csv` as a host: a common slip.
        raise DataLoadError(
            data_url,
            f"a file:// URL takes an absolute path, but {parsed.netloc!r} was read as a host name",
            "Write file:///absolute/path.csv (three slashes) or pass a plain path.",
        )
    return Path(urllib.request.url2pathname(parsed.path))


def _read_local(data_url: str, path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataLoadError(
            data_url,
            f"no file at {str(path.resolve())!r}",
            f"Check the path (relative paths start at the working directory) or pass {ACCEPTED_FORMS}.",
        )
    if not path.is_file():
        raise DataLoadError(data_url, f"{str(path)!r} is not a file", "Point it at a CSV file.")
    return _parse_csv(data_url, path)


def _read_http(data_url: str) -> pd.DataFrame:
    # S310 below: read_dataset only routes http(s):// URLs here, so urllib's
    # file:// and custom-scheme handlers are unreachable.
    request = urllib.request.Request(  # noqa: S310
        data_url, headers={"User-Agent": "zenml-sample-training-pipeline"}
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:
        raise DataLoadError(
            data_url,
            f"the server answered HTTP {exc.code} {exc.reason}",
            "Check that the URL is right and publicly readable.",
        ) from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataLoadError(
            data_url,
            f"the URL is unreachable ({reason})",
            "Check the host name and that the runner has network access to it.",
        ) from exc
    return _parse_csv(data_url, io.BytesIO(body))


def _read_fsspec(data_url: str, scheme: str) -> pd.DataFrame:
    package = FSSPEC_PACKAGES.get(scheme)
    try:
        # Optional dependency: only object-store URLs need it.
        fsspec: Any = importlib.import_module("fsspec")
    except ImportError as exc:
        needed = f"fsspec {package}" if package else "fsspec"
        raise DataLoadError(
            data_url,
            f"{scheme}:// URLs are read through fsspec, which is not installed",
            f"Install it: pip install {needed}"
            + ("" if package else f" (plus the filesystem package for {scheme}://)")
            + ".",
        ) from exc
    try:
        fsspec.get_filesystem_class(scheme)
    except ValueError as exc:
        raise DataLoadError(
            data_url, f"unsupported URL scheme {scheme!r}", f"Pass {ACCEPTED_FORMS}."
        ) from exc
    except ImportError as exc:
        raise DataLoadError(
            data_url,
            f"the filesystem package for {scheme}:// is not installed",
            f"Install it: pip install {package}." if package else str(exc),
        ) from exc
    try:
        with fsspec.open(data_url, mode="rb") as handle:
            return _parse_csv(data_url, handle)
    except DataLoadError:
        raise
    except FileNotFoundError as exc:
        raise DataLoadError(data_url, "no object at that URL", "Check the bucket and the key.") from exc
    except Exception as exc:
        # Object stores fail in many backend-specific ways (credentials,
        # permissions, network); all of them mean the URL cannot be read.
        raise DataLoadError(
            data_url,
            f"reading it failed ({type(exc).__name__}: {exc})",
            "Check the URL and that the runner has credentials for the store.",
        ) from exc


def _parse_csv(data_url: str, source: Path | IO[bytes]) -> pd.DataFrame:
    try:
        frame: pd.DataFrame = pd.read_csv(source)
    except pd.errors.EmptyDataError as exc:
        raise DataLoadError(data_url, "the file is empty", "Pass a non-empty CSV.") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise DataLoadError(
            data_url,
            f"it is not a readable CSV ({type(exc).__name__}: {exc})",
            "Pass a UTF-8, comma-separated file with a header row.",
        ) from exc
    return frame


# -------------------------------------------------------------- validation


def validate_dataset(frame: pd.DataFrame, data_url: str) -> pd.DataFrame:
    """Checks that `frame` can train a binary classifier; returns it unchanged."""
    if TARGET_COLUMN not in frame.columns:
        shown = ", ".join(repr(str(c)) for c in list(frame.columns)[:10])
        raise DataLoadError(
            data_url,
            f"no {TARGET_COLUMN!r} column (columns: {shown or 'none'})",
            f"Name the label column {TARGET_COLUMN!r}.",
        )
    features = frame.drop(columns=[TARGET_COLUMN])
    if features.shape[1] == 0:
        raise DataLoadError(data_url, "there are no feature columns", "Add at least one feature column.")
    target = frame[TARGET_COLUMN]
    if target.isna().any():
        raise DataLoadError(
            data_url,
            f"{int(target.isna().sum())} rows have no {TARGET_COLUMN!r} value",
            "Drop or label those rows.",
        )
    counts = target.value_counts()
    if len(counts) != 2:
        shown = ", ".join(repr(v) for v in list(counts.index)[:5])
        raise DataLoadError(
            data_url,
            f"{TARGET_COLUMN!r} must have exactly 2 classes, found {len(counts)} ({shown})",
            "This pipeline trains a binary classifier.",
        )
    if int(counts.min()) < MIN_ROWS_PER_CLASS:
        raise DataLoadError(
            data_url,
            f"class {counts.idxmin()!r} has only {int(counts.min())} rows",
            f"Each class needs at least {MIN_ROWS_PER_CLASS} rows so that both "
            "the train and the test split contain it.",
        )
    non_numeric = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise DataLoadError(
            data_url,
            f"non-numeric feature columns: {', '.join(non_numeric[:10])}",
            "Encode them as numbers or drop them.",
        )
    missing = [str(c) for c in features.columns if features[c].isna().any()]
    if missing:
        raise DataLoadError(
            data_url,
            f"missing values in feature columns: {', '.join(missing[:10])}",
            "Fill or drop them.",
        )
    return frame


def check_model_type(model_type: str) -> str:
    """Returns `model_type` if it is one of `MODEL_TYPES`."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"Unknown model_type {model_type!r}: choose one of {', '.join(MODEL_TYPES)}.")
    return model_type


def build_model(model_type: str) -> BaseEstimator:
    """An unfitted classifier; seeded so that reruns give the same metrics."""
    check_model_type(model_type)
    if model_type == "random_forest":
        return RandomForestClassifier(n_estimators=100, random_state=SEED)
    if model_type == "gradient_boosting":
        return GradientBoostingClassifier(random_state=SEED)
    # Unscaled features make lbfgs converge slowly or not at all.
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=SEED))


def compute_metrics(model: BaseEstimator, x_test: pd.DataFrame, y_test: pd.Series) -> dict[str, float]:
    """Accuracy, F1 and ROC AUC of `model` on the held-out split."""
    predicted = model.predict(x_test)
    scores = model.predict_proba(x_test)[:, 1]
    return {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1": float(f1_score(y_test, predicted)),
        "roc_auc": float(roc_auc_score(y_test, scores)),
    }


# ------------------------------------------------------------ artifacts


class TableMaterializer(BaseMaterializer):
    """Stores the steps' DataFrames and Series as CSV and reads them back
    exactly as they were written.

    ZenML's own pandas materializer without `pyarrow` (a large package this
    sample does not otherwise need) logs an install notice each time it is
    used and reads its CSV back with `parse_dates=True`, which makes pandas
    warn about the index and can turn a column into dates.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (pd.DataFrame, pd.Series)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA
    FILENAME: ClassVar[str] = "table.csv"

    def save(self, data: pd.DataFrame | pd.Series) -> None:
        with self.artifact_store.open(self._path, "wb") as file:
            data.to_csv(file)

    def load(self, data_type: type[Any]) -> pd.DataFrame | pd.Series:
        with self.artifact_store.open(self._path, "rb") as file:
            # round_trip: floats read back bit for bit as written.
            frame = pd.read_csv(file, index_col=0, float_precision="round_trip")
        if issubclass(data_type, pd.Series):
            return frame.iloc[:, 0]
        return frame

    @property
    def _path(self) -> str:
        return f"{self.uri}/{self.FILENAME}"


# ------------------------------------------------------------------- steps


@step(output_materializers=TableMaterializer)
def load_data(data_url: str) -> Annotated[pd.DataFrame, "dataset"]:
    """Loads the CSV (or bundled dataset) at `data_url` and validates it."""
    frame = validate_dataset(read_dataset(data_url), data_url)
    logger.info("Loaded %d rows x %d columns from %s", *frame.shape, data_url)
    return frame


@step(output_materializers=TableMaterializer)
def preprocess(
    data: pd.DataFrame,
) -> tuple[
    Annotated[pd.DataFrame, "x_train"],
    Annotated[pd.DataFrame, "x_test"],
    Annotated[pd.Series, "y_train"],
    Annotated[pd.Series, "y_test"],
]:
    """Encodes the target as 0/1 and makes a stratified, seeded split."""
    # The larger label is the positive class, so 0/1 targets keep their
    # meaning and F1 is computed for label 1.
    negative, positive = sorted(data[TARGET_COLUMN].unique())
    y = (data[TARGET_COLUMN] == positive).astype("int64").rename(TARGET_COLUMN)
    x = data.drop(columns=[TARGET_COLUMN])
    logger.info("Positive class: %s (negative: %s)", positive, negative)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SEED, stratify=y
    )
    return x_train, x_test, y_train, y_test


@step
def train_model(
    x_train: pd.DataFrame, y_train: pd.Series, model_type: str
) -> Annotated[BaseEstimator, "model"]:
    """Fits the classifier named by `model_type`."""
    model = build_model(model_type)
    model.fit(x_train, y_train)
    return model


@step
def evaluate(
    model: BaseEstimator, x_test: pd.DataFrame, y_test: pd.Series
) -> Annotated[dict[str, float], "metrics"]:
    """Scores the model and records the scores on the pipeline run and on
    the model version."""
    metrics = compute_metrics(model, x_test, y_test)
    logger.info("Metrics: %s", metrics)
    # A bare log_metadata() would attach to this step only. The run is what
    # the action and the dashboard's run view read; the model version is
    # what a baseline `model:NAME@STAGE` (and the Model Control Plane) read.
    scores: dict[str, MetadataType] = {**metrics}
    log_metadata(metadata=scores, run_id_name_or_prefix=get_step_context().pipeline_run.id)
    log_metadata(metadata=scores, infer_model=True)
    return metrics


# ---------------------------------------------------------------- pipeline


# Caching is off: the same data_url can serve new data, and a cached evaluate
# step would not log the metrics on the new run.
# Each run makes a new version of the model; promoting one (for example to
# `production`) makes it the baseline of `compare-to: model:NAME@production`.
@pipeline(
    enable_cache=False,
    model=Model(name=MODEL_NAME, description="Binary classifier trained by the sample pipeline."),
)
def training_pipeline(data_url: str = DEFAULT_DATA_URL, model_type: str = "random_forest") -> None:
    """Trains and evaluates a binary classifier on the CSV at `data_url`."""
    # Failing here, before a run exists, beats failing after loading the data.
    check_model_type(model_type)
    data = load_data(data_url=data_url)
    x_train, x_test, y_train, y_test = preprocess(data=data)
    model = train_model(x_train=x_train, y_train=y_train, model_type=model_type)
    evaluate(model=model, x_test=x_test, y_test=y_test)


if __name__ == "__main__":
    training_pipeline()
