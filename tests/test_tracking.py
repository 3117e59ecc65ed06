"""The MLflow store, what `fit` records in it, and runs read back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import torch
from mlflow import MlflowClient
from scale_case import Scale, fit_scale

import utilities
import utilities.tracking as tracking
from utilities.models import DotProductMLP
from utilities.splits import TensorBatchLoader
from utilities.synthetic import make_vector_pairs
from utilities.tracking import get_client, get_tracking_uri, training_logs_to_df
from utilities.training import (
    DivergenceError,
    EarlyStopping,
    Fit,
    describe_model,
    evaluate,
    fit,
    predict,
)

REPO_ROOT = Path(utilities.__file__).resolve().parents[1]


def sqlite_in(folder: Path) -> str:
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


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


# ---------------------------------------------------------------- what `fit` records


def metric_steps(run_id: str, key: str) -> dict[int, float]:
    history = MlflowClient(get_tracking_uri()).get_metric_history(run_id, key)
    return {metric.step: metric.value for metric in sorted(history, key=lambda m: m.step)}


@pytest.fixture(scope="module")
def recorded() -> tuple[Fit, tuple[torch.Tensor, ...]]:
    """A tracked fit of a `DotProductMLP` in the session's store, and its validation pairs."""
    generator = torch.Generator().manual_seed(0)
    train = make_vector_pairs(512, 3, generator=generator)
    val = make_vector_pairs(256, 3, generator=generator)
    torch.manual_seed(0)
    result = fit(
        DotProductMLP(3, [8]), train, val,
        epochs=3, lr=0.01, batch_size=64, seed=3, early_stopping=EarlyStopping(patience=2),
        experiment="recorded", params={"data": "pairs"}, accelerator="cpu", save_weights=True,
    )  # fmt: skip
    return result, val


def test_the_run_has_its_settings_as_params(recorded):
    result, _ = recorded
    run = MlflowClient(get_tracking_uri()).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "DotProductMLP · lr 0.01 · wd 0 · seed 3"
    assert run.data.params == {
        "lr": "0.01",
        "weight_decay": "0.0",
        "optimizer": "adam",
        "seed": "3",
        "batch_size": "64",
        "shuffle": "True",
        "epochs": "3",
        "schedule": "None",
        "early_stopping": "EarlyStopping(patience=2, min_epochs=0)",
        "model": "DotProductMLP",
        "data": "pairs",
    }


def test_the_run_has_one_step_per_epoch_and_the_final_metrics_at_step_0(recorded):
    result, _ = recorded
    history = result.history
    for key in ("train_loss", "val_loss"):
        logged = metric_steps(result.run_id, key)
        assert logged == dict(zip(history["epoch"], history[key], strict=True))
        assert metric_steps(result.run_id, f"final_{key}") == {0: result.metrics[key]}
    for key in ("best_epoch", "epochs_run", "train_seconds", "n_params"):
        assert metric_steps(result.run_id, key) == {0: result.metrics[key]}
    assert result.metrics["n_params"] == (6 * 8 + 8) + (8 + 1)


def test_training_logs_to_df_reads_back_the_history(recorded):
    result, _ = recorded
    logs = training_logs_to_df(result.run_id)
    assert dict(logs.schema) == {"epoch": pl.Int64, "loss": pl.Float64, "dataset": pl.String}
    long = result.history.unpivot(
        index="epoch", on=["train_loss", "val_loss"], variable_name="dataset", value_name="loss"
    ).with_columns(pl.col("dataset").str.strip_suffix("_loss"))
    assert logs.equals(long.select(logs.columns).sort("dataset", "epoch"))


def test_the_experiment_opens_on_its_runs_in_mlflow_ui(recorded):
    result, _ = recorded
    client = MlflowClient(get_tracking_uri())
    experiment = client.get_experiment(client.get_run(result.run_id).info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_an_experiment_made_without_the_kind_gets_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "store"))
    client = MlflowClient(get_tracking_uri())
    made = client.create_experiment("older")
    assert "mlflow.experimentKind" not in client.get_experiment(made).tags
    assert tracking.get_experiment_id(client, "older") == made
    assert client.get_experiment(made).tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_fit_saves_no_weights_unless_asked():
    pairs = make_vector_pairs(64, 3, generator=torch.Generator().manual_seed(0))
    result = fit(DotProductMLP(3, [4]), pairs, epochs=1, lr=0.01, experiment="no weights")
    assert MlflowClient(get_tracking_uri()).list_artifacts(result.run_id) == []


def test_the_weights_load_back_into_an_identical_model(recorded, tmp_path):
    result, val = recorded
    client = MlflowClient(get_tracking_uri())
    assert [a.path for a in client.list_artifacts(result.run_id, "model")] == [
        "model/state_dict.pt"
    ]
    path = client.download_artifacts(result.run_id, "model/state_dict.pt", str(tmp_path))
    loaded = DotProductMLP(3, [8])
    loaded.load_state_dict(torch.load(path, weights_only=True))
    trained = result.model.state_dict()
    assert all(torch.equal(tensor, trained[name]) for name, tensor in loaded.state_dict().items())
    assert torch.equal(predict(loaded, *val[:2]), predict(result.model, *val[:2]))


def test_fit_log_adds_a_metric_to_the_finished_run(recorded):
    result, val = recorded
    mse = evaluate(result.model, val)
    result.log(test_mse=mse)
    assert result.metrics["test_mse"] == mse
    run = MlflowClient(get_tracking_uri()).get_run(result.run_id)
    assert run.data.metrics["test_mse"] == mse and run.info.status == "FINISHED"


def test_a_diverged_run_is_failed_and_the_others_finished():
    """A finished, a failed and another finished run, with their params as MLflow strings."""
    first = fit_scale(experiment="runs-table", params={"note": "first"})
    with pytest.raises(DivergenceError):
        fit_scale(experiment="runs-table", lr=1e30)  # w overflows, the loss becomes inf
    second = fit_scale(experiment="runs-table", seed=1, lr=0.125)
    client = get_client()
    runs = client.search_runs(
        [client.get_experiment_by_name("runs-table").experiment_id],
        order_by=["attributes.start_time ASC"],
    )
    assert [run.info.status for run in runs] == ["FINISHED", "FAILED", "FINISHED"]
    assert [runs[0].info.run_id, runs[2].info.run_id] == [first.run_id, second.run_id]
    assert [runs[0].data.params["lr"], runs[2].data.params["lr"]] == ["0.25", "0.125"]
    assert runs[0].data.params["note"] == "first" and "note" not in runs[2].data.params
    assert runs[2].info.run_name == "Scale · lr 0.125 · wd 0 · seed 1"
    assert runs[2].data.metrics["final_train_loss"] == second.metrics["train_loss"]


def test_an_early_stopped_runs_summary_has_the_best_val_loss():
    """MLflow summarises a metric by its value at the highest step: the epochs' `val_loss`
    series ends at the last epoch, so the kept (best) one is `final_val_loss`."""
    result = fit_scale(early_stopping=EarlyStopping(patience=1), experiment="early-stopped")
    assert result.metrics["best_epoch"] == 2 and result.metrics["epochs_run"] == 3
    run = MlflowClient(get_tracking_uri()).get_run(result.run_id)
    assert run.data.metrics["final_val_loss"] == result.metrics["val_loss"]
    assert run.data.metrics["val_loss"] == result.history.item(-1, "val_loss")
    assert run.data.metrics["val_loss"] > run.data.metrics["final_val_loss"]


def test_default_run_names_tell_settings_apart():
    settings = [(0.01, 0.0, 0), (0.01, 0.0, 1), (0.1, 0.0, 0), (0.01, 1e-4, 0)]
    names = [describe_model(Scale(), lr, wd, seed) for lr, wd, seed in settings]
    assert names[1] == "Scale · lr 0.01 · wd 0 · seed 1"
    assert len(set(names)) == len(names)
    runs = [fit_scale(experiment="names", seed=seed, epochs=1) for seed in (0, 1)]
    client = MlflowClient(get_tracking_uri())
    run_names = [client.get_run(run.run_id).info.run_name for run in runs]
    assert run_names == ["Scale · lr 0.25 · wd 0 · seed 0", "Scale · lr 0.25 · wd 0 · seed 1"]


def test_without_an_experiment_nothing_is_recorded(tmp_path, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(store))
    result = fit_scale()
    result.log(test_mse=0.5)
    assert result.run_id is None and result.record is None
    assert result.metrics["test_mse"] == 0.5
    assert not store.exists()  # the store was never even opened


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


# ---------------------------------------------------------------- what fit records


def test_a_loader_that_batches_256_is_recorded_with_batch_size_256(store):
    pairs = make_vector_pairs(1024, 4, generator=torch.Generator().manual_seed(0))
    loader = TensorBatchLoader(*pairs, batch_size=256, shuffle=True)
    result = fit(DotProductMLP(4, [8]), loader, epochs=1, lr=0.01, experiment="batching")
    params = MlflowClient(get_tracking_uri()).get_run(result.run_id).data.params
    assert (params["batch_size"], params["shuffle"]) == ("256", "True")


def test_fit_leaves_the_callers_global_generator_as_it_found_it(store):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    fit_scale(seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_training_logs_to_df_holds_the_same_losses_as_the_fits_history(store):
    result = fit_scale(experiment="logs")
    logs = training_logs_to_df(run_id=result.run_id)
    for dataset in ("train", "val"):
        recorded = logs.filter(dataset=dataset).sort("epoch")
        assert recorded["epoch"].to_list() == result.history["epoch"].to_list()
        assert recorded["loss"].to_list() == pytest.approx(result.history[f"{dataset}_loss"])


def test_processes_writing_to_one_new_store_at_once_lose_no_run(store):
    """Notebooks run side by side share one store: its creation and every run must survive."""
    script = Path(__file__).with_name("concurrent_writer.py")
    writers = [
        subprocess.Popen([sys.executable, str(script), tag, "8"], cwd=script.parent)
        for tag in ("a", "b", "c")
    ]
    assert [writer.wait(timeout=300) for writer in writers] == [0, 0, 0]
    client = MlflowClient(get_tracking_uri())
    experiment = client.get_experiment_by_name("concurrent")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert sorted(run.info.run_name for run in runs) == sorted(
        f"{tag} {i}" for tag in "abc" for i in range(8)
    )
    assert {run.info.status for run in runs} == {"FINISHED"}
