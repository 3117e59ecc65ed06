"""A fit whose loss turns NaN or infinite stops with an error naming the run and the step, and
its MLflow run ends FAILED."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from mlflow import MlflowClient
from torch import nn

from utilities.splits import TensorBatchLoader
from utilities.synthetic import fixed_pair_loader
from utilities.tracking import get_tracking_uri
from utilities.training import DivergenceError, StopOnDivergence, fit_tracked, make_trainer


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)  # Lightning's default_root_dir


def batches(n: int) -> TensorBatchLoader:
    return TensorBatchLoader(torch.zeros(n), batch_size=1)


class NanAt(pl.LightningModule):
    """Loss `(w - 1)^2`, plus `bad_value` (NaN by default) at step `bad_step`; counts steps."""

    def __init__(
        self,
        bad_step: int,
        bad_value: float = float("nan"),
        bad_val: bool = False,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.w = nn.Parameter(torch.zeros((), dtype=dtype))
        self.bad_step, self.bad_value, self.bad_val = bad_step, bad_value, bad_val
        self.steps_run = 0

    def training_step(self, batch, batch_idx):
        self.steps_run += 1
        loss = (self.w - 1) ** 2
        return loss + self.bad_value if self.global_step == self.bad_step else loss

    def validation_step(self, batch, batch_idx):
        loss = (self.w - 1) ** 2
        self.log("val_loss", loss * float("nan") if self.bad_val else loss)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def run_status(run_id: str) -> str:
    return MlflowClient(get_tracking_uri()).get_run(run_id).info.status


def only_run_id(experiment: str) -> str:
    client = MlflowClient(get_tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1
    return runs[0].info.run_id


def test_learning_rate_10_fails_the_run_naming_it_and_the_step(store, pair_regressor_cls):
    """Plain SGD at lr=10 on a linear model multiplies the error ~20x a step: inf, then NaN."""
    torch.manual_seed(0)
    model = pair_regressor_cls(dim=4, lr=10.0)
    train = fixed_pair_loader(640, 4, batch_size=64, seed=0)  # 10 steps an epoch
    with pytest.raises(DivergenceError) as caught:
        fit_tracked(model, train, experiment="diverging", max_epochs=20)
    run_id = only_run_id("diverging")
    run = MlflowClient(get_tracking_uri()).get_run(run_id)
    assert run.info.status == "FAILED"
    message = str(caught.value)
    assert run_id in message and repr(run.info.run_name) in message
    assert "experiment 'diverging'" in message
    losses = [loss for epoch in model.train_batches for loss, _ in epoch]
    first_bad = next(i for i, loss in enumerate(losses) if not torch.isfinite(torch.tensor(loss)))
    epoch, batch = divmod(first_bad, 10)
    assert f"at global step {first_bad} (epoch {epoch}, batch {batch})" in message
    assert first_bad > 5  # it did train a while before blowing up: the loss went inf, then NaN


def test_a_healthy_run_finishes(store, pair_regressor_cls):
    model = pair_regressor_cls(dim=4, lr=0.05)
    train = fixed_pair_loader(256, 4, batch_size=64, seed=0)
    run_id = fit_tracked(model, train, experiment="healthy", max_epochs=3)
    assert run_status(run_id) == "FINISHED"


@pytest.mark.parametrize(
    ("bad_step", "bad_value", "where"),
    [
        (13, float("nan"), "the training loss was nan at global step 13 (epoch 1, batch 3)"),
        (0, float("inf"), "the training loss was inf at global step 0 (epoch 0, batch 0)"),
        (29, -float("inf"), "the training loss was -inf at global step 29 (epoch 2, batch 9)"),
    ],
)
def test_the_first_bad_step_is_named_exactly(tmp_path, bad_step, bad_value, where):
    module = NanAt(bad_step, bad_value)
    trainer = make_trainer(max_epochs=5, default_root_dir=tmp_path)
    with pytest.raises(DivergenceError, match="no MLflow logger") as caught:
        trainer.fit(module, batches(10))
    assert where in str(caught.value)
    assert module.steps_run == 10 * (bad_step // 10 + 1)  # the default checks at epoch end


def test_checks_within_an_epoch_every_check_every_steps(tmp_path):
    module = NanAt(bad_step=10)
    trainer = make_trainer(
        max_epochs=1, default_root_dir=tmp_path, callbacks=[StopOnDivergence(check_every=4)]
    )
    with pytest.raises(DivergenceError, match="global step 10 "):
        trainer.fit(module, batches(100))
    assert module.steps_run == 12  # the check after steps 8..11, not the end of the epoch


def test_a_nan_validation_loss_fails_too(store):
    module = NanAt(bad_step=-1, bad_val=True)
    with pytest.raises(DivergenceError, match=r"val_loss was nan after global step 5 \(epoch 0\)"):
        fit_tracked(module, batches(5), batches(2), experiment="bad-val", max_epochs=3)
    assert run_status(only_run_id("bad-val")) == "FAILED"


def test_finite_losses_train_to_the_end(tmp_path):
    module = NanAt(bad_step=-1)
    make_trainer(max_epochs=3, default_root_dir=tmp_path).fit(module, batches(7), batches(2))
    assert module.steps_run == 21


def test_a_large_finite_float64_loss_is_not_divergence(tmp_path):
    module = NanAt(bad_step=3, bad_value=1e300, dtype=torch.float64)  # inf only in float32
    make_trainer(max_epochs=1, default_root_dir=tmp_path).fit(module, batches(5))
    assert module.steps_run == 5
