"""Train/validation/test splits, as frames and as tensors, and the tensor batch loader."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

import utilities
from utilities.splits import TensorBatchLoader, get_rating_splits, split_train_test, take_sample


@pytest.fixture(scope="module")
def indexed(bundled_ratings):
    return bundled_ratings.with_row_index("row")


def rows_of(frame: pl.DataFrame) -> list[int]:
    return frame.get_column("row").to_list()


# ---------------------------------------------------------------- split_train_test


def test_split_sizes_70_20_10(indexed):
    n = indexed.height
    train, val, test = split_train_test(indexed, val_frac=0.2, test_frac=0.1, seed=42)
    assert (train.height, val.height, test.height) == (70_585, 20_167, 10_084)
    assert val.height == round(0.2 * n) and test.height == round(0.1 * n)
    assert train.height + val.height + test.height == n


def test_split_is_disjoint_covering_and_keeps_rows_whole(indexed):
    parts = split_train_test(indexed, seed=3)
    everything = sorted(row for part in parts for row in rows_of(part))
    assert everything == list(range(indexed.height))  # each row exactly once
    for part in parts:
        assert rows_of(part) == sorted(rows_of(part))  # original order kept
        # every row is the original row, all columns together
        assert part.equals(indexed.filter(pl.col("row").is_in(rows_of(part))))


def test_split_is_deterministic_per_seed(indexed):
    first = split_train_test(indexed, seed=7)
    second = split_train_test(indexed, seed=7)
    other = split_train_test(indexed, seed=8)
    assert all(a.equals(b) for a, b in zip(first, second, strict=True))
    for a, b in zip(first, other, strict=True):
        assert a.height == b.height
        assert rows_of(a) != rows_of(b)
    # the two seeds' test sets overlap about as much as two random 10% samples would
    overlap = len(set(rows_of(first[2])) & set(rows_of(other[2])))
    assert abs(overlap / first[2].height - 0.1) < 0.02


def test_split_without_val_and_test(indexed):
    train, val, test = split_train_test(indexed, val_frac=0, test_frac=0)
    assert train.equals(indexed)
    assert val.height == test.height == 0
    assert val.columns == test.columns == indexed.columns


@pytest.mark.parametrize(
    ("val_frac", "test_frac", "shown"),
    [
        (-0.1, 0.1, "-0.1"),
        (0.2, -0.5, "-0.5"),
        (1.0, 0.0, "1.0"),
        (0.2, 1.5, "1.5"),
        (0.5, 0.5, "0.5 + 0.5"),
        (0.7, 0.4, "0.7 + 0.4"),
        (float("nan"), 0.1, "nan"),
    ],
)
def test_bad_fractions(indexed, val_frac, test_frac, shown):
    with pytest.raises(ValueError, match="frac") as caught:
        split_train_test(indexed, val_frac=val_frac, test_frac=test_frac)
    assert shown in str(caught.value)


# ---------------------------------------------------------------- rating tensors


def key(users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
    """One int per (user, movie): MovieLens has at most one rating per pair."""
    return users * 1_000_000 + movies


def frame_keys(frame: pl.DataFrame) -> torch.Tensor:
    users = torch.tensor(frame.get_column("userIdMapped").to_numpy().astype(np.int64))
    movies = torch.tensor(frame.get_column("movieIdMapped").to_numpy().astype(np.int64))
    return key(users, movies)


def test_pairs_are_unique_so_keys_identify_rows(bundled_ratings):
    assert frame_keys(bundled_ratings).unique().numel() == bundled_ratings.height


def test_rating_splits_are_the_split_frames_as_tensors(bundled_ratings):
    parts = get_rating_splits(bundled_ratings, seed=5, val_frac=0.25, test_frac=0.05)
    frames = split_train_test(bundled_ratings, seed=5, val_frac=0.25, test_frac=0.05)
    for (users, movies, ratings), frame in zip(parts, frames, strict=True):
        assert (users.dtype, movies.dtype, ratings.dtype) == (
            torch.int64,
            torch.int64,
            torch.float32,
        )
        assert users.shape == movies.shape == ratings.shape == (frame.height,)
        assert torch.equal(key(users, movies), frame_keys(frame))  # the split's rows, in order
        expected = [float(np.float32(r)) for r in frame.get_column("rating").to_list()]
        assert ratings.tolist() == expected
    assert [len(part[0]) for part in parts] == [frame.height for frame in frames]
    assert frames[1].height == round(0.25 * bundled_ratings.height)


def test_rating_splits_of_a_sample(bundled_ratings):
    def sampled_keys(seed):
        parts = get_rating_splits(bundled_ratings, sample=1_000, seed=seed)
        return [key(users, movies) for users, movies, _ in parts]

    first = sampled_keys(1)
    assert [len(part) for part in first] == [700, 200, 100]
    union = torch.cat(first)
    assert union.unique().numel() == 1_000
    assert all(torch.equal(a, b) for a, b in zip(first, sampled_keys(1), strict=True))
    assert set(union.tolist()) != set(torch.cat(sampled_keys(2)).tolist())
    # the same rows as take_sample picks, computed directly
    direct = take_sample(bundled_ratings, 1_000, 1)
    assert set(frame_keys(direct).tolist()) == set(union.tolist())


@pytest.mark.parametrize("sample", [0, -3, 100_837, 2.5])
def test_bad_sample(bundled_ratings, sample):
    with pytest.raises(ValueError, match="sample") as caught:
        get_rating_splits(bundled_ratings, sample=sample)
    assert repr(sample) in str(caught.value)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, None])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size") as caught:
        TensorBatchLoader(torch.zeros(3), batch_size=batch_size)
    assert repr(batch_size) in str(caught.value)


# ---------------------------------------------------------------- the tensor batch loader


def test_tensor_batch_loader_on_small_tensors():
    x, y = torch.arange(10), torch.arange(10) * 2
    loader = TensorBatchLoader(x, y, batch_size=4)
    assert len(loader) == 3
    assert [a.tolist() for a, _ in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(torch.equal(b, a * 2) for a, b in loader)
    shuffled = TensorBatchLoader(x, y, batch_size=3, shuffle=True, seed=0)
    for _ in range(2):
        pairs = [(a, b) for a, b in shuffled]
        assert all(torch.equal(b, a * 2) for a, b in pairs)  # tensors shuffled together
        assert sorted(torch.cat([a for a, _ in pairs]).tolist()) == list(range(10))

    # the seed decides the order of every epoch
    def orders(seed):
        loader = TensorBatchLoader(torch.arange(1000), batch_size=1000, shuffle=True, seed=seed)
        return [next(iter(loader))[0] for _ in range(2)]

    assert all(torch.equal(a, b) for a, b in zip(orders(1), orders(1), strict=True))
    assert not torch.equal(orders(1)[0], orders(2)[0])
    assert not torch.equal(*orders(1))  # a new permutation every epoch
    with pytest.raises(ValueError, match=r"\[10, 9\]"):
        TensorBatchLoader(x, y[:9], batch_size=4)


def test_shards_split_each_batch_between_processes():
    """Three processes with the same seed see, batch by batch, the single-process batches."""
    x = torch.arange(10)
    whole = [b for (b,) in TensorBatchLoader(x, batch_size=4, shuffle=True, seed=5)]
    shards = [
        [b for (b,) in TensorBatchLoader(x, batch_size=4, shuffle=True, seed=5, shard=(r, 3))]
        for r in range(3)
    ]
    assert [len(s) for s in shards] == [3, 3, 3]  # every process takes as many steps
    for batch, parts in zip(whole, zip(*shards, strict=True), strict=True):
        assert sorted(torch.cat(parts).tolist()) == sorted(batch.tolist())
    by_hand = TensorBatchLoader(torch.arange(7), batch_size=7, shard=(1, 2))
    assert next(iter(by_hand))[0].tolist() == [1, 3, 5]
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        TensorBatchLoader(x, batch_size=4, shard=(2, 2))


def test_shuffle_draws_torch_randperm_of_the_seed():
    """The int32 permutation is the one an int64 `randperm` of the same generator draws."""
    loader = TensorBatchLoader(torch.arange(5_000), batch_size=5_000, shuffle=True, seed=3)
    expected = torch.randperm(5_000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(next(iter(loader))[0], expected)


def test_get_data_loaders_cover_the_split_once(bundled_ratings):
    train, val, test = utilities.get_data_loaders(ratings_df=bundled_ratings, batch_size=4096)
    rows = [
        torch.cat([batch[0] * 1_000_000 + batch[1] for batch in loader])
        for loader in (train, val, test)
    ]
    everything = torch.cat(rows)
    assert len(everything) == bundled_ratings.height
    assert len(everything.unique()) == bundled_ratings.height  # every (user, movie) once
    assert [len(r) for r in rows] == [70585, 20167, 10084]
    assert train.shuffle and not val.shuffle and not test.shuffle
