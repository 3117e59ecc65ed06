"""What notebooks 04–06 share: the two rating models 04 and 05 teach (here because a later
notebook trains them again), the mean baseline, and Surprise's models on the same split."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import polars as pl
import torch
from surprise import Dataset, Reader
from torch import nn

from utilities.sweep import run_sweep

Ratings = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def sigmoid_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """A sigmoid stretched from (0, 1) to (low, high)."""
    return torch.sigmoid(x) * (high - low) + low


class DotProductBias(nn.Module):
    """Notebook 04's final model: user·movie dot product → Linear(1, 1), plus a bias per user
    and per movie, through a sigmoid stretched to `y_range` (notebook 04 builds it up)."""

    def __init__(self, n_users, n_movies, n_factors, y_range=(0.0, 5.5), init_std=0.01):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.movie_factors = nn.Embedding(n_movies, n_factors)
        nn.init.normal_(self.user_factors.weight, std=init_std)
        nn.init.normal_(self.movie_factors.weight, std=init_std)
        self.linear = nn.Linear(1, 1)
        self.y_range = y_range
        self.user_bias = nn.Embedding(n_users, 1)
        self.movie_bias = nn.Embedding(n_movies, 1)
        nn.init.normal_(self.user_bias.weight, std=init_std)
        nn.init.normal_(self.movie_bias.weight, std=init_std)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(users) * self.movie_factors(movies)).sum(1, keepdim=True)
        biases = self.user_bias(users) + self.movie_bias(movies)
        return sigmoid_range((self.linear(dot) + biases).squeeze(1), *self.y_range)


class CollabNN(nn.Module):
    """Notebook 05's model: user and movie embeddings concatenated, then Linear → ReLU →
    Linear and the same stretched sigmoid."""

    def __init__(
        self, n_users: int, n_movies: int, n_factors: int, n_hidden: int, y_range=(0.0, 5.5)
    ):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.movie_factors = nn.Embedding(n_movies, n_factors)
        for table in (self.user_factors, self.movie_factors):
            nn.init.normal_(table.weight, std=0.01)
        self.layers = nn.Sequential(
            nn.Linear(2 * n_factors, n_hidden), nn.ReLU(), nn.Linear(n_hidden, 1)
        )
        self.y_range = y_range

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        pairs = torch.cat([self.user_factors(users), self.movie_factors(movies)], dim=1)
        return sigmoid_range(self.layers(pairs).squeeze(1), *self.y_range)


def mean_baseline_mse(train: Ratings, other: Ratings) -> float:
    """MSE on `other` of always predicting the mean training rating."""
    mean = train[2].double().mean()
    return ((other[2].double() - mean) ** 2).mean().item()


def unseen_in_training(train: Ratings, other: Ratings) -> torch.Tensor:
    """Which rows of `other` have a user or a movie that no training rating has."""
    seen_users = torch.isin(other[0], train[0].unique())
    seen_movies = torch.isin(other[1], train[1].unique())
    return ~(seen_users & seen_movies)


def fit_surprise(algorithm, train: Ratings):
    """Train a Surprise algorithm on the training ratings (raw ids are the mapped ids)."""
    frame = {"user": train[0].numpy(), "movie": train[1].numpy(), "rating": train[2].numpy()}
    scale = (train[2].min().item(), train[2].max().item())
    data = Dataset.load_from_df(pd.DataFrame(frame), Reader(rating_scale=scale))
    algorithm.fit(data.build_full_trainset())
    return algorithm


def predict_surprise(algorithm, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
    """A trained Surprise algorithm's predictions for (user, movie) pairs, in order."""
    pairs = zip(users.tolist(), movies.tolist(), strict=True)
    estimates = [algorithm.predict(user, movie).est for user, movie in pairs]
    return torch.from_numpy(np.asarray(estimates, dtype=np.float32))


def tune_then_repeat(
    train_one: Callable[..., tuple[dict, nn.Module]],
    grid: dict[str, list],
    seeds: list[int],
    score_test: Callable[[nn.Module], dict[str, float]],
    *,
    select: str = "val_mse",
    maximise: bool = False,
) -> pl.DataFrame:
    """Train every setting of `grid` at `seeds[0]` and keep the lowest `select` (the highest with
    `maximise`, the first in grid order on a tie); train that setting at the other seeds; score
    each of those models once on the test split.

    `train_one(**setting, seed=...)` returns a row (with `select`) and the trained model.
    """
    trials = run_sweep(train_one, grid, seed=seeds[0], description="tuning")
    best = max if maximise else min
    row, model = best(trials, key=lambda trial: trial[0][select])
    setting = {key: row[key] for key in grid}
    others = {"seed": seeds[1:]}
    repeats = run_sweep(train_one, others, **setting, description="seeds") if seeds[1:] else []
    chosen = [(row, model), *repeats]
    return pl.DataFrame([row | score_test(model) for row, model in chosen])
