"""What the rating notebooks (04–07) share besides their models: the mean baseline, which test
ratings are cold, their scores, and Surprise's models on the same split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from surprise import Dataset, Reader

Ratings = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def mean_baseline_mse(train: Ratings, other: Ratings) -> float:
    """MSE on `other` of always predicting the mean training rating."""
    mean = train[2].double().mean()
    return ((other[2].double() - mean) ** 2).mean().item()


def unseen_in_training(train: Ratings, other: Ratings) -> torch.Tensor:
    """Which rows of `other` have a user or a movie that no training rating has."""
    seen_users = torch.isin(other[0], train[0].unique())
    seen_movies = torch.isin(other[1], train[1].unique())
    return ~(seen_users & seen_movies)


def rating_scores(
    predictions: torch.Tensor, targets: torch.Tensor, cold: torch.Tensor
) -> dict[str, float]:
    """RMSE overall, on the ratings seen and unseen (`cold`) in training, and the mean prediction
    on the unseen ones."""
    errors = (predictions.double() - targets.double()) ** 2
    return {
        "test_rmse": errors.mean().sqrt().item(),
        "seen_rmse": errors[~cold].mean().sqrt().item(),
        "unseen_rmse": errors[cold].mean().sqrt().item(),
        "unseen_prediction": predictions[cold].double().mean().item(),
    }


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
