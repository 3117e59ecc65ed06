"""A Lightning `Trainer` with notebook-friendly defaults."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterable, Mapping

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import Logger, MLFlowLogger
from pytorch_lightning.trainer.states import TrainerFn

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


class DivergenceError(RuntimeError):
    """Training produced a non-finite (NaN or infinite) loss."""


class StopOnDivergence(Callback):
    """Fails the fit at a non-finite training loss or logged epoch loss, naming run and step.

    Each step only copies its loss into a buffer on the loss's device (no host sync); the host
    checks the buffer every `check_every` steps and at the end of each epoch, and checks the
    logged `*loss` metrics after each validation. The error ends the fit, so Lightning marks
    the MLflow run FAILED.
    """

    def __init__(self, check_every: int = 64) -> None:
        self.check_every = check_every
        self.losses: torch.Tensor | None = None
        self.places: list[tuple[int, int, int]] = []  # (global step, epoch, batch) per slot
        self.step = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.step = trainer.global_step  # the step as `training_step` sees it

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        if self.losses is None or self.losses.device != loss.device:
            self.losses = torch.empty(self.check_every, device=loss.device, dtype=loss.dtype)
        self.losses[len(self.places)] = loss.detach()
        self.places.append((self.step, trainer.current_epoch, batch_idx))
        if len(self.places) == self.check_every:
            self.check_losses(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.check_losses(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self.check_losses(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        for name, value in trainer.callback_metrics.items():
            if name.endswith("loss") and not torch.isfinite(value).all():
                where = f"after global step {trainer.global_step} (epoch {trainer.current_epoch})"
                self.fail(trainer, f"{name} was {value.item()} {where}")

    def check_losses(self, trainer: pl.Trainer) -> None:
        """Raise `DivergenceError` at the first non-finite loss since the last check."""
        places, self.places = self.places, []
        if not places:
            return
        finite = torch.isfinite(self.losses[: len(places)])
        if finite.all():
            return
        first = int((~finite).nonzero()[0])
        step, epoch, batch = places[first]
        value = self.losses[first].item()
        self.fail(
            trainer,
            f"the training loss was {value} at global step {step} (epoch {epoch}, batch {batch})",
        )

    @staticmethod
    def fail(trainer: pl.Trainer, what: str) -> None:
        raise DivergenceError(
            f"Training diverged: {what}, in {describe_run(trainer)}. "
            "Lower the learning rate or check the inputs for NaN/inf."
        )


def describe_run(trainer: pl.Trainer) -> str:
    """The MLflow run a trainer logs to, as `run <name> (<id>) of experiment <name>`."""
    for logger in trainer.loggers:
        if isinstance(logger, MLFlowLogger) and logger.run_id:
            try:
                client = logger.experiment
                run_name = client.get_run(logger.run_id).info.run_name
                experiment = client.get_experiment(logger.experiment_id).name
            except Exception:  # the store is unreachable: the id still names the run
                return f"MLflow run {logger.run_id}"
            return f"MLflow run {run_name!r} ({logger.run_id}) of experiment {experiment!r}"
    return "a fit with no MLflow logger attached"


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
    A non-finite loss stops the fit with `DivergenceError` (see `StopOnDivergence`).
    """
    callbacks = [*(callbacks or []), StopOnDivergence()]
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
