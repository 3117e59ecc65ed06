"""The project's MLflow store, Lightning loggers bound to it, and runs read back as frames."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import polars as pl
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The tag MLflow 3's UI reads to open an experiment in its "Model training" view.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"

for _name in ("mlflow", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)


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
    """The SQLite tracking URI of the store in `folder` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def get_artifact_location(tracking_uri: str) -> str | None:
    """Beside a SQLite database: its folder's `artifacts/`; elsewhere the server decides."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()


def get_client() -> MlflowClient:
    """A client of `get_tracking_uri()`'s store (a new SQLite store created first, once)."""
    uri = get_tracking_uri()
    if uri.startswith("sqlite:///"):
        create_store_once(uri)
    return MlflowClient(tracking_uri=uri)


@functools.cache
def create_store_once(uri: str) -> None:
    """Create (or migrate) a SQLite store under a file lock: processes that open a new store at
    the same time would otherwise race through MLflow's schema migrations and fail."""
    database = Path(uri.removeprefix("sqlite:///"))
    with open(database.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def get_experiment_id(client: MlflowClient, name: str) -> str:
    """The id of the experiment called `name`, created (artifacts beside the store) if new, and
    marked as model training so that `mlflow ui` opens it on its runs, not on GenAI traces."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:  # made by an older version
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        return experiment.experiment_id
    location = get_artifact_location(client.tracking_uri)
    try:
        tags = {EXPERIMENT_KIND: MODEL_TRAINING}
        return client.create_experiment(name, artifact_location=location, tags=tags)
    except MlflowException:  # another process created it since we looked
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


@dataclass
class RunRecord:
    """One training run written to MLflow: started with its settings, finished with its
    per-epoch history, final metrics and weights. Written, never read back."""

    client: MlflowClient
    run_id: str
    name: str
    experiment: str

    @classmethod
    def start(cls, experiment: str | None, name: str, params: dict) -> RunRecord | None:
        """A new run named `name` in `experiment` (None: nothing is recorded)."""
        if experiment is None:
            return None
        client = get_client()
        run = client.create_run(get_experiment_id(client, experiment), run_name=name)
        logged = [Param(key, str(value)) for key, value in params.items()]
        client.log_batch(run.info.run_id, params=logged)
        return cls(client, run.info.run_id, name, experiment)

    def describe(self) -> str:
        """How an error names this run."""
        return f"MLflow run {self.name!r} ({self.run_id}) of experiment {self.experiment!r}"

    def log_history(self, rows: list[dict[str, float]]) -> None:
        """Per-epoch metrics, one MLflow step per epoch."""
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, int(row["epoch"]))
            for row in rows
            for key, value in row.items()
            if key != "epoch" and value is not None
        ]
        for start in range(0, len(metrics), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def log_final(self, metrics: dict[str, float]) -> None:
        """Final numbers of the run (step 0). `train_loss` and `val_loss` become `final_train_loss`
        and `final_val_loss` (those of the returned weights: the best epoch's under early
        stopping), so that MLflow's `train_loss`/`val_loss` stay the per-epoch series."""
        now = int(time.time() * 1000)
        logged = [
            Metric(FINAL_KEYS.get(key, key), float(value), now, 0) for key, value in metrics.items()
        ]
        self.client.log_batch(self.run_id, metrics=logged)

    def finish(self, history: pl.DataFrame, metrics: dict[str, float], model=None) -> None:
        """Log the history, the final metrics and (given a `model`) its weights as the artifact
        `model/state_dict.pt`; mark the run FINISHED."""
        self.log_history(history.to_dicts())
        self.log_final(metrics)
        if model is not None:
            with tempfile.TemporaryDirectory(prefix="dotlab-model-") as folder:
                path = Path(folder) / "state_dict.pt"
                torch.save(model.state_dict(), path)
                self.client.log_artifact(self.run_id, str(path), "model")
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self, rows: list[dict[str, float]]) -> None:
        """Keep the epochs that finished and mark the run FAILED (never raises)."""
        with contextlib.suppress(Exception):
            self.log_history(rows)
        with contextlib.suppress(Exception):
            self.client.set_terminated(self.run_id, "FAILED")


FINAL_KEYS = {"train_loss": "final_train_loss", "val_loss": "final_val_loss"}


def training_logs_to_df(run_id: str) -> pl.DataFrame:
    """A run's per-epoch `train_loss`/`val_loss` as one long frame: `epoch`, `loss`, `dataset`.

    Epochs are steps 1, 2, …; step 0 holds the final metric, not an epoch."""
    client = get_client()
    frames = [
        metric_history(client, run_id, f"{dataset}_loss").with_columns(dataset=pl.lit(dataset))
        for dataset in ("train", "val")
    ]
    epochs = pl.concat(frames).filter(pl.col("step") >= 1)
    return epochs.rename({"step": "epoch", "value": "loss"}).sort("dataset", "epoch")


def metric_history(client: MlflowClient, run_id: str, key: str) -> pl.DataFrame:
    """One metric's history as `step`, `value`."""
    history = client.get_metric_history(run_id, key)
    return pl.DataFrame(
        {"step": [m.step for m in history], "value": [m.value for m in history]},
        schema={"step": pl.Int64, "value": pl.Float64},
    )
