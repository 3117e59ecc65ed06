"""A fit whose training loss turns NaN or infinite stops with an error naming the run and the
step; its MLflow run ends FAILED and keeps the epochs that finished."""

from __future__ import annotations

import re

import pytest
import torch
from mlflow import MlflowClient
from torch import nn
from torch.nn import functional as F

from utilities.splits import TensorBatchLoader
from utilities.synthetic import make_vector_pairs
from utilities.tracking import get_tracking_uri
from utilities.training import (
    BatchGroups,
    DivergenceError,
    StopOnDivergence,
    Trainee,
    fit,
    make_trainer,
    torch_threads,
)

NEVER = 10**9
# 40 pairs in batches of 4: 10 optimiser steps an epoch, handed over in groups of 8 and 2.
PAIRS = make_vector_pairs(40, 2, generator=torch.Generator().manual_seed(0))


class BadAt(nn.Module):
    """A linear model of pairs whose prediction gets `bad_value` added on training forward pass
    `bad_call` (counted from 0; validation passes are not counted)."""

    def __init__(self, bad_call: int, bad_value: float = float("nan"), dtype=torch.float32):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(2, 1, dtype=dtype)
        self.bad_call, self.bad_value, self.calls = bad_call, bad_value, 0

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        prediction = self.linear((a * b).to(self.linear.weight.dtype)).squeeze(1)
        if not self.training:
            return prediction
        self.calls += 1
        return prediction + self.bad_value if self.calls - 1 == self.bad_call else prediction


def fit_pairs(model: nn.Module, **kwargs):
    return fit(model, PAIRS, PAIRS, epochs=5, lr=0.01, batch_size=4, accelerator="cpu", **kwargs)


def only_run(experiment: str):
    client = MlflowClient(get_tracking_uri())
    [run] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run


def metric_steps(run_id: str, key: str) -> dict[int, float]:
    history = MlflowClient(get_tracking_uri()).get_metric_history(run_id, key)
    return {metric.step: metric.value for metric in history}


@pytest.mark.parametrize(
    ("bad_call", "bad_value", "where"),
    [
        (13, float("nan"), "the training loss was nan by optimiser step 18 (epoch 2)"),
        (7, float("inf"), "the training loss was inf by optimiser step 8 (epoch 1)"),
        (29, -float("inf"), "the training loss was inf by optimiser step 30 (epoch 3)"),
    ],
)
def test_the_run_fails_naming_itself_and_the_group_of_the_first_bad_step(
    bad_call, bad_value, where
):
    """A step's loss is checked with its group's: step 14 (epoch 2, its 4th batch) is in the
    epoch's first group of 8, steps 11 to 18; after it the weights are NaN, so only a bad last
    step of a group shows as inf."""
    model = BadAt(bad_call, bad_value)
    experiment = f"diverging at {bad_call}"
    with pytest.raises(DivergenceError) as caught:
        fit_pairs(model, experiment=experiment, run_name="bad pairs")
    message = str(caught.value)
    assert where in message
    run = only_run(experiment)
    assert run.info.status == "FAILED" and run.info.run_name == "bad pairs"
    assert f"MLflow run 'bad pairs' ({run.info.run_id}) of experiment {experiment!r}" in message
    # the check runs at the end of the epoch, before it is recorded: finished epochs only
    finished = bad_call // 10
    assert model.calls == 10 * (finished + 1)
    assert sorted(metric_steps(run.info.run_id, "train_loss")) == list(range(1, finished + 1))


def test_the_failed_run_keeps_the_finished_epochs_as_a_healthy_fit_has_them():
    failed = BadAt(bad_call=25)  # in epoch 3
    with torch_threads(3):
        with pytest.raises(DivergenceError):
            fit_pairs(failed, experiment="kept", run_name="fails")
        assert torch.get_num_threads() == 3  # restored after the error too
    healthy = fit(
        BadAt(NEVER), PAIRS, PAIRS, epochs=2, lr=0.01, batch_size=4, accelerator="cpu"
    ).history
    run = only_run("kept")
    for key in ("train_loss", "val_loss"):
        logged = metric_steps(run.info.run_id, key)
        assert list(logged) == healthy.get_column("epoch").to_list() == [1, 2]
        assert list(logged.values()) == pytest.approx(healthy.get_column(key).to_list())
    assert MlflowClient(get_tracking_uri()).list_artifacts(run.info.run_id) == []  # no weights


def test_a_learning_rate_of_10_diverges_for_real():
    """Plain SGD at lr 10 on a linear model multiplies the error ~20x a step: within two epochs
    its square passes float32's 3.4e38 while the weights are still finite."""
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    x, y = torch.randn(640, 2), torch.randn(640, 1)
    with pytest.raises(DivergenceError) as caught:
        fit(model, (x, y), epochs=20, lr=10.0, optimizer="sgd", batch_size=64, accelerator="cpu")
    message = str(caught.value)
    assert "in fit 'Linear · lr 10 · wd 0 · seed 0' (not tracked)" in message
    assert re.search(
        r"the training loss was inf by optimiser step (8|10|18|20) \(epoch [12]\)", message
    )
    assert "Lower the learning rate" in message


def test_a_large_finite_float64_loss_is_not_divergence():
    """(1e150)² is finite in float64 but infinite in float32: the check keeps the loss's dtype."""
    a, b, target = (t.double() for t in PAIRS)
    model = BadAt(bad_call=3, bad_value=1e150, dtype=torch.float64)
    result = fit(model, (a, b, target), epochs=1, lr=0.01, batch_size=4, accelerator="cpu")
    assert result.history.item(0, "train_loss") == pytest.approx(1e300 * 4 / 40, rel=1e-3)


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no")  # bypasses fit
def test_checks_within_an_epoch_every_check_every_steps(tmp_path):
    """Groups of 8 batches; a check every 2 groups finds step 21 (in the third group, steps
    17 to 24) after the fourth group, long before the epoch's 100 steps end."""
    model = BadAt(bad_call=20)
    trainee = Trainee(model, F.mse_loss, lambda params: torch.optim.SGD(params, lr=0.01))
    stop = StopOnDivergence("a test", check_every=2)
    trainer = make_trainer(1, [stop], accelerator="cpu", default_root_dir=tmp_path)
    loader = TensorBatchLoader(
        *make_vector_pairs(100, 2, generator=torch.Generator()), batch_size=1
    )
    with pytest.raises(DivergenceError, match=r"nan by optimiser step 24 \(epoch 1\), in a test"):
        trainer.fit(trainee, BatchGroups(loader, 8))
    assert model.calls == 32
