"""Random vector pairs and their dot products."""

from __future__ import annotations

import math

import pytest
import torch

from utilities.synthetic import FreshPairLoader, make_vector_pairs


def epoch(loader) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(t.clone() for t in batch) for batch in loader]


def same_epochs(first, second) -> bool:
    return len(first) == len(second) and all(
        torch.equal(x, y)
        for a, b in zip(first, second, strict=True)
        for x, y in zip(a, b, strict=True)
    )


def test_targets_are_dot_products():
    a, b, target = make_vector_pairs(64, 7, generator=torch.Generator().manual_seed(0))
    assert a.shape == b.shape == (64, 7) and target.shape == (64,)
    assert a.dtype == b.dtype == target.dtype == torch.float32
    by_matmul = torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).reshape(64)
    by_loop = torch.tensor(
        [
            sum(x * y for x, y in zip(u.tolist(), v.tolist(), strict=True))
            for u, v in zip(a, b, strict=True)
        ]
    )
    torch.testing.assert_close(target, by_matmul)
    torch.testing.assert_close(target, by_loop)
    assert not torch.equal(a, b)


@pytest.mark.parametrize(("n_pairs", "dim"), [(0, 3), (3, 0), (-1, 3)])
def test_make_vector_pairs_rejects_empty_shapes(n_pairs, dim):
    with pytest.raises(ValueError, match=f"n_pairs={n_pairs}, dim={dim}"):
        make_vector_pairs(n_pairs, dim, generator=torch.Generator())


def test_fresh_loader_draws_new_pairs_each_epoch_repeatably():
    loader = FreshPairLoader(6, batches_per_epoch=4, batch_size=32, seed=9)
    epochs = [epoch(loader) for _ in range(3)]
    assert len(loader) == 4 and all(len(e) == 4 for e in epochs)
    assert not same_epochs(epochs[0], epochs[1])
    assert not same_epochs(epochs[1], epochs[2])
    all_a = torch.cat([a for e in epochs for a, _, _ in e])
    assert all_a.unique(dim=0).shape[0] == 3 * 4 * 32  # no batch ever repeats
    for e in epochs:
        for a, b, target in e:
            assert a.shape == (32, 6)
            torch.testing.assert_close(target, (a * b).sum(1))
    again = FreshPairLoader(6, batches_per_epoch=4, batch_size=32, seed=9)
    assert all(same_epochs(x, epoch(again)) for x in epochs)
    other = FreshPairLoader(6, batches_per_epoch=4, batch_size=32, seed=10)
    assert not same_epochs(epochs[0], epoch(other))


def test_fresh_loader_rejects_bad_sizes():
    with pytest.raises(ValueError, match="batches_per_epoch.*got 0"):
        FreshPairLoader(4, batches_per_epoch=0, batch_size=8)
    with pytest.raises(ValueError, match="batch_size.*got 0"):
        FreshPairLoader(4, batches_per_epoch=1, batch_size=0)


@pytest.mark.parametrize("dim", [1, 16, 64])
def test_dot_product_variance_is_dim(dim):
    n = 20_000
    _, _, target = make_vector_pairs(n, dim, generator=torch.Generator().manual_seed(dim))
    target = target.double()
    # a·b is a sum of dim products of independent N(0,1): mean 0, variance dim,
    # E[(a·b)^4] = 3 dim^2 + 6 dim, so the sample variance has standard error sqrt((2dim^2+6dim)/n)
    mean_se = math.sqrt(dim / n)
    var_se = math.sqrt((2 * dim**2 + 6 * dim) / n)
    assert abs(target.mean().item()) < 5 * mean_se
    assert abs(target.var().item() - dim) < 5 * var_se
