"""Seeded synthetic MovieLens-shaped ratings for the benchmarks: users and movies with biases and
latent factors, so that a model has something to learn, rounded to MovieLens' half stars."""

from __future__ import annotations

import numpy as np
import polars as pl

# MovieLens 25M restricted to its 50 most-rated movies: 2,544,549 ratings by ~157k users.
TOP50_SHAPE = {"n_users": 157_000, "n_movies": 50, "n_ratings": 2_544_549}
# All of MovieLens 25M: 25,000,095 ratings of 59,047 movies by 162,541 users; a few movies
# collect most ratings, so popularity follows a Zipf law.
ML25M_SHAPE = {"n_users": 162_541, "n_movies": 59_047, "n_ratings": 25_000_095, "zipf": 0.8}


def make_ratings(
    n_users: int,
    n_movies: int,
    n_ratings: int,
    *,
    seed: int = 0,
    n_factors: int = 3,
    zipf: float | None = None,
) -> pl.DataFrame:
    """About `n_ratings` distinct (user, movie) ratings in 0.5..5 by steps of 0.5, with ids
    `userId`/`movieId` from 1 and a `timestamp`, in (user, movie) order like MovieLens' files."""
    rng = np.random.default_rng(seed)
    users, movies = sample_pairs(rng, n_users, n_movies, n_ratings, zipf)
    user_factors = rng.normal(0, 0.6, (n_users, n_factors)).astype(np.float32)
    movie_factors = rng.normal(0, 0.6, (n_movies, n_factors)).astype(np.float32)
    user_bias = rng.normal(0, 0.5, n_users).astype(np.float32)
    movie_bias = rng.normal(0, 0.4, n_movies).astype(np.float32)
    score = 3.5 + user_bias[users] + movie_bias[movies]
    score += np.einsum("ij,ij->i", user_factors[users], movie_factors[movies])
    score += rng.normal(0, 0.7, len(users)).astype(np.float32)
    ratings = np.clip(np.round(score * 2) / 2, 0.5, 5.0)
    timestamps = rng.integers(789_652_009, 1_574_327_703, len(users))
    return pl.DataFrame(
        {"userId": users + 1, "movieId": movies + 1, "rating": ratings, "timestamp": timestamps},
        schema={
            "userId": pl.Int64,
            "movieId": pl.Int64,
            "rating": pl.Float64,
            "timestamp": pl.Int64,
        },
    )


def sample_pairs(
    rng: np.random.Generator, n_users: int, n_movies: int, n_ratings: int, zipf: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, movie) pairs, sorted: active users and popular movies are rated more.

    Movie popularity is log-normal, or Zipf with exponent `zipf` (in a shuffled id order)."""
    activity = rng.lognormal(0, 0.8, n_users)
    if zipf is None:
        popularity = rng.lognormal(0, 0.5, n_movies)
    else:
        popularity = rng.permutation(1 / np.arange(1, n_movies + 1) ** zipf)
    pairs = np.empty(0, dtype=np.int64)
    while len(pairs) < n_ratings and len(pairs) < n_users * n_movies // 2:
        draws = 2 * (n_ratings - len(pairs)) + 1_000
        users = rng.choice(n_users, size=draws, p=activity / activity.sum())
        movies = rng.choice(n_movies, size=draws, p=popularity / popularity.sum())
        pairs = np.union1d(pairs, users.astype(np.int64) * n_movies + movies)
    pairs = np.sort(rng.choice(pairs, size=min(n_ratings, len(pairs)), replace=False))
    return pairs // n_movies, pairs % n_movies
