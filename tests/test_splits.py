"""Train/validation/test splits and the tensor batch loaders built on them."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from torch import nn

from utilities.splits import (
    BatchGroups,
    TensorBatchLoader,
    get_data_loaders,
    split_train_test,
    take_sample,
)
from utilities.training import make_trainer


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


# ---------------------------------------------------------------- loaders


def key(users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
    """One int per (user, movie): MovieLens has at most one rating per pair."""
    return users * 1_000_000 + movies


def frame_keys(frame: pl.DataFrame) -> torch.Tensor:
    users = torch.tensor(frame.get_column("userIdMapped").to_numpy().astype(np.int64))
    movies = torch.tensor(frame.get_column("movieIdMapped").to_numpy().astype(np.int64))
    return key(users, movies)


def epoch_keys(loader) -> torch.Tensor:
    return torch.cat([key(users, movies) for users, movies, _ in loader])


@pytest.fixture(scope="module")
def loaders(bundled_ratings):
    return get_data_loaders(bundled_ratings, batch_size=4096, seed=5)


def test_pairs_are_unique_so_keys_identify_rows(bundled_ratings):
    assert frame_keys(bundled_ratings).unique().numel() == bundled_ratings.height


def test_batch_shapes_dtypes_and_len(bundled_ratings):
    train_loader, val_loader, test_loader = get_data_loaders(
        bundled_ratings, batch_size=4096, seed=5
    )
    train, val, test = split_train_test(bundled_ratings, seed=5)
    for loader, frame in [(train_loader, train), (val_loader, val), (test_loader, test)]:
        batches = list(loader)
        assert len(loader) == len(batches) == math.ceil(frame.height / 4096)
        sizes = [len(batch[0]) for batch in batches]
        assert sizes[:-1] == [4096] * (len(sizes) - 1)
        assert sum(sizes) == frame.height
        for users, movies, ratings in batches[:2]:
            assert (users.dtype, movies.dtype, ratings.dtype) == (
                torch.int64,
                torch.int64,
                torch.float32,
            )
            assert users.shape == movies.shape == ratings.shape == (len(users),)
            assert users.device.type == "cpu"


def test_train_epoch_covers_every_training_row_once(bundled_ratings):
    train_loader, val_loader, test_loader = get_data_loaders(
        bundled_ratings, batch_size=1000, seed=5
    )
    train, val, test = split_train_test(bundled_ratings, seed=5)
    seen = epoch_keys(train_loader)
    assert seen.numel() == train.height
    assert torch.equal(seen.sort().values, frame_keys(train).sort().values)
    # the ratings travel with their (user, movie) pairs
    batches = list(train_loader)
    keys = torch.cat([key(u, m) for u, m, _ in batches])
    ratings = torch.cat([r for _, _, r in batches])
    expected = torch.tensor(train.get_column("rating").to_numpy(), dtype=torch.float32)
    assert torch.equal(ratings[keys.argsort()], expected[frame_keys(train).argsort()])
    # validation and test come in split order, unshuffled
    assert torch.equal(epoch_keys(val_loader), frame_keys(val))
    assert torch.equal(epoch_keys(test_loader), frame_keys(test))


def test_train_reshuffles_between_epochs_and_repeats_per_seed(bundled_ratings):
    def three_epochs(seed):
        loader = get_data_loaders(bundled_ratings, batch_size=8192, seed=seed)[0]
        return [epoch_keys(loader) for _ in range(3)]

    first, second = three_epochs(11), three_epochs(11)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], first[1])
    assert not torch.equal(first[1], first[2])
    assert torch.equal(first[0].sort().values, first[1].sort().values)
    other = three_epochs(12)
    assert not torch.equal(first[0].sort().values, other[0].sort().values)  # another split


def test_val_loader_is_the_same_every_epoch(loaders):
    val_loader = loaders[1]
    assert torch.equal(epoch_keys(val_loader), epoch_keys(val_loader))


def test_sample_subsamples_deterministically(bundled_ratings):
    all_keys = set(frame_keys(bundled_ratings).tolist())

    def sampled_keys(seed):
        parts = get_data_loaders(bundled_ratings, batch_size=256, sample=1_000, seed=seed)
        return [epoch_keys(loader) for loader in parts]

    first = sampled_keys(1)
    assert [len(part) for part in first] == [700, 200, 100]
    union = torch.cat(first)
    assert union.unique().numel() == 1_000
    assert set(union.tolist()) <= all_keys
    assert all(torch.equal(a, b) for a, b in zip(first, sampled_keys(1), strict=True))
    assert set(union.tolist()) != set(torch.cat(sampled_keys(2)).tolist())
    # the same rows as take_sample picks, computed directly
    direct = take_sample(bundled_ratings, 1_000, 1)
    assert set(frame_keys(direct).tolist()) == set(union.tolist())


@pytest.mark.parametrize("sample", [0, -3, 100_837, 2.5])
def test_bad_sample(bundled_ratings, sample):
    with pytest.raises(ValueError, match="sample") as caught:
        get_data_loaders(bundled_ratings, sample=sample)
    assert repr(sample) in str(caught.value)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, None])
def test_bad_batch_size(bundled_ratings, batch_size):
    with pytest.raises(ValueError, match="batch_size") as caught:
        get_data_loaders(bundled_ratings, batch_size=batch_size)
    assert repr(batch_size) in str(caught.value)
    with pytest.raises(ValueError, match="batch_size"):
        TensorBatchLoader(torch.zeros(3), batch_size=batch_size)


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
    with pytest.raises(ValueError, match=r"\[10, 9\]"):
        TensorBatchLoader(x, y[:9], batch_size=4)


def test_shuffle_draws_torch_randperm_of_the_seed():
    """The int32 permutation is the one an int64 `randperm` of the same generator draws."""
    loader = TensorBatchLoader(torch.arange(5_000), batch_size=5_000, shuffle=True, seed=3)
    expected = torch.randperm(5_000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(next(iter(loader))[0], expected)


def test_batch_groups_hand_over_consecutive_batches():
    loader = TensorBatchLoader(torch.arange(10), batch_size=3)
    groups = BatchGroups(loader, 2)
    assert len(groups) == 2
    got = [[batch[0].tolist() for batch in group] for group in groups]
    assert got == [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9]]]
    assert len(BatchGroups(loader, 4)) == 1 and len(BatchGroups(loader, 1)) == 4
    shuffled = TensorBatchLoader(torch.arange(10), batch_size=3, shuffle=True, seed=0)
    twin = TensorBatchLoader(torch.arange(10), batch_size=3, shuffle=True, seed=0)
    for _ in range(2):  # every epoch: the same batches as the loader itself
        flat = [batch[0] for group in BatchGroups(shuffled, 3) for batch in group]
        assert all(torch.equal(a, b[0]) for a, b in zip(flat, twin, strict=True))


@pytest.mark.parametrize("size", [0, -1, 1.5, None])
def test_bad_group_size(size):
    with pytest.raises(ValueError, match=f"size must be a positive integer, got {size!r}"):
        BatchGroups(TensorBatchLoader(torch.zeros(3), batch_size=1), size)


class DotModel(nn.Module):
    def __init__(self, n_users, n_movies, dim=8):
        super().__init__()
        self.users, self.movies = nn.Embedding(n_users, dim), nn.Embedding(n_movies, dim)

    def forward(self, users, movies):
        return (self.users(users) * self.movies(movies)).sum(1) + 3.5


def test_lightning_trainer_accepts_the_loaders(bundled, tmp_path):
    import pytorch_lightning as pl_lightning

    ratings, users, movies = bundled

    class Module(pl_lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = DotModel(users.height, movies.height)
            self.steps = 0

        def loss(self, batch):
            u, m, r = batch
            return nn.functional.mse_loss(self.model(u, m), r)

        def training_step(self, batch, batch_idx):
            self.steps += 1
            return self.loss(batch)

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self.loss(batch))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.01)

    train_loader, val_loader, _ = get_data_loaders(ratings, batch_size=512, sample=3_000, seed=0)
    module = Module()
    trainer = make_trainer(max_epochs=1, accelerator="cpu", default_root_dir=tmp_path)
    trainer.fit(module, train_loader, val_loader)
    assert module.steps == trainer.global_step == len(train_loader) == math.ceil(2_100 / 512)
    # Lightning's epoch mean of batch losses (weighted by batch size) is the mean over all rows
    logged = trainer.validate(module, val_loader, verbose=False)[0]["val_loss"]
    with torch.no_grad():
        errors = torch.cat([(module.model(u, m) - r) ** 2 for u, m, r in val_loader])
    assert errors.numel() == 600
    assert logged == pytest.approx(errors.mean().item(), rel=1e-5)
