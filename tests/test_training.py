"""`fit` trains any `nn.Module`: checked against a plain PyTorch loop on the same seed, and its
early stopping, schedules, threads and evaluation against hand computations."""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import polars as pl
import pytest
import torch
from mlflow import MlflowClient
from scale_case import ONE, Scale, fit_scale, val_loss_after, w_after
from torch import nn
from torch.nn import functional as F

import utilities.training as training
from utilities.device import select_device
from utilities.models import DotProductMLP
from utilities.splits import TensorBatchLoader, get_rating_splits
from utilities.synthetic import FreshPairLoader, make_vector_pairs
from utilities.training import (
    BatchGroups,
    EarlyStopping,
    evaluate,
    fit,
    get_thread_count,
    is_interactive,
    make_trainer,
    predict,
    seed_everything,
    torch_threads,
)

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


class DotProduct(nn.Module):
    """A rating model: user and movie embeddings, their dot product plus the mean rating."""

    def __init__(self, n_users: int, n_movies: int, dim: int = 8, mean: float = 3.5) -> None:
        super().__init__()
        self.users, self.movies = nn.Embedding(n_users, dim), nn.Embedding(n_movies, dim)
        self.mean = mean

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return (self.users(users) * self.movies(movies)).sum(1) + self.mean


def make_schedule(name: str | None, optimizer, lr: float, total_steps: int):
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=total_steps)
    return None


def train_by_hand(
    model: nn.Module,
    train: tuple[torch.Tensor, ...],
    val: tuple[torch.Tensor, ...],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    schedule: str | None = None,
) -> tuple[pl.DataFrame, object]:
    """What `fit` should do, as a plain PyTorch loop: the same seeded shuffle, the CPU's fused
    optimiser, one step per batch, losses averaged over rows. The history and the scheduler."""
    kind = OPTIMIZERS[optimizer]
    opt = kind(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    loader = TensorBatchLoader(*train, batch_size=batch_size, shuffle=True, seed=seed)
    scheduler = make_schedule(schedule, opt, lr, epochs * len(loader))
    rows = []
    for epoch in range(1, epochs + 1):
        total = 0.0
        for *inputs, target in loader:
            loss = F.mse_loss(model(*inputs), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.item() * len(target)
        with torch.no_grad():
            val_loss = F.mse_loss(model(*val[:-1]), val[-1]).item()
        rows.append({"epoch": epoch, "train_loss": total / len(train[0]), "val_loss": val_loss})
    return pl.DataFrame(rows), scheduler


def assert_same_weights(model: nn.Module, other: nn.Module) -> None:
    mine, theirs = model.state_dict(), other.state_dict()
    assert mine.keys() == theirs.keys()
    for name in mine:
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-5, atol=1e-6)


def assert_same_history(history: pl.DataFrame, by_hand: pl.DataFrame) -> None:
    assert history.columns == ["epoch", "train_loss", "val_loss"]
    assert history.get_column("epoch").to_list() == by_hand.get_column("epoch").to_list()
    for column in ("train_loss", "val_loss"):
        expected = by_hand.get_column(column).to_list()
        assert history.get_column(column).to_list() == pytest.approx(expected, rel=1e-6)


def rating_case(bundled) -> tuple[nn.Module, tuple, tuple, int]:
    """50,000 bundled ratings: 18 batches an epoch (groups of 8, 8 and 2), the last one short;
    validation batches of 8,192 and 1,808 rows."""
    ratings, users, movies = bundled
    train, val, _ = get_rating_splits(ratings, seed=0, sample=50_000)
    torch.manual_seed(0)
    return DotProduct(users.height, movies.height), train, val, 2048


def pair_case(bundled) -> tuple[nn.Module, tuple, tuple, int]:
    """Random vector pairs: 24 batches an epoch, the last one short."""
    generator = torch.Generator().manual_seed(0)
    train = make_vector_pairs(3000, 4, generator=generator)
    val = make_vector_pairs(1000, 4, generator=generator)
    torch.manual_seed(0)
    return DotProductMLP(4, [16], incl_multiplication=True), train, val, 128


# ---------------------------------------------------------------- fit against a plain loop


@pytest.mark.parametrize("case", [rating_case, pair_case], ids=["ratings", "pairs"])
def test_fit_is_a_plain_pytorch_loop_on_the_same_seed(case, bundled):
    model, train, val, batch_size = case(bundled)
    twin = copy.deepcopy(model)
    result = fit(
        model, train, val, epochs=2, lr=0.01, batch_size=batch_size, seed=7, accelerator="cpu"
    )
    by_hand, _ = train_by_hand(twin, train, val, epochs=2, lr=0.01, batch_size=batch_size, seed=7)

    assert result.model is model
    assert_same_history(result.history, by_hand)
    assert_same_weights(model, twin)
    assert by_hand.item(-1, "train_loss") < by_hand.item(0, "train_loss")  # it learned
    metrics = result.metrics
    assert metrics["train_loss"] == result.history.item(-1, "train_loss")
    assert metrics["val_loss"] == result.history.item(-1, "val_loss")  # the last: no early stop
    assert (metrics["best_epoch"], metrics["epochs_run"]) == (2, 2)
    assert metrics["n_params"] == sum(p.numel() for p in twin.parameters())
    assert 0 < metrics["train_seconds"] < 60
    assert result.run_id is None  # no experiment


def test_the_seed_decides_the_shuffle():
    _, train, val, _ = pair_case(None)
    models = [DotProductMLP(4, [8]) for _ in range(3)]
    for model in models[1:]:
        model.load_state_dict(models[0].state_dict())
    for model, seed in zip(models, [1, 1, 2], strict=True):
        fit(model, train, val, epochs=1, lr=0.01, batch_size=256, seed=seed, accelerator="cpu")
    assert_same_weights(models[0], models[1])
    assert not torch.allclose(models[0].net[0].weight, models[2].net[0].weight)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_other_optimisers_with_weight_decay_match_torch(optimizer):
    model, train, val, _ = pair_case(None)
    twin = copy.deepcopy(model)
    settings = {"epochs": 2, "lr": 0.05, "batch_size": 500, "seed": 3}
    settings |= {"optimizer": optimizer, "weight_decay": 0.1}
    result = fit(model, train, val, accelerator="cpu", **settings)
    by_hand, _ = train_by_hand(twin, train, val, **settings)
    assert_same_history(result.history, by_hand)
    assert_same_weights(model, twin)


def test_batches_from_any_iterable_are_used_as_they_come():
    """A `FreshPairLoader` draws new pairs every batch: a twin loader of the same seed replays
    them to a plain loop."""
    torch.manual_seed(0)
    model = DotProductMLP(3, [8])
    twin = copy.deepcopy(model)
    val = TensorBatchLoader(*make_vector_pairs(300, 3, generator=torch.Generator()), batch_size=7)
    result = fit(
        model, FreshPairLoader(3, batches_per_epoch=10, batch_size=32, seed=5), val,
        epochs=2, lr=0.01, accelerator="cpu",
    )  # fmt: skip
    opt = torch.optim.Adam(twin.parameters(), lr=0.01, fused=True)
    fresh = FreshPairLoader(3, batches_per_epoch=10, batch_size=32, seed=5)
    for _ in range(2):
        for a, b, target in fresh:
            opt.zero_grad()
            F.mse_loss(twin(a, b), target).backward()
            opt.step()
    assert_same_weights(model, twin)
    with torch.no_grad():  # the validation loss: over all 300 rows, not a mean of batch means
        val_loss = torch.cat([(twin(a, b) - t) ** 2 for a, b, t in val]).mean().item()
    assert result.history.item(-1, "val_loss") == pytest.approx(val_loss, rel=1e-6)
    assert result.history.height == 2


def test_without_validation_the_history_has_no_val_loss():
    model, train, _, _ = pair_case(None)
    result = fit(model, train, epochs=2, lr=0.01, accelerator="cpu")
    assert result.history.columns == ["epoch", "train_loss"]
    assert "val_loss" not in result.metrics and "best_epoch" not in result.metrics
    assert result.metrics["epochs_run"] == 2


def test_extra_callbacks_see_every_epoch():
    """`callbacks=` reaches Lightning beside fit's own: one call per epoch, the trained model."""
    from pytorch_lightning.callbacks import Callback

    class EpochLosses(Callback):
        def __init__(self):
            self.losses = []

        def on_train_epoch_end(self, trainer, module):
            self.losses.append(evaluate(module.model, train))

    model, train, _, _ = pair_case(None)
    recorder = EpochLosses()
    result = fit(model, train, epochs=3, lr=0.01, accelerator="cpu", callbacks=[recorder])
    assert len(recorder.losses) == 3
    assert recorder.losses[-1] == pytest.approx(evaluate(result.model, train))


def test_an_interrupt_during_a_fit_is_a_keyboard_interrupt_not_lightnings_exit():
    """Lightning turns Ctrl-C into sys.exit(1); fit hands the caller the interrupt back."""
    from pytorch_lightning.callbacks import Callback

    class CtrlC(Callback):
        def on_train_epoch_end(self, trainer, module):
            raise KeyboardInterrupt

    model, train, _, _ = pair_case(None)
    with pytest.raises(KeyboardInterrupt):
        fit(model, train, epochs=3, lr=0.01, accelerator="cpu", callbacks=[CtrlC()])


def test_at_learning_rate_0_every_epoch_loss_is_the_mse_of_all_rows(bundled):
    """Batches of 300, 300, 300 and 100: a mean of the batch means would be off."""
    ratings, users, movies = bundled
    train, val, _ = get_rating_splits(ratings, seed=1, sample=2000, val_frac=0.25, test_frac=0.25)
    assert len(train[0]) == 1000
    torch.manual_seed(0)
    model = DotProduct(users.height, movies.height)
    with torch.no_grad():
        direct = [F.mse_loss(model(u, m), r).item() for u, m, r in (train, val)]
    result = fit(model, train, val, epochs=2, lr=0.0, batch_size=300, accelerator="cpu")
    assert result.history.get_column("train_loss").to_list() == pytest.approx([direct[0]] * 2)
    assert result.history.get_column("val_loss").to_list() == pytest.approx([direct[1]] * 2)


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"optimizer": "lbfgs"}, "optimizer must be one of"), ({"schedule": "step"}, "schedule")],
)
def test_unknown_optimiser_or_schedule_is_named(setting, message):
    model, train, _, _ = pair_case(None)
    with pytest.raises(ValueError, match=message) as caught:
        fit(model, train, epochs=1, lr=0.01, accelerator="cpu", **setting)
    assert repr(next(iter(setting.values()))) in str(caught.value)


# ---------------------------------------------------------------- early stopping


@pytest.mark.parametrize(
    ("epochs", "rule", "epochs_run", "best_epoch"),
    [
        (10, EarlyStopping(patience=1), 3, 2),
        (10, EarlyStopping(patience=3), 5, 2),
        (10, EarlyStopping(patience=1, min_epochs=6), 6, 2),  # not before min_epochs
        (4, EarlyStopping(patience=5), 4, 2),  # out of epochs first: still the best weights
        (4, None, 4, 4),  # no early stopping: the last epoch's weights and loss
    ],
)
def test_early_stopping_keeps_the_best_epoch(epochs, rule, epochs_run, best_epoch):
    result = fit_scale(epochs=epochs, early_stopping=rule)
    ran = range(1, epochs_run + 1)
    assert result.history.get_column("epoch").to_list() == list(ran)
    train_losses = [(w_after(epoch - 1) - 2) ** 2 for epoch in ran]  # before each epoch's step
    assert result.history.get_column("train_loss").to_list() == pytest.approx(train_losses)
    val_losses = [val_loss_after(epoch) for epoch in ran]
    assert result.history.get_column("val_loss").to_list() == pytest.approx(val_losses)
    assert result.model.w.item() == w_after(best_epoch)
    assert result.metrics["val_loss"] == pytest.approx(val_loss_after(best_epoch))
    assert (result.metrics["best_epoch"], result.metrics["epochs_run"]) == (best_epoch, epochs_run)
    assert result.metrics["train_loss"] == pytest.approx(train_losses[-1])


# ---------------------------------------------------------------- learning-rate schedules


def test_cosine_schedule_steps_once_per_batch_by_hand():
    """With the loss `-w`, each SGD step adds that step's learning rate to `w`: after training
    `w` is the sum of the schedule, 0.1 (1 + cos(pi t / 10)) / 2 over its 10 steps."""
    result = fit(
        Scale(), (torch.ones(5), torch.zeros(5)),
        epochs=2, lr=0.1, optimizer="sgd", batch_size=1, schedule="cosine",
        loss=lambda prediction, target: -prediction.mean(), accelerator="cpu",
    )  # fmt: skip
    by_hand = sum(0.1 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(10))
    assert result.model.w.item() == pytest.approx(by_hand, rel=1e-6)
    # the cosines of t and 10 - t cancel, cos(pi/2) = 0: only t = 0 adds 0.05 to 10 × 0.05
    assert by_hand == pytest.approx(0.55)


def test_an_optimiser_and_a_schedule_factory_are_used_as_given(tmp_path, monkeypatch):
    """A factory for SGD and one for a halving step schedule: w moves by lr, then lr / 2, …
    toward the loss `-w`; MLflow records the factories by name."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path))

    def plain_sgd(params):
        return torch.optim.SGD(params, lr=0.1)

    def halving(optimizer, total_steps):
        assert total_steps == 4
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)

    result = fit(
        Scale(), (torch.ones(2), torch.zeros(2)),
        epochs=2, lr=123.0, optimizer=plain_sgd, schedule=halving, batch_size=1,
        loss=lambda prediction, target: -prediction.mean(), accelerator="cpu",
        experiment="factories",
    )  # fmt: skip
    assert result.model.w.item() == pytest.approx(0.1 * (1 + 0.5 + 0.25 + 0.125))
    params = MlflowClient(result.record.client.tracking_uri).get_run(result.run_id).data.params
    assert (params["optimizer"], params["schedule"]) == ("plain_sgd", "halving")


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_schedules_match_torchs_scheduler(schedule, monkeypatch):
    """The scheduler `fit` made, kept by wrapping its factory, against torch's own."""
    made, make_scheduler = [], training.make_scheduler

    def keep_scheduler(*args):
        factory = make_scheduler(*args)
        return lambda optimizer: made.append(factory(optimizer)) or made[-1]

    monkeypatch.setattr(training, "make_scheduler", keep_scheduler)
    model, train, val, _ = pair_case(None)
    twin = copy.deepcopy(model)
    settings = {"epochs": 2, "lr": 0.02, "batch_size": 256, "seed": 0, "schedule": schedule}
    result = fit(model, train, val, accelerator="cpu", **settings)
    by_hand, scheduler = train_by_hand(twin, train, val, **settings)
    assert_same_history(result.history, by_hand)
    assert_same_weights(model, twin)
    assert len(made) == 1
    assert made[0].last_epoch == scheduler.last_epoch == 2 * 12  # one step per batch
    assert made[0].get_last_lr() == pytest.approx(scheduler.get_last_lr())
    assert made[0].get_last_lr() != [0.02]  # it did change


# ---------------------------------------------------------------- threads


def test_thread_count_comes_from_dotlab_threads(monkeypatch):
    monkeypatch.delenv("DOTLAB_THREADS", raising=False)
    assert get_thread_count() == 1
    monkeypatch.setenv("DOTLAB_THREADS", "6")
    assert get_thread_count() == 6


@pytest.mark.parametrize("value", ["0", "-1", "two", "", "1.5", " 2", "²"])
def test_a_bad_thread_count_is_named(monkeypatch, value):
    monkeypatch.setenv("DOTLAB_THREADS", value)
    with pytest.raises(ValueError, match="DOTLAB_THREADS must be a positive integer") as caught:
        get_thread_count()
    assert repr(value) in str(caught.value)


class ThreadProbe(Scale):
    """Notes the number of torch threads at every forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.threads.add(torch.get_num_threads())
        return super().forward(x)


def test_fit_trains_on_dotlab_threads_and_restores_the_count(monkeypatch):
    monkeypatch.setenv("DOTLAB_THREADS", "2")
    probe = ThreadProbe()
    with torch_threads(3):
        fit(probe, (ONE, ONE), (ONE, ONE), epochs=2, lr=0.1, accelerator="cpu")
        assert torch.get_num_threads() == 3
    assert probe.threads == {2}
    monkeypatch.setenv("DOTLAB_THREADS", "many")
    with torch_threads(3), pytest.raises(ValueError, match="'many'"):
        fit(probe, (ONE, ONE), epochs=1, lr=0.1, accelerator="cpu")
    assert probe.threads == {2}


def test_torch_threads_restores_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(KeyError), torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
        raise KeyError
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------- predict and evaluate


def linear_by_hand(linear: nn.Linear, x: torch.Tensor) -> np.ndarray:
    """`x w + b` in float64 NumPy."""
    weight = linear.weight.detach().double().numpy()[0]
    return x.double().numpy() @ weight + linear.bias.item()


class Linear(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(1)


def test_evaluate_is_the_mean_loss_over_every_row():
    """70,000 rows: more than one chunk of `predict`."""
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(70_000, 3, generator=generator), torch.randn(70_000, generator=generator)
    model = Linear(3)
    errors = linear_by_hand(model.linear, x) - y.double().numpy()
    assert evaluate(model, (x, y)) == pytest.approx(np.mean(errors**2), rel=1e-6)
    assert evaluate(model, (x, y), loss=F.l1_loss) == pytest.approx(np.abs(errors).mean(), rel=1e-6)


def test_predict_keeps_row_order_and_the_models_mode():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(1))
    model = Linear(3)
    predictions = predict(model, x, batch_size=7)
    assert predictions.shape == (50,) and not predictions.requires_grad
    np.testing.assert_allclose(predictions.numpy(), linear_by_hand(model.linear, x), rtol=1e-5)
    assert model.training
    model.eval()
    predict(model, x)
    assert not model.training


# ---------------------------------------------------------------- batch groups, trainer, seeds


def test_batch_groups_hand_over_consecutive_batches():
    loader = TensorBatchLoader(torch.arange(10), batch_size=3)
    groups = BatchGroups(loader, 2)
    assert len(groups) == 2
    got = [[batch[0].tolist() for batch in group] for group in groups]
    assert got == [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9]]]
    assert len(BatchGroups(loader, 4)) == 1 and len(BatchGroups(loader, 1)) == 4
    shuffled = TensorBatchLoader(torch.arange(10), batch_size=3, shuffle=True, seed=0)
    twin = TensorBatchLoader(torch.arange(10), batch_size=3, shuffle=True, seed=0)
    for _ in range(2):  # every epoch: the same batches as the loader itself
        flat = [batch[0] for group in BatchGroups(shuffled, 3) for batch in group]
        assert all(torch.equal(a, b[0]) for a, b in zip(flat, twin, strict=True))


def test_trainer_defaults(tmp_path):
    torch.use_deterministic_algorithms(False)
    trainer = make_trainer(2, [], default_root_dir=tmp_path)
    assert trainer.max_epochs == 2
    expected = {"cpu": "CPUAccelerator", "gpu": "CUDAAccelerator", "mps": "MPSAccelerator"}
    assert type(trainer.accelerator).__name__ == expected[select_device()[1]]
    assert trainer.logger is None
    assert trainer.checkpoint_callback is None
    assert trainer.progress_bar_callback is None  # tests are not interactive
    assert torch.are_deterministic_algorithms_enabled()


def test_progress_bar_follows_interactivity(tmp_path, monkeypatch):
    monkeypatch.setattr("utilities.training.is_interactive", lambda: True)
    assert make_trainer(1, [], default_root_dir=tmp_path).progress_bar_callback is not None
    assert make_trainer(1, [], progress_bar=False).progress_bar_callback is None


def test_seed_everything_seeds_python_numpy_and_torch():
    def draws():
        return random.random(), np.random.rand(), torch.rand(1).item()

    assert seed_everything(123) == 123
    first = draws()
    seed_everything(123)
    assert draws() == first
    seed_everything(124)
    assert draws() != first


@pytest.mark.parametrize(
    ("env", "tty", "expected"),
    [
        ({}, False, False),
        ({}, True, True),
        ({"JPY_SESSION_NAME": "x.ipynb"}, False, True),
        ({"JPY_SESSION_NAME": "x.ipynb", "CI": "true"}, True, False),
        ({"DOTLAB_QUIET": "1"}, True, False),
    ],
)
def test_is_interactive(monkeypatch, env, tty, expected):
    for name in ("CI", "DOTLAB_QUIET", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdout.isatty", lambda: tty)
    assert is_interactive() is expected
