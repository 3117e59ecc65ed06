"""Seeded train/validation/test splits of ratings, and loaders that slice batches from tensors."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import polars as pl
import torch


def check_fractions(val_frac: float, test_frac: float) -> None:
    """Each fraction in [0, 1), together below 1, so that training keeps some rows."""
    for name, value in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}.")
    if val_frac + test_frac >= 1:
        raise ValueError(
            f"val_frac + test_frac must be below 1 to leave rows for training, "
            f"got {val_frac} + {test_frac} = {val_frac + test_frac}."
        )


def split_train_test(
    ratings_df: pl.DataFrame, *, val_frac: float = 0.2, test_frac: float = 0.1, seed: int = 42
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Disjoint train/val/test frames covering every row, chosen by a seeded permutation.

    Rows keep their original order within each part.
    """
    check_fractions(val_frac, test_frac)
    n_rows = ratings_df.height
    n_val, n_test = round(n_rows * val_frac), round(n_rows * test_frac)
    order = np.random.default_rng(seed).permutation(n_rows)
    parts = np.split(order, [n_rows - n_val - n_test, n_rows - n_test])
    return tuple(ratings_df[np.sort(part)] for part in parts)


class TensorBatchLoader:
    """Batches sliced from tensors held in memory: no per-item `__getitem__`, no collate.

    With `shuffle=True` every epoch draws a new permutation from a generator seeded once,
    so the sequence of epochs is the same for the same seed. With `shard=(rank, world_size)`
    each batch keeps every `world_size`-th row from `rank` on: processes that share the seed
    split each batch between them, and together see exactly the single-process batches.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        check_batch_size(batch_size)
        if len({len(tensor) for tensor in tensors}) != 1:
            raise ValueError(f"tensors must have one length, got {[len(t) for t in tensors]}.")
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        rank, world_size = shard
        if not 0 <= rank < world_size:
            raise ValueError(
                f"shard must be (rank, world_size) with 0 <= rank < world_size, got {shard}."
            )
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return math.ceil(len(self.tensors[0]) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        tensors = self.tensors
        if self.shuffle:
            n_rows = len(tensors[0])
            # int32 draws the same permutation as int64, in half the time.
            dtype = torch.int32 if n_rows < 2**31 else torch.int64
            order = torch.randperm(n_rows, generator=self.generator, dtype=dtype)
            tensors = tuple(tensor.index_select(0, order.to(tensor.device)) for tensor in tensors)
        step, rank = self.world_size, self.rank
        for start in range(0, len(tensors[0]), self.batch_size):
            yield tuple(tensor[start : start + self.batch_size][rank::step] for tensor in tensors)


def check_batch_size(batch_size: int) -> None:
    """A positive integer, or a ValueError naming the value."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")


def ratings_to_tensors(
    ratings_df: pl.DataFrame, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(user_ids, movie_ids, ratings)` as int64, int64 and float32 tensors."""
    users = torch.from_numpy(ratings_df.get_column("userIdMapped").to_numpy().astype(np.int64))
    movies = torch.from_numpy(ratings_df.get_column("movieIdMapped").to_numpy().astype(np.int64))
    ratings = torch.from_numpy(ratings_df.get_column("rating").to_numpy().astype(np.float32))
    return users.to(device), movies.to(device), ratings.to(device)


Ratings = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def get_rating_splits(
    ratings_df: pl.DataFrame,
    *,
    seed: int = 42,
    sample: int | None = None,
    val_frac: float = 0.2,
    test_frac: float = 0.1,
) -> tuple[Ratings, Ratings, Ratings]:
    """Train, validation and test `(users, movies, ratings)` tensors of a seeded split.

    `sample` first takes a seeded subsample of that many rows.
    """
    if sample is not None:
        ratings_df = take_sample(ratings_df, sample, seed)
    parts = split_train_test(ratings_df, val_frac=val_frac, test_frac=test_frac, seed=seed)
    return tuple(ratings_to_tensors(part) for part in parts)


def take_sample(ratings_df: pl.DataFrame, sample: int, seed: int) -> pl.DataFrame:
    """A seeded subsample of `sample` rows, in their original order."""
    if not isinstance(sample, int) or not 1 <= sample <= ratings_df.height:
        raise ValueError(
            f"sample must be between 1 and the {ratings_df.height} rows, got {sample!r}."
        )
    rows = np.random.default_rng(seed).choice(ratings_df.height, size=sample, replace=False)
    return ratings_df[np.sort(rows)]


def get_data_loaders(
    ratings_df: pl.DataFrame,
    *,
    batch_size: int = 1024,
    seed: int = 42,
    val_frac: float = 0.2,
    test_frac: float = 0.1,
) -> tuple[TensorBatchLoader, TensorBatchLoader, TensorBatchLoader]:
    """Train (shuffled), validation and test loaders of `(users, movies, ratings)` batches over
    `get_rating_splits`' seeded split, as the original notebooks called them."""
    splits = get_rating_splits(ratings_df, seed=seed, val_frac=val_frac, test_frac=test_frac)
    return tuple(
        TensorBatchLoader(*tensors, batch_size=batch_size, shuffle=shuffle, seed=seed)
        for tensors, shuffle in zip(splits, (True, False, False), strict=True)
    )
