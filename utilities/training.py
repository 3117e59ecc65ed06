"""A Lightning `Trainer` with notebook-friendly defaults."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterable

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import Logger

from utilities.device import select_device
from utilities.tracking import get_mlflow_logger

for _name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and PyTorch (and their workers) quietly."""
    return pl.seed_everything(seed, workers=True, verbose=False)


def is_interactive() -> bool:
    """True in a terminal or a JupyterLab kernel; False under nbval, nbconvert and CI."""
    if os.environ.get("CI") or os.environ.get("DOTLAB_QUIET"):
        return False
    return "JPY_SESSION_NAME" in os.environ or sys.stdout.isatty()


def make_trainer(
    *,
    max_epochs: int,
    min_epochs: int | None = None,
    patience: int | None = None,
    monitor: str = "val_loss",
    checkpoint: bool = False,
    logger: Logger | bool = False,
    accelerator: str | None = None,
    devices: int | str | list[int] = "auto",
    strategy: str = "auto",
    progress_bar: bool | None = None,
    callbacks: list[Callback] | None = None,
    **trainer_kwargs,
) -> pl.Trainer:
    """A deterministic `Trainer` that logs per epoch, stops early after `min_epochs` when
    `patience` is given, and with `checkpoint=True` keeps the best model by `monitor`.

    The progress bar shows only when interactive. `devices`/`strategy` pass through (multi-GPU).
    """
    callbacks = list(callbacks or [])
    if patience is not None:
        callbacks.append(EarlyStopping(monitor=monitor, patience=patience))
    if checkpoint:
        callbacks.append(ModelCheckpoint(monitor=monitor, save_top_k=1))
    return pl.Trainer(
        max_epochs=max_epochs,
        min_epochs=min_epochs,
        accelerator=accelerator or select_device()[1],
        devices=devices,
        strategy=strategy,
        logger=logger,
        callbacks=callbacks,
        deterministic=True,
        enable_checkpointing=checkpoint,
        enable_progress_bar=is_interactive() if progress_bar is None else progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **trainer_kwargs,
    )


def fit_tracked(
    model: pl.LightningModule,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    *,
    experiment: str,
    max_epochs: int,
    tags: dict[str, str] | None = None,
    params: dict[str, object] | None = None,
    **trainer_kwargs,
) -> str:
    """Fit `model` with `make_trainer` as one MLflow run of `experiment`; returns its run id.

    `tags` label the run (e.g. the notebook execution and part); `params` are logged beside
    the model's own hyperparameters.
    """
    logger = get_mlflow_logger(experiment, tags=tags)
    if params:
        logger.log_hyperparams(params)
    trainer = make_trainer(max_epochs=max_epochs, logger=logger, **trainer_kwargs)
    trainer.fit(model, train_loader, val_loader)
    return logger.run_id
