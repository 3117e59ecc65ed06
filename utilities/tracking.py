"""The project's MLflow store, Lightning loggers bound to it, and runs read back as frames."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import polars as pl
from mlflow import MlflowClient
from pytorch_lightning.loggers import MLFlowLogger

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("train", "val", "test")

for _name in ("mlflow", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# "Experiment with name ... not found. Creating it." is news only on a fresh store.
logging.getLogger("pytorch_lightning.loggers.mlflow").setLevel(logging.ERROR)


def get_store_dir() -> Path:
    """The folder of the project's own store: `mlruns/` at the repository root.

    The root is where this package lies in a checkout (an editable install); for a copy
    installed into site-packages, the nearest folder above the working directory with a
    `pyproject.toml`, else the working directory.
    """
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / "mlruns"
    here = Path.cwd()
    root = next((p for p in (here, *here.parents) if (p / "pyproject.toml").is_file()), here)
    return root / "mlruns"


def get_tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set (read at call time), else the project's SQLite store.

    A plain folder (or `file:` URI) becomes a SQLite database inside it: MLflow 3 no longer
    accepts the file store.
    """
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    if not configured:
        return sqlite_uri(get_store_dir())
    scheme = urlparse(configured).scheme
    if scheme == "file":
        return sqlite_uri(Path(url2pathname(urlparse(configured).path)))
    if scheme == "" or len(scheme) == 1:  # a plain path; one letter is a Windows drive
        return sqlite_uri(Path(configured).expanduser())
    return configured


def sqlite_uri(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def get_artifact_location(tracking_uri: str) -> str | None:
    """Beside a SQLite database: its folder's `artifacts/`; elsewhere the server decides."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()


def get_mlflow_logger(
    experiment_name: str, *, run_name: str | None = None, tags: dict[str, str] | None = None
) -> MLFlowLogger:
    """A Lightning `MLFlowLogger` writing to `get_tracking_uri()`'s store."""
    tracking_uri = get_tracking_uri()
    return MLFlowLogger(
        experiment_name=experiment_name,
        run_name=run_name,
        tracking_uri=tracking_uri,
        tags=tags,
        artifact_location=get_artifact_location(tracking_uri),
    )


def get_client() -> MlflowClient:
    return MlflowClient(tracking_uri=get_tracking_uri())


def log_run_metrics(run_id: str, metrics: dict[str, float]) -> None:
    """Add final metrics (e.g. evaluations after training) to a run, finished or not."""
    client = get_client()
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))


def training_logs_to_df(run_id: str) -> pl.DataFrame:
    """A run's `<dataset>_loss` histories as one long frame: `epoch`, `step`, `loss`, `dataset`.

    `epoch` comes from the `epoch` metric Lightning logs beside every step.
    """
    client = get_client()
    epochs = metric_history(client, run_id, "epoch").select(
        "step", pl.col("value").cast(pl.Int64).alias("epoch")
    )
    frames = [
        metric_history(client, run_id, f"{dataset}_loss").with_columns(dataset=pl.lit(dataset))
        for dataset in DATASETS
    ]
    losses = pl.concat(frames).rename({"value": "loss"})
    logs = losses.join(epochs.unique("step"), on="step", how="left")
    return logs.select("epoch", "step", "loss", "dataset").sort("dataset", "step")


def metric_history(client: MlflowClient, run_id: str, key: str) -> pl.DataFrame:
    """One metric's history as `step`, `value`."""
    history = client.get_metric_history(run_id, key)
    return pl.DataFrame(
        {"step": [m.step for m in history], "value": [m.value for m in history]},
        schema={"step": pl.Int64, "value": pl.Float64},
    )


def load_experiment_runs(
    experiment_name: str, *, tags: dict[str, str] | None = None
) -> pl.DataFrame:
    """Every finished run of an experiment (with these tags): id, name, tags, params, metrics.

    Params are MLflow strings; metrics are floats. Oldest run first.
    """
    client = get_client()
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ValueError(f"No MLflow experiment named {experiment_name!r} in {get_tracking_uri()}.")
    conditions = ["attributes.status = 'FINISHED'"]
    conditions += [f"tags.`{key}` = '{value}'" for key, value in (tags or {}).items()]
    runs = client.search_runs(
        [experiment.experiment_id],
        " and ".join(conditions),
        max_results=50_000,
        order_by=["attributes.start_time ASC"],
    )
    return pl.DataFrame([run_to_row(run) for run in runs], infer_schema_length=None)


def run_to_row(run) -> dict[str, object]:
    """Id, name, status, the tags we set (not MLflow's own), params and final metrics."""
    tags = {key: value for key, value in run.data.tags.items() if not key.startswith("mlflow.")}
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        **tags,
        **run.data.params,
        **run.data.metrics,
    }
