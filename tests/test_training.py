"""The trainer factory, seeding and the interactivity check."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from utilities.device import select_device
from utilities.splits import TensorBatchLoader
from utilities.synthetic import FreshPairLoader, fixed_pair_loader
from utilities.training import is_interactive, make_trainer, seed_everything


def one_step_per_epoch() -> TensorBatchLoader:
    return TensorBatchLoader(torch.zeros(1), batch_size=1)


def test_defaults(tmp_path):
    torch.use_deterministic_algorithms(False)
    trainer = make_trainer(max_epochs=2, default_root_dir=tmp_path)
    assert trainer.max_epochs == 2
    expected = {"cpu": "CPUAccelerator", "gpu": "CUDAAccelerator", "mps": "MPSAccelerator"}
    assert type(trainer.accelerator).__name__ == expected[select_device()[1]]
    assert trainer.logger is None
    assert trainer.checkpoint_callback is None
    assert trainer.progress_bar_callback is None  # tests are not interactive
    assert not any(isinstance(c, EarlyStopping) for c in trainer.callbacks)
    assert torch.are_deterministic_algorithms_enabled()


def test_drift_model_moves_one_unit_per_epoch(tmp_path, drift_cls):
    module = drift_cls(target=2.2)
    make_trainer(max_epochs=4, default_root_dir=tmp_path).fit(
        module, one_step_per_epoch(), one_step_per_epoch()
    )
    assert module.w.item() == 4.0
    assert module.val_losses == pytest.approx([(w - 2.2) ** 2 for w in (1, 2, 3, 4)])


@pytest.mark.parametrize(
    ("patience", "min_epochs", "epochs_run"),
    [
        (2, None, 3),  # best at epoch 0, then 2 epochs without improvement
        (1, None, 2),
        (2, 6, 6),  # would stop after 3, but not before min_epochs
        (None, None, 10),  # no patience: no early stopping
    ],
)
def test_early_stopping_respects_min_epochs(tmp_path, drift_cls, patience, min_epochs, epochs_run):
    module = drift_cls(target=-1.0)  # w moves away from the target: val loss only gets worse
    trainer = make_trainer(
        max_epochs=10, min_epochs=min_epochs, patience=patience, default_root_dir=tmp_path
    )
    trainer.fit(module, one_step_per_epoch(), one_step_per_epoch())
    assert trainer.current_epoch == epochs_run
    assert len(module.val_losses) == epochs_run
    assert module.val_losses == sorted(module.val_losses)  # never improved
    assert module.w.item() == epochs_run


def test_checkpoint_keeps_the_best_model(tmp_path, drift_cls):
    module = drift_cls(target=2.2)  # val loss at w = 1, 2, 3, 4: best after epoch 1 (w = 2)
    trainer = make_trainer(max_epochs=4, checkpoint=True, default_root_dir=tmp_path)
    trainer.fit(module, one_step_per_epoch(), one_step_per_epoch())
    checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert len(checkpoints) == 1 and trainer.checkpoint_callback is checkpoints[0]
    best = checkpoints[0]
    best_epoch = int(np.argmin(module.val_losses))
    assert best_epoch == 1
    assert best.best_model_score.item() == pytest.approx(min(module.val_losses))
    saved = torch.load(best.best_model_path, weights_only=False)
    assert saved["epoch"] == best_epoch
    assert saved["state_dict"]["w"].item() == 2.0
    assert module.w.item() == 4.0
    assert best.best_model_path.startswith(str(tmp_path))
    assert len(list(tmp_path.rglob("*.ckpt"))) == 1  # save_top_k=1


def train_once(seed: int, pair_regressor_cls, tmp_path) -> dict[str, torch.Tensor]:
    seed_everything(seed)
    module = pair_regressor_cls(dim=4, lr=0.05)  # initial weights from the seeded global RNG
    train = FreshPairLoader(4, batches_per_epoch=3, batch_size=16, seed=0)
    val = fixed_pair_loader(32, 4, batch_size=32, seed=1)
    make_trainer(max_epochs=2, default_root_dir=tmp_path).fit(module, train, val)
    return {name: tensor.clone() for name, tensor in module.state_dict().items()}


def test_seed_everything_makes_trainings_identical(tmp_path, pair_regressor_cls):
    first = train_once(7, pair_regressor_cls, tmp_path / "1")
    second = train_once(7, pair_regressor_cls, tmp_path / "2")
    other = train_once(8, pair_regressor_cls, tmp_path / "3")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not torch.equal(first["linear.weight"], other["linear.weight"])


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


def test_progress_bar_follows_interactivity(tmp_path, monkeypatch):
    monkeypatch.setattr("utilities.training.is_interactive", lambda: True)
    assert make_trainer(max_epochs=1, default_root_dir=tmp_path).progress_bar_callback is not None
    assert make_trainer(max_epochs=1, progress_bar=False).progress_bar_callback is None
