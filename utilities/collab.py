"""Rating models for MovieLens shared by notebooks 04–06: the sigmoid rating range, a Lightning
base that trains and evaluates any `(users, movies) -> rating` model, the two models of 04 and 05,
the mean baseline, and the comparison of all of them kept in one MLflow experiment."""

from __future__ import annotations

import math
import tempfile
import time

import polars as pl
import torch
from torch import nn
from torch.nn import functional as F

from utilities.models import PairRegressor, count_parameters
from utilities.splits import BatchGroups, TensorBatchLoader
from utilities.tracking import DATASETS, get_client, get_mlflow_logger, load_experiment_runs
from utilities.training import make_trainer

COMPARISON_EXPERIMENT = "movielens_comparison"
COMPARISON_MODELS = ("mean baseline", "sigmoid dot", "CollabNN", "MF from scratch")
# The final settings of notebooks 04 and 05, so that notebook 06 can train what is missing.
SIGMOID_DOT_RECIPE = {"n_factors": 32, "init_std": 0.01, "weight_decay": 1e-5}
COLLAB_NN_RECIPE = {"n_hidden": 100, "weight_decay": 1e-4}
# Training batches handed to Lightning at once: one Adam step each, Lightning's fixed cost per
# step paid once per group (measured in benchmarks/train_speed.py).
BATCHES_PER_STEP = 8
# Early stopping per model: N(0, 1)-initialised sigmoid dots escape saturation slowly, so
# notebook 04 gives every variant 40 epochs before stopping may stop it.
EARLY_STOPPING = {
    "sigmoid dot": {"max_epochs": 60, "min_epochs": 40, "patience": 5},
    "CollabNN": {"max_epochs": 60, "min_epochs": 5, "patience": 5},
}


def get_rating_range(ratings: torch.Tensor, margin: float = 0.5) -> tuple[float, float]:
    """The observed rating range widened by `margin` on each side, for `sigmoid_range`."""
    if margin < 0:
        raise ValueError(f"margin must be non-negative, got {margin}.")
    return ratings.min().item() - margin, ratings.max().item() + margin


def sigmoid_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """A sigmoid stretched from (0, 1) to (low, high)."""
    return torch.sigmoid(x) * (high - low) + low


def logit_in_range(value: float, low: float, high: float) -> float:
    """The inverse of `sigmoid_range`: the input at which it outputs `value`."""
    if not low < value < high:
        raise ValueError(f"value must lie strictly inside ({low}, {high}), got {value}.")
    share = (value - low) / (high - low)
    return math.log(share / (1 - share))


class RatingModel(PairRegressor):
    """Base of the rating models: MSE loss logged as `<dataset>_loss` (the epoch's mean over
    its ratings), Adam with weight decay.

    Subclasses define `forward(users, movies) -> ratings`. A training batch is one
    `(users, movies, ratings)` batch or a list of them (`BatchGroups`): Adam steps once per
    batch either way, so grouping changes only how often Lightning's per-step work runs.
    Adam runs as one fused kernel per step (`fused=True`, measured 4x faster than PyTorch's
    CPU default on a 157k-user table).
    """

    def __init__(
        self, learning_rate: float = 5e-3, weight_decay: float = 0.0, fused: bool = True
    ) -> None:
        super().__init__()
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.fused = fused
        self.automatic_optimization = False  # the steps are taken in `training_step`

    def configure_optimizers(self):
        return torch.optim.Adam(
            self.parameters(),
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
            fused=self.fused,
        )

    def training_step(self, batch, batch_idx) -> torch.Tensor:
        """One Adam step per batch of the group; returns the mean loss over its ratings."""
        batches = [batch] if isinstance(batch[0], torch.Tensor) else batch
        optimiser = self.optimizers()
        losses, sizes = [], []
        for users, movies, ratings in batches:
            loss = F.mse_loss(self(users, movies), ratings)
            optimiser.zero_grad()
            self.manual_backward(loss)
            optimiser.step()
            losses.append(loss.detach())
            sizes.append(len(ratings))
        weights = torch.tensor(sizes, dtype=loss.dtype, device=loss.device) / sum(sizes)
        group_loss = torch.stack(losses) @ weights  # the mean over the group's ratings
        self.record("train", group_loss, sum(sizes))
        return group_loss


class Embedding(nn.Embedding):
    """`nn.Embedding` (no padding or max-norm options) that looks rows up with `index_select`.

    Same values and gradients; the backward is one scatter-add into a zero table, measured 2x
    faster on CPU than `nn.Embedding`'s own backward for a 157k×5 table and batch 4096.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__(num_embeddings, embedding_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.weight.index_select(0, ids.reshape(-1))
        return rows.view(*ids.shape, self.embedding_dim)


class SigmoidDot(RatingModel):
    """Notebook 04: user·movie dot product → Linear(1, 1) → sigmoid scaled to `y_range`.

    `init_std=None` keeps `nn.Embedding`'s N(0, 1) initialisation.
    """

    def __init__(
        self,
        n_users: int,
        n_movies: int,
        n_factors: int,
        y_range: tuple[float, float],
        mean_rating: float,
        init_std: float | None = None,
        **optimiser,
    ) -> None:
        super().__init__(**optimiser)
        self.save_hyperparameters()
        self.user_factors = Embedding(n_users, n_factors)
        self.movie_factors = Embedding(n_movies, n_factors)
        if init_std is not None:
            nn.init.normal_(self.user_factors.weight, std=init_std)
            nn.init.normal_(self.movie_factors.weight, std=init_std)
        self.linear = nn.Linear(1, 1)
        nn.init.constant_(self.linear.bias, logit_in_range(mean_rating, *y_range))

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return sigmoid_range(self.logits(users, movies), *self.hparams.y_range)

    def logits(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """The pre-sigmoid activations."""
        dot = (self.user_factors(users) * self.movie_factors(movies)).sum(1, keepdim=True)
        return self.linear(dot).squeeze(1)


def get_embedding_size(n_categories: int) -> int:
    """fast.ai's rule of thumb for an embedding's width: min(600, round(1.6 · n^0.56))."""
    if n_categories < 1:
        raise ValueError(f"n_categories must be positive, got {n_categories}.")
    return min(600, round(1.6 * n_categories**0.56))


class CollabNN(RatingModel):
    """Notebook 05: user and movie embeddings concatenated → Linear → ReLU → Linear → sigmoid."""

    def __init__(
        self,
        user_size: tuple[int, int],
        movie_size: tuple[int, int],
        n_hidden: int,
        y_range: tuple[float, float],
        mean_rating: float,
        init_std: float = 0.01,
        **optimiser,
    ) -> None:
        super().__init__(**optimiser)
        self.save_hyperparameters()
        self.user_factors = Embedding(*user_size)
        self.movie_factors = Embedding(*movie_size)
        nn.init.normal_(self.user_factors.weight, std=init_std)
        nn.init.normal_(self.movie_factors.weight, std=init_std)
        self.layers = nn.Sequential(
            nn.Linear(user_size[1] + movie_size[1], n_hidden), nn.ReLU(), nn.Linear(n_hidden, 1)
        )
        nn.init.constant_(self.layers[-1].bias, logit_in_range(mean_rating, *y_range))

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        embedded = torch.cat([self.user_factors(users), self.movie_factors(movies)], dim=1)
        return sigmoid_range(self.layers(embedded).squeeze(1), *self.hparams.y_range)


@torch.no_grad()
def predict_ratings(model: nn.Module, loader: TensorBatchLoader) -> torch.Tensor:
    """The model's predictions for `loader`'s rows in their stored order (never shuffled)."""
    model.eval()
    in_order = TensorBatchLoader(*loader.tensors, batch_size=loader.batch_size)
    return torch.cat([model(users, movies) for users, movies, _ in in_order])


def evaluate_mse(model: nn.Module, loader: TensorBatchLoader) -> float:
    """Mean squared error over all of `loader`'s rows (not a mean of batch means)."""
    ratings = loader.tensors[2]
    return F.mse_loss(predict_ratings(model, loader), ratings.to(torch.float32)).item()


def evaluate_mean_baseline(train: TensorBatchLoader, other: TensorBatchLoader) -> float:
    """MSE on `other` of always predicting the mean training rating."""
    mean = train.tensors[2].to(torch.float64).mean()
    return ((other.tensors[2].to(torch.float64) - mean) ** 2).mean().item()


def train_rating_model(
    model: RatingModel,
    loaders: tuple[TensorBatchLoader, TensorBatchLoader, TensorBatchLoader],
    *,
    experiment: str,
    tags: dict[str, str],
    max_epochs: int,
    min_epochs: int | None = None,
    patience: int | None = None,
    batches_per_step: int = BATCHES_PER_STEP,
) -> str:
    """Fit with early stopping, keep the best checkpoint (also as a run artifact), log its
    exact `train_mse`/`val_mse`/`test_mse`, `train_seconds` and `n_params`; returns the run id.

    Lightning gets the training batches `batches_per_step` at a time (`BatchGroups`); the
    model still takes one Adam step per batch. The model holds the best checkpoint's weights
    afterwards.
    """
    logger = get_mlflow_logger(experiment, tags=tags)
    with tempfile.TemporaryDirectory(prefix="dotlab-") as root:  # checkpoints live in MLflow
        trainer = make_trainer(
            max_epochs=max_epochs,
            min_epochs=min_epochs,
            patience=patience,
            checkpoint=True,
            logger=logger,
            default_root_dir=root,
        )
        start = time.perf_counter()
        trainer.fit(model, BatchGroups(loaders[0], batches_per_step), loaders[1])
        seconds = time.perf_counter() - start
        trainer.test(model, loaders[2], ckpt_path="best", verbose=False)
        best = trainer.checkpoint_callback.best_model_path
        logger.experiment.log_artifact(logger.run_id, best, "checkpoints")
    mses = {
        f"{name}_mse": evaluate_mse(model, loader)
        for name, loader in zip(DATASETS, loaders, strict=True)
    }
    logger.log_metrics({**mses, "train_seconds": seconds, "n_params": count_parameters(model)})
    logger.log_hyperparams({"epochs_run": trainer.current_epoch})
    logger.finalize("success")
    return logger.run_id


def log_comparison(
    model_name: str,
    *,
    dataset: str,
    split_seed: int,
    test_mse: float,
    n_params: int,
    train_seconds: float,
) -> str:
    """One row of the shared comparison: a run in `COMPARISON_EXPERIMENT`; returns its id."""
    if model_name not in COMPARISON_MODELS:
        raise ValueError(f"model_name must be one of {COMPARISON_MODELS}, got {model_name!r}.")
    tags = {"model": model_name, "dataset": dataset, "split_seed": str(split_seed)}
    logger = get_mlflow_logger(COMPARISON_EXPERIMENT, run_name=model_name, tags=tags)
    metrics = {"test_mse": test_mse, "test_rmse": math.sqrt(test_mse)}
    logger.log_metrics({**metrics, "n_params": n_params, "train_seconds": train_seconds})
    logger.finalize("success")
    return logger.run_id


def load_comparison(dataset: str, split_seed: int) -> pl.DataFrame:
    """The latest comparison row of each model on this dataset and split, in fixed order.

    Models never logged for this dataset and split are missing.
    """
    if get_client().get_experiment_by_name(COMPARISON_EXPERIMENT) is None:
        return pl.DataFrame(schema={"model": pl.String})
    tags = {"dataset": dataset, "split_seed": str(split_seed)}
    runs = load_experiment_runs(COMPARISON_EXPERIMENT, tags=tags)
    if runs.is_empty():
        return pl.DataFrame(schema={"model": pl.String})
    order = pl.col("model").replace_strict(COMPARISON_MODELS, range(len(COMPARISON_MODELS)))
    latest = runs.group_by("model", maintain_order=True).last()
    return latest.with_columns(pl.col("n_params").cast(pl.Int64)).sort(order)


def make_sigmoid_dot(n_users: int, n_movies: int, train_ratings: torch.Tensor, **changes):
    """Notebook 04's final model: `SIGMOID_DOT_RECIPE` (with `changes`), range and mean from
    the training ratings."""
    recipe = {**SIGMOID_DOT_RECIPE, **changes}
    y_range, mean = get_rating_range(train_ratings), train_ratings.mean().item()
    return SigmoidDot(n_users, n_movies, y_range=y_range, mean_rating=mean, **recipe)


def make_collab_nn(n_users: int, n_movies: int, train_ratings: torch.Tensor, **changes):
    """Notebook 05's final model: `COLLAB_NN_RECIPE` (with `changes`), embedding sizes from
    `get_embedding_size`."""
    recipe = {**COLLAB_NN_RECIPE, **changes}
    sizes = [(n, get_embedding_size(n)) for n in (n_users, n_movies)]
    y_range, mean = get_rating_range(train_ratings), train_ratings.mean().item()
    return CollabNN(*sizes, y_range=y_range, mean_rating=mean, **recipe)


def train_for_comparison(
    model_name: str,
    model: RatingModel,
    loaders: tuple[TensorBatchLoader, TensorBatchLoader, TensorBatchLoader],
    *,
    experiment: str,
    tags: dict[str, str],
    dataset: str,
    split_seed: int,
) -> str:
    """`train_rating_model` with the model's `EARLY_STOPPING`, then its row in the comparison;
    returns the training run's id."""
    stopping = EARLY_STOPPING[model_name]
    run_id = train_rating_model(model, loaders, experiment=experiment, tags=tags, **stopping)
    log_comparison_from_run(model_name, run_id, dataset=dataset, split_seed=split_seed)
    return run_id


def log_comparison_from_run(model_name: str, run_id: str, *, dataset: str, split_seed: int) -> str:
    """The comparison row of a `train_rating_model` run: its test MSE, parameters and time."""
    metrics = get_client().get_run(run_id).data.metrics
    return log_comparison(
        model_name,
        dataset=dataset,
        split_seed=split_seed,
        test_mse=metrics["test_mse"],
        n_params=int(metrics["n_params"]),
        train_seconds=metrics["train_seconds"],
    )
