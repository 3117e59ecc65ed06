"""The MLflow store, loggers bound to it, and runs read back."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest
import pytorch_lightning as pl_lightning
import torch
from mlflow import MlflowClient

import utilities
import utilities.tracking as tracking
from utilities.synthetic import fixed_pair_loader
from utilities.tracking import (
    get_mlflow_logger,
    get_tracking_uri,
    load_experiment_runs,
    training_logs_to_df,
)
from utilities.training import make_trainer

REPO_ROOT = Path(utilities.__file__).resolve().parents[1]


def sqlite_in(folder: Path) -> str:
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module's runs (creating one costs a schema migration)."""
    folder = tmp_path_factory.mktemp("mlflow-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", str(folder))
        yield folder


# ---------------------------------------------------------------- get_tracking_uri


def test_a_folder_becomes_a_sqlite_database_inside_it(tmp_path, monkeypatch):
    folder = tmp_path / "new" / "store"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(folder))
    assert get_tracking_uri() == sqlite_in(folder) == f"sqlite:///{folder}/mlflow.db"
    assert folder.is_dir()


def test_the_variable_is_read_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "a"))
    first = get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "b"))
    assert (first, get_tracking_uri()) == (sqlite_in(tmp_path / "a"), sqlite_in(tmp_path / "b"))


@pytest.mark.parametrize("spelling", ["as_uri", "file:", "file://"])
def test_file_uris_name_the_same_folder(tmp_path, monkeypatch, spelling):
    folder = tmp_path / "with space" / "store"
    uri = {"as_uri": folder.as_uri(), "file:": f"file:{folder}", "file://": f"file://{folder}"}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri[spelling])
    assert get_tracking_uri() == sqlite_in(folder)
    assert folder.is_dir()


def test_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "~/runs")
    assert get_tracking_uri() == sqlite_in(tmp_path / "runs")


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:5000", "https://mlflow.example.org/", "sqlite:////tmp/elsewhere.db"]
)
def test_other_uris_pass_through(tmp_path, monkeypatch, uri):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert get_tracking_uri() == uri
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("unset", ["delete", "empty"])
def test_default_is_the_project_store(monkeypatch, unset):
    if unset == "delete":
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    database = REPO_ROOT / "mlruns" / "mlflow.db"
    existed = database.exists()
    assert get_tracking_uri() == f"sqlite:///{database}"
    assert database.exists() == existed  # naming the store creates no database


# ---------------------------------------------------------------- loggers and runs


def make_run(name: str, tags: dict[str, str], params: dict, losses: list[float], status="success"):
    logger = get_mlflow_logger("runs-table", run_name=name, tags=tags)
    logger.log_hyperparams(params)
    for step, loss in enumerate(losses):
        logger.log_metrics({"val_loss": loss, "epoch": step}, step=step)
    if status is not None:
        logger.finalize(status)
    time.sleep(0.01)  # distinct start times
    return logger.run_id


def test_logger_writes_into_the_configured_store(store):
    logger = get_mlflow_logger("where-runs-go", run_name="r")
    logger.log_metrics({"x": 1.0}, step=0)
    logger.finalize("success")
    assert logger._tracking_uri == sqlite_in(store)
    assert (store / "mlflow.db").is_file()
    client = MlflowClient(sqlite_in(store))
    experiment = client.get_experiment_by_name("where-runs-go")
    assert experiment.artifact_location == (store / "artifacts").as_uri()
    run = client.get_run(logger.run_id)
    assert run.info.run_name == "r" and run.data.metrics == {"x": 1.0}


def test_load_experiment_runs(store):
    first = make_run("a", {"model": "mlp"}, {"lr": 0.1, "dim": 4}, [0.9, 0.5, 0.7])
    second = make_run("b", {"model": "dot"}, {"lr": 0.01, "dim": 8}, [0.3, 0.2])
    make_run("still running", {"model": "mlp"}, {"lr": 1}, [0.1], status=None)
    make_run("crashed", {"model": "mlp"}, {"lr": 2}, [0.1], status="failed")

    runs = load_experiment_runs("runs-table")
    assert runs.get_column("run_id").to_list() == [first, second]  # oldest first, finished only
    assert runs.get_column("run_name").to_list() == ["a", "b"]
    assert set(runs.get_column("status")) == {"FINISHED"}
    assert runs.get_column("lr").to_list() == ["0.1", "0.01"]  # params stay MLflow strings
    assert runs.get_column("dim").to_list() == ["4", "8"]
    assert runs.get_column("val_loss").to_list() == [0.7, 0.2]  # the last value logged
    assert runs.schema["val_loss"] == pl.Float64
    assert runs.get_column("model").to_list() == ["mlp", "dot"]  # our tags, not MLflow's own
    assert not [column for column in runs.columns if column.startswith("mlflow.")]

    mlp = load_experiment_runs("runs-table", tags={"model": "mlp"})
    assert mlp.get_column("run_id").to_list() == [first]
    both_tags = load_experiment_runs("runs-table", tags={"model": "dot", "absent": "x"})
    assert both_tags.height == 0


def test_unknown_experiment(store):
    with pytest.raises(ValueError, match="'no-such-experiment'") as caught:
        load_experiment_runs("no-such-experiment")
    assert sqlite_in(store) in str(caught.value)


class ValLossByHand(pl_lightning.Callback):
    """The validation loss over the whole validation set, computed after each epoch by hand."""

    def __init__(self, val_loader):
        self.val_loader, self.losses = val_loader, []

    def on_train_epoch_end(self, trainer, module):
        with torch.no_grad():
            errors = torch.cat([(module(a, b) - t) ** 2 for a, b, t in self.val_loader])
        self.losses.append(errors.mean().item())


def test_training_logs_to_df_matches_what_was_logged(store, tmp_path, pair_regressor_cls):
    train = fixed_pair_loader(100, 4, batch_size=32, seed=0)
    val = fixed_pair_loader(50, 4, batch_size=16, seed=1)
    module = pair_regressor_cls(dim=4, lr=0.1)
    by_hand = ValLossByHand(val)
    logger = get_mlflow_logger("logs-table", run_name="short")
    trainer = make_trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=logger,
        callbacks=[by_hand],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, train, val)
    trainer.test(module, val, verbose=False)

    logs = training_logs_to_df(logger.run_id)
    assert logs.columns == ["epoch", "step", "loss", "dataset"]
    assert dict(logs.schema) == {
        "epoch": pl.Int64,
        "step": pl.Int64,
        "loss": pl.Float64,
        "dataset": pl.String,
    }
    train_logs = logs.filter(dataset="train")
    val_logs = logs.filter(dataset="val")
    assert train_logs.get_column("epoch").to_list() == [0, 1, 2]
    assert val_logs.get_column("epoch").to_list() == [0, 1, 2]
    # one optimizer step per batch: the epoch-end logs sit at steps 4, 8, 12 minus one
    assert train_logs.get_column("step").to_list() == [3, 7, 11]

    # train_loss: Lightning's batch-size weighted mean of the losses the steps returned
    expected_train = [
        sum(loss * size for loss, size in epoch) / sum(size for _, size in epoch)
        for epoch in module.train_batches
    ]
    assert train_logs.get_column("loss").to_list() == pytest.approx(expected_train, rel=1e-5)
    assert val_logs.get_column("loss").to_list() == pytest.approx(by_hand.losses, rel=1e-5)
    assert expected_train[2] < expected_train[0]  # it did learn

    test_logs = logs.filter(dataset="test")
    assert test_logs.height == 1
    assert test_logs.item(0, "epoch") == 3
    assert test_logs.item(0, "loss") == pytest.approx(by_hand.losses[-1], rel=1e-5)

    runs = load_experiment_runs("logs-table")
    assert runs.get_column("run_id").to_list() == [logger.run_id]
    assert runs.get_column("lr").to_list() == ["0.1"]  # save_hyperparameters reached MLflow
    assert runs.item(0, "val_loss") == pytest.approx(by_hand.losses[-1], rel=1e-5)


def test_store_of_an_installed_copy_is_found_from_the_working_directory(tmp_path, monkeypatch):
    """Outside a checkout, the store is `mlruns/` beside the nearest pyproject.toml above."""
    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path / "site-packages")
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    monkeypatch.chdir(project / "notebooks")
    assert tracking.get_store_dir() == project / "mlruns"
    monkeypatch.chdir(tmp_path)
    assert tracking.get_store_dir() == tmp_path / "mlruns"
