"""One way to train any `nn.Module`: `fit` wraps it in one Lightning module, trains it quietly
and fast, records the run in MLflow and returns what happened as a `Fit`."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import polars as pl
import pytorch_lightning as L
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn
from torch.nn import functional as F

from utilities.device import default_device
from utilities.splits import TensorBatchLoader
from utilities.tracking import RunRecord

for _name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# Lightning warns that our in-memory loaders "do not have many workers": they need none.
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
# pytorch_lightning 2.6 itself calls torch's deprecated `isinstance(treespec, LeafSpec)`.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")

Batch = tuple[torch.Tensor, ...]
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = (None, "cosine", "onecycle")
# Training batches handed to Lightning per step; each still gets its own optimiser step, so only
# Lightning's fixed cost per step is shared (measured in benchmarks/train_speed.py).
BATCHES_PER_STEP = 8


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and PyTorch (and their workers) quietly."""
    return L.seed_everything(seed, workers=True, verbose=False)


def is_interactive() -> bool:
    """True in a terminal or a JupyterLab kernel; False under nbval, nbconvert and CI."""
    if os.environ.get("CI") or os.environ.get("DOTLAB_QUIET"):
        return False
    return "JPY_SESSION_NAME" in os.environ or sys.stdout.isatty()


def get_thread_count() -> int:
    """Torch threads for training: `DOTLAB_THREADS`, else 1 (see benchmarks/README.md: one
    thread is as fast on these small models and degrades only in proportion on a busy CPU)."""
    value = os.environ.get("DOTLAB_THREADS", "1")
    if not value.isdecimal() or int(value) < 1:  # isdigit() passes "²", which int() rejects
        raise ValueError(f"DOTLAB_THREADS must be a positive integer, got {value!r}.")
    return int(value)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class DivergenceError(RuntimeError):
    """Training produced a non-finite (NaN or infinite) loss."""


@dataclass(frozen=True)
class EarlyStopping:
    """Stop after `patience` epochs without a lower validation loss, never before `min_epochs`;
    the model keeps the weights of its best epoch."""

    patience: int
    min_epochs: int = 0


@dataclass
class Fit:
    """What `fit` returns: the trained model, one row per epoch, final numbers, the MLflow run.

    `model` is the module that was passed in, trained; after a fit on a GPU it is back on the
    CPU (Lightning's teardown moves it there): call `.to(device)` before using it on the GPU.
    """

    model: nn.Module
    history: pl.DataFrame
    metrics: dict[str, float]
    run_id: str | None = None
    record: RunRecord | None = field(default=None, repr=False)
    steps: int = 0  # optimiser steps taken

    def log(self, **metrics: float) -> None:
        """Add evaluations made after training (e.g. `test_mse`) to the run and to `metrics`."""
        self.metrics.update(metrics)
        if self.record is not None:
            self.record.log_final(metrics)


class StopOnDivergence(Callback):
    """Fails the fit at a non-finite training loss, naming the run, epoch and step.

    Each step copies its loss into a buffer on the loss's device (no host sync); the host
    checks the buffer every `check_every` steps and at the end of each epoch.
    """

    def __init__(self, describe: str, check_every: int = 64) -> None:
        self.describe, self.check_every = describe, check_every
        self.losses: torch.Tensor | None = None
        self.places: list[tuple[int, int]] = []  # (global step, epoch) per slot

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if self.losses is None or self.losses.device != loss.device:
            self.losses = torch.empty(self.check_every, device=loss.device, dtype=loss.dtype)
        self.losses[len(self.places)] = loss.detach()
        self.places.append((pl_module.steps_taken, trainer.current_epoch))
        if len(self.places) == self.check_every:
            self.check_losses()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.check_losses()

    def check_losses(self) -> None:
        """Raise `DivergenceError` at the first non-finite loss since the last check."""
        places, self.places = self.places, []
        if not places or torch.isfinite(self.losses[: len(places)]).all():
            return
        first = int((~torch.isfinite(self.losses[: len(places)])).nonzero()[0])
        step, epoch = places[first]
        raise DivergenceError(
            f"Training diverged: the training loss was {self.losses[first].item()} by "
            f"optimiser step {step} (epoch {epoch + 1}), in {self.describe}. "
            "Lower the learning rate or check the inputs for NaN/inf."
        )


class Trainee(L.LightningModule):
    """The one Lightning module `fit` trains: any `model(*inputs) -> prediction` on batches
    `(*inputs, target)`.

    A training step receives a group of batches and takes one optimiser step per batch;
    losses are summed on the device and read once per epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Callable,
        optimizer: Callable,
        scheduler: Callable | None = None,
        early_stopping: EarlyStopping | None = None,
    ) -> None:
        super().__init__()
        self.model, self.loss, self.make_optimizer = model, loss, optimizer
        self.make_scheduler, self.early_stopping = scheduler, early_stopping
        self.automatic_optimization = False
        self.sums: dict[str, tuple] = {}
        self.epochs: list[dict[str, float]] = []
        self.steps_taken, self.best_loss, self.best_epoch = 0, math.inf, 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def configure_optimizers(self):
        optimizer = self.make_optimizer(self.model.parameters())
        if self.make_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.make_scheduler(optimizer)}

    def training_step(self, group: list[Batch], group_idx: int) -> torch.Tensor:
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        total, count = 0.0, 0
        for *inputs, target in group:
            loss = self.loss(self.model(*inputs), target)
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total, count = total + loss.detach() * len(target), count + len(target)
        self.steps_taken += len(group)
        self.add("train", total, count)
        return total / count

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        *inputs, target = batch
        self.add("val", self.loss(self.model(*inputs), target) * len(target), len(target))

    def add(self, stage: str, total: torch.Tensor, count: int) -> None:
        """Add one batch's summed loss to this epoch's running total (on the device)."""
        previous = self.sums.get(stage, (0.0, 0))
        self.sums[stage] = (previous[0] + total.detach(), previous[1] + count)

    def on_train_epoch_end(self) -> None:
        """One row of history: the epoch's mean losses (Lightning validates before this)."""
        row = {"epoch": self.current_epoch + 1}
        for stage, (total, count) in sorted(self.sums.items()):
            if self.trainer.world_size > 1:  # every process's share of the epoch
                total, count = self.sum_over_processes(total, count)
            row[f"{stage}_loss"] = (total / count).item()
        self.sums = {}
        self.epochs.append(row)
        if self.early_stopping is not None and "val_loss" in row:
            self.keep_if_best(row)

    def sum_over_processes(self, total: torch.Tensor, count: int) -> tuple[torch.Tensor, int]:
        """A loss sum and a row count added up over every process of a distributed fit."""
        both = torch.stack([total.double(), torch.tensor(count, dtype=torch.float64)])
        total, count = self.trainer.strategy.reduce(both.to(total.device), reduce_op="sum")
        return total, int(count.item())

    def keep_if_best(self, row: dict[str, float]) -> None:
        """Copy the weights at a new lowest validation loss; stop when patience runs out."""
        if row["val_loss"] < self.best_loss:
            self.best_loss, self.best_epoch = row["val_loss"], row["epoch"]
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        rule = self.early_stopping
        if row["epoch"] - self.best_epoch >= rule.patience and row["epoch"] >= rule.min_epochs:
            self.trainer.should_stop = True

    def on_train_end(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """The batch itself when already on `device`: skips Lightning's walk over it."""
        tensors = [t for b in batch for t in b] if isinstance(batch, list) else batch
        if all(isinstance(t, torch.Tensor) and t.device == device for t in tensors):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)


class BatchGroups:
    """`loader`'s batches, `size` consecutive ones at a time (the last group may be shorter)."""

    def __init__(self, loader: Iterable, size: int) -> None:
        self.loader, self.size = loader, size

    def __len__(self) -> int:
        return math.ceil(len(self.loader) / self.size)

    def __iter__(self) -> Iterator[list[Batch]]:
        group = []
        for batch in self.loader:
            group.append(batch)
            if len(group) == self.size:
                yield group
                group = []
        if group:
            yield group


def as_batches(
    data: Sequence[torch.Tensor] | Iterable[Batch],
    batch_size: int,
    device: torch.device,
    *,
    shuffle: bool,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Iterable[Batch]:
    """Tensors `(*inputs, target)` as batches sliced on `device` (this process's `shard` of
    each); any other iterable as it is."""
    if isinstance(data, tuple | list) and all(isinstance(t, torch.Tensor) for t in data):
        tensors = [t.to(device) for t in data]
        return TensorBatchLoader(
            *tensors, batch_size=batch_size, shuffle=shuffle, seed=seed, shard=shard
        )
    return data


def make_optimizer(
    name: str | Callable, lr: float, weight_decay: float, device: torch.device
) -> Callable:
    """A factory of the named optimiser, fused into one kernel where the device allows (a
    factory `params -> Optimizer` as it is)."""
    if callable(name):
        return name
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}.")
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[name]
    fused = device.type in ("cpu", "cuda")
    return lambda params: kind(params, lr=lr, weight_decay=weight_decay, fused=fused)


def make_scheduler(name: str | Callable | None, lr: float, total_steps: int) -> Callable | None:
    """A per-step learning-rate schedule: cosine decay to 0, torch's one-cycle, or a factory
    `(optimizer, total_steps) -> LRScheduler`."""
    if callable(name):
        return lambda opt: name(opt, total_steps)
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}.")
    if name == "cosine":
        return lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    if name == "onecycle":
        return lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=total_steps)
    return None


def make_trainer(epochs: int, callbacks: list[Callback], **trainer_kwargs) -> L.Trainer:
    """A deterministic, quiet `Trainer` (a progress bar only when interactive)."""
    progress_bar = trainer_kwargs.pop("progress_bar", None)
    return L.Trainer(
        max_epochs=epochs,
        logger=False,
        callbacks=callbacks,
        deterministic=True,
        enable_checkpointing=False,
        enable_progress_bar=is_interactive() if progress_bar is None else progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        **trainer_kwargs,
    )


def pick_device(accelerator: str | None) -> tuple[torch.device, str]:
    """The device the batches live on, and Lightning's name for it."""
    if accelerator is None:
        return default_device()
    return torch.device({"gpu": "cuda"}.get(accelerator, accelerator)), accelerator


def describe_model(model: nn.Module, lr: float, weight_decay: float, seed: int) -> str:
    """The default run name: the model's class and the settings that tell runs apart."""
    return f"{type(model).__name__} · lr {lr:g} · wd {weight_decay:g} · seed {seed}"


def fit(
    model: nn.Module,
    train: Sequence[torch.Tensor] | Iterable[Batch],
    val: Sequence[torch.Tensor] | Iterable[Batch] | None = None,
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    optimizer: str | Callable = "adam",
    batch_size: int = 1024,
    seed: int = 0,
    schedule: str | Callable | None = None,
    early_stopping: EarlyStopping | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.mse_loss,
    experiment: str | None = None,
    run_name: str | None = None,
    params: dict[str, object] | None = None,
    save_weights: bool = False,
    **trainer_kwargs,
) -> Fit:
    """Train `model` on `train` (tensors `(*inputs, target)` or an iterable of such batches),
    validating on `val` after every epoch; with an `experiment`, record it as one MLflow run
    (with `save_weights`, the trained weights too, as the artifact `model/state_dict.pt`).

    Returns the model (with its best epoch's weights under `early_stopping`), the per-epoch
    history (`epoch`, `train_loss`, `val_loss`) and the final metrics. `optimizer` and
    `schedule` take a name or a factory (see `make_optimizer`, `make_scheduler`);
    `trainer_kwargs` (e.g. `accelerator`, `devices`, `strategy`) go to Lightning's `Trainer`.
    """
    device, trainer_kwargs["accelerator"] = pick_device(trainer_kwargs.get("accelerator"))
    stop = StopOnDivergence(describe="")
    trainer = make_trainer(epochs, [stop, *trainer_kwargs.pop("callbacks", [])], **trainer_kwargs)
    shard = (trainer.global_rank, trainer.world_size)  # (0, 1) but under `strategy="ddp"`
    train_batches = as_batches(train, batch_size, device, shuffle=True, seed=seed, shard=shard)
    val_batches = None if val is None else as_batches(val, 8192, device, shuffle=False, shard=shard)
    trainee = Trainee(
        model,
        loss,
        make_optimizer(optimizer, lr, weight_decay, device),
        make_scheduler(schedule, lr, epochs * len(train_batches)),
        early_stopping,
    )
    name = run_name or describe_model(model, lr, weight_decay, seed)
    settings = {"lr": lr, "weight_decay": weight_decay, "seed": seed, "epochs": epochs}
    settings |= describe_batching(train_batches) | named(optimizer=optimizer, schedule=schedule)
    settings |= {"early_stopping": early_stopping, "model": type(model).__name__}
    record = start_record(trainer, experiment, name, settings | (params or {}))
    stop.describe = describe_fit(record, name, trainer.global_rank)
    seconds = run_trainer(trainer, trainee, (train_batches, val_batches), seed, record)
    history = pl.DataFrame(trainee.epochs, schema=history_schema(val is not None))
    metrics = final_metrics(history, early_stopping is not None, seconds, model)
    if record:
        record.finish(history, metrics, model if save_weights else None)
    run_id = record.run_id if record else None
    return Fit(model, history, metrics, run_id, record, trainee.steps_taken)


def start_record(
    trainer: L.Trainer, experiment: str | None, name: str, settings: dict[str, object]
) -> RunRecord | None:
    """One MLflow run per fit, however many processes train it (None off the first process)."""
    if not trainer.is_global_zero:
        return None
    processes = {"processes": trainer.world_size} if trainer.world_size > 1 else {}
    return RunRecord.start(experiment, name, settings | processes)


def run_trainer(
    trainer: L.Trainer,
    trainee: Trainee,
    batches: tuple[Iterable[Batch], Iterable[Batch] | None],
    seed: int,
    record: RunRecord | None,
) -> float:
    """Train on one seeded, restored generator and `get_thread_count()` threads; the seconds
    it took. A failure marks the run failed, with the epochs it completed."""
    train_batches, val_batches = batches
    # Under DDP a step must be one forward and one backward, which average the gradients.
    group_size = BATCHES_PER_STEP if trainer.world_size == 1 else 1
    start = time.perf_counter()
    try:
        with (
            torch.random.fork_rng(devices=[]),
            torch_threads(get_thread_count()),
            warnings.catch_warnings(),
        ):
            torch.manual_seed(seed)
            # `Trainee` always defines `validation_step`; a fit without `val` is not a mistake.
            warnings.filterwarnings("ignore", message=".*validation_step` but have no `val_data")
            trainer.fit(trainee, BatchGroups(train_batches, group_size), val_batches)
    except BaseException as error:
        if record:
            record.fail(trainee.epochs)
        if isinstance(error, SystemExit) and trainer.interrupted:
            # Lightning answers Ctrl-C (or a kernel interrupt) with sys.exit(1): say what it was
            raise KeyboardInterrupt from None
        raise
    return time.perf_counter() - start


def describe_batching(batches: Iterable) -> dict[str, object]:
    """The batch size and shuffling a loader really uses, as far as it says (else None)."""
    return {
        "batch_size": getattr(batches, "batch_size", None),
        "shuffle": getattr(batches, "shuffle", None),
    }


def named(**settings: object) -> dict[str, object]:
    """Settings for MLflow, a function (an optimiser or schedule factory) by its name."""
    return {key: getattr(value, "__name__", value) for key, value in settings.items()}


def describe_fit(record: RunRecord | None, name: str, rank: int) -> str:
    """How errors name a fit: its MLflow run, or its name (and process, beyond the first)."""
    if record is not None:
        return record.describe()
    return f"fit {name!r} ({f'process {rank} of a distributed fit' if rank else 'not tracked'})"


def history_schema(validated: bool) -> dict[str, pl.DataType]:
    """Columns of a `Fit.history`."""
    schema = {"epoch": pl.Int64, "train_loss": pl.Float64}
    return schema | ({"val_loss": pl.Float64} if validated else {})


def final_metrics(
    history: pl.DataFrame, kept_best: bool, seconds: float, model: nn.Module
) -> dict[str, float]:
    """Last training loss, best validation loss and its epoch, epochs run, time, size."""
    metrics = {"train_loss": history.item(-1, "train_loss"), "epochs_run": history.height}
    if "val_loss" in history.columns:
        best = history.get_column("val_loss").arg_min()
        metrics |= {"val_loss": history.item(best, "val_loss"), "best_epoch": best + 1}
        if not kept_best:  # no early stopping: the model is the last epoch's
            metrics |= {"val_loss": history.item(-1, "val_loss"), "best_epoch": history.height}
    n_params = sum(p.numel() for p in model.parameters())
    return metrics | {"train_seconds": seconds, "n_params": n_params}


@torch.no_grad()
def predict(model: nn.Module, *inputs: torch.Tensor, batch_size: int = 65_536) -> torch.Tensor:
    """The model's predictions for the rows of `inputs`, in order, without gradients."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = zip(*(t.to(device).split(batch_size) for t in inputs), strict=True)
    predictions = torch.cat([model(*chunk) for chunk in chunks])
    model.train(was_training)
    return predictions


def evaluate(model: nn.Module, data: Sequence[torch.Tensor], loss: Callable = F.mse_loss) -> float:
    """The model's mean `loss` over every row of `data = (*inputs, target)`."""
    *inputs, target = data
    prediction = predict(model, *inputs)
    return loss(prediction.double(), target.to(prediction.device).double()).item()
