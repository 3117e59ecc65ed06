"""Fixtures shared by the unit tests: the bundled ratings loaded once, tiny Lightning models,
and guards that keep every test away from the project's own MLflow store and the user's cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from utilities.data import load_torch_data

REPO_ROOT = Path(__file__).resolve().parents[1]


def tree_listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.fixture(scope="session", autouse=True)
def project_store_untouched():
    """No test may write into <repo>/mlruns (the root conftest points MLflow elsewhere)."""
    store = REPO_ROOT / "mlruns"
    before = tree_listing(store) if store.exists() else None
    yield
    after = tree_listing(store) if store.exists() else None
    assert after == before, f"tests wrote into {store}"


@pytest.fixture(scope="session", autouse=True)
def no_stray_training_output():
    """Trainers in tests write under tmp_path, not into the working directory."""
    stray = [Path.cwd() / name for name in ("lightning_logs", "checkpoints")]
    existed = [path.exists() for path in stray]
    yield
    assert [path.exists() for path in stray] == existed, "a test wrote training output into cwd"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """A download that forgets `data_dir` lands in a throwaway folder, never the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOTLAB_DATA_DIR", str(tmp_path_factory.mktemp("dotlab-cache")))
        yield


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)


@pytest.fixture(scope="session")
def bundled():
    """`load_torch_data()` on the bundled ml-latest-small: ratings, user and movie mappings."""
    return load_torch_data()


@pytest.fixture(scope="session")
def bundled_ratings(bundled):
    return bundled[0]


class PairRegressor(pl.LightningModule):
    """A linear model of `a * b`: learns the dot product of vector pairs in a few steps."""

    def __init__(self, dim: int = 4, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.linear = nn.Linear(dim, 1)
        self.train_batches: list[list[tuple[float, int]]] = []

    def forward(self, a, b):
        return self.linear(a * b).squeeze(1)

    def loss(self, batch):
        a, b, target = batch
        return nn.functional.mse_loss(self(a, b), target)

    def on_train_epoch_start(self) -> None:
        self.train_batches.append([])

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.train_batches[-1].append((loss.item(), len(batch[0])))
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(batch), on_step=False, on_epoch=True)

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self.loss(batch), on_step=False, on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Drift(pl.LightningModule):
    """One parameter `w` that each training step raises by exactly 1, whatever the data;
    validation loss `(w - target)^2`. The epoch of the best validation loss is known in advance."""

    def __init__(self, target: float) -> None:
        super().__init__()
        self.target = target
        self.w = nn.Parameter(torch.zeros(()))
        self.val_losses: list[float] = []

    def training_step(self, batch, batch_idx):
        return -self.w  # gradient -1; SGD with lr=1 adds 1

    def validation_step(self, batch, batch_idx):
        loss = (self.w - self.target) ** 2
        self.log("val_loss", loss, on_step=False, on_epoch=True)
        self.val_losses.append(loss.item())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1.0)


@pytest.fixture
def pair_regressor_cls():
    return PairRegressor


@pytest.fixture
def drift_cls():
    return Drift
