"""Rendle et al.'s synthetic protocol: its two RMSE properties, disjoint splits, determinism,
and the training of one setting."""

from __future__ import annotations

import pytest
import torch

from utilities.models import DotProductMLP
from utilities.reference import (
    NOISE_SD,
    TOTAL_SD,
    EmbeddingPairLoader,
    dot_product_rmse,
    make_reference_data,
    model_rmse,
    reference_embedding_sd,
    sample_observed_pairs,
    train_reference_mlp,
)
from utilities.tracking import get_client
from utilities.training import fit, seed_everything


def rmse(errors: torch.Tensor) -> float:
    return errors.pow(2).mean().sqrt().item()


@pytest.fixture(scope="module")
def data():
    return make_reference_data(2_000, 16, seed=3)


@pytest.mark.parametrize("dim", [1, 16, 128])
def test_embedding_sd_gives_the_signal_variance(dim):
    sd = reference_embedding_sd(dim)
    # Var(<p, q>) = d · Var(p_i q_i) = d · sd⁴ for independent zero-mean entries
    assert dim * sd**4 == pytest.approx(TOTAL_SD**2 - NOISE_SD**2)


@pytest.mark.parametrize("part", ["test", "fresh"])
def test_true_dot_product_has_rmse_085_and_zero_has_113(data, part):
    p, q, y = (torch.cat(parts) for parts in zip(*data.loader(part, batch_size=4096), strict=True))
    # ~20k pairs: the standard error of an RMSE of 0.85 is about 0.85 / sqrt(2n) < 0.005
    assert rmse(y - (p * q).sum(1)) == pytest.approx(NOISE_SD, abs=0.02)
    assert rmse(y) == pytest.approx(TOTAL_SD, abs=0.03)


def test_dot_product_rmse_matches_a_direct_computation(data):
    users, items, labels = data.test
    direct = rmse(labels - (data.user_embeddings[users] * data.item_embeddings[items]).sum(1))
    assert dot_product_rmse(data.loader("test", batch_size=100)) == pytest.approx(direct, rel=1e-5)


def test_model_rmse_of_the_exact_dot_product_equals_the_noise_floor(data):
    loader = data.loader("fresh", batch_size=777)
    exact = lambda p, q: (p * q).sum(1)  # noqa: E731
    assert model_rmse(exact, loader) == pytest.approx(dot_product_rmse(loader), rel=1e-6)


def test_train_and_test_pairs_are_disjoint_and_cover_the_observed_pairs(data):
    n = len(data.user_embeddings)
    train = set((data.train[0] * n + data.train[1]).tolist())
    test = set((data.test[0] * n + data.test[1]).tolist())
    assert not train & test
    assert len(train) == len(data.train[0]) and len(test) == len(data.test[0])  # no repeats
    assert len(test) / (len(train) + len(test)) == pytest.approx(0.1, abs=0.001)


def test_about_pairs_per_user_items_per_user(data):
    counts = torch.bincount(torch.cat([data.train[0], data.test[0]]), minlength=2_000)
    # 100 draws from 2,000 items with replacement: ~2.5 repeats dropped per user
    assert 95 < counts.float().mean().item() < 100
    assert counts.max().item() <= 100


def test_labels_are_the_dot_product_of_the_indexed_embeddings_plus_noise(data):
    users, items, labels = data.train
    residual = labels - (data.user_embeddings[users] * data.item_embeddings[items]).sum(1)
    assert residual.mean().item() == pytest.approx(0, abs=0.01)
    assert residual.std().item() == pytest.approx(NOISE_SD, abs=0.01)


def test_same_seed_same_data_other_seed_other_data():
    first, again = make_reference_data(300, 4, seed=7), make_reference_data(300, 4, seed=7)
    other = make_reference_data(300, 4, seed=8)
    for name in ["user_embeddings", "item_embeddings"]:
        assert torch.equal(getattr(first, name), getattr(again, name))
        assert not torch.equal(getattr(first, name), getattr(other, name))
    for part in ["train", "test", "fresh"]:
        assert all(
            torch.equal(x, y)
            for x, y in zip(getattr(first, part), getattr(again, part), strict=True)
        )


def test_fresh_embeddings_are_new(data):
    fresh_p = data.fresh[0]
    assert fresh_p.shape == (20_000, 16)
    assert not any(torch.equal(fresh_p[0], row) for row in data.user_embeddings)


def test_sample_observed_pairs_by_hand():
    users, items = sample_observed_pairs(3, 4, torch.Generator().manual_seed(0))
    drawn = torch.randint(3, (12,), generator=torch.Generator().manual_seed(0))
    by_hand = sorted(
        {(u, i) for u, i in zip([0] * 4 + [1] * 4 + [2] * 4, drawn.tolist(), strict=True)}
    )
    assert list(zip(users.tolist(), items.tolist(), strict=True)) == by_hand


def test_embedding_pair_loader_gathers_and_shuffles_repeatably():
    emb_u, emb_i = torch.arange(10.0).unsqueeze(1), 100 + torch.arange(10.0).unsqueeze(1)
    users, items = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([9, 8, 7, 6, 5])
    labels = torch.arange(5.0)
    loader = EmbeddingPairLoader(emb_u, emb_i, users, items, labels, batch_size=2, shuffle=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    p, q, y = (torch.cat(parts) for parts in zip(*batches, strict=True))
    assert sorted(y.tolist()) == labels.tolist()
    assert torch.equal(p.squeeze(1), y) and torch.equal(q.squeeze(1), 109 - y)  # rows stay matched
    again = EmbeddingPairLoader(emb_u, emb_i, users, items, labels, batch_size=2, shuffle=True)
    assert torch.equal(torch.cat([b[2] for b in again]), y)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_users": 0, "dim": 4}, "must be positive"),
        ({"num_users": 10, "dim": 0}, "must be positive"),
        ({"num_users": 10, "dim": 4, "pairs_per_user": 0}, "must be positive"),
        ({"num_users": 10, "dim": 4, "test_frac": 1.0}, "test_frac"),
    ],
)
def test_bad_arguments_say_what_was_expected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_reference_data(**kwargs)


def test_unknown_part_is_named(data):
    with pytest.raises(ValueError, match="'validation'"):
        data.loader("validation", batch_size=10)


def test_embedding_sd_shrinks_like_the_fourth_root_of_dim():
    assert reference_embedding_sd(16) / reference_embedding_sd(1) == pytest.approx(16**-0.25)
    assert reference_embedding_sd(16) == pytest.approx(0.5 * reference_embedding_sd(1))


def test_train_reference_mlp_reports_what_a_fit_by_hand_gives():
    """The paper's MLP `[2md, md, md/2]` = [4, 2, 1] for d = 2, m = 1, trained again directly."""
    reported = train_reference_mlp(
        2, 40, experiment="reference", epochs=2, batch_size=64, pairs_per_user=20, seed=1
    )
    seed_everything(1)
    data = make_reference_data(40, 2, pairs_per_user=20, seed=1)
    model = DotProductMLP(2, [4, 2, 1])
    test, fresh = data.loader("test", batch_size=8192), data.loader("fresh", batch_size=8192)
    train = data.loader("train", batch_size=64, shuffle=True, seed=1)
    fit(model, train, test, epochs=2, lr=1e-3, batch_size=64, seed=1)
    assert reported == {
        "dim": 2,
        "num_users": 40,
        "width": 1,
        "inputs": "[p, q]",
        "seed": 1,
        "train_pairs": len(data.train[0]),
        "test_rmse": pytest.approx(model_rmse(model, test), rel=1e-5),
        "fresh_rmse": pytest.approx(model_rmse(model, fresh), rel=1e-5),
        "test_dot_rmse": pytest.approx(dot_product_rmse(test), rel=1e-6),
        "fresh_dot_rmse": pytest.approx(dot_product_rmse(fresh), rel=1e-6),
    }
    client = get_client()
    [run] = client.search_runs([client.get_experiment_by_name("reference").experiment_id])
    assert run.info.run_name == "reference MLP on [p, q] · d 2 · N 40 · m 1 · seed 1"
    params = run.data.params
    assert (params["dim"], params["num_users"], params["width"]) == ("2", "40", "1")
    assert params["inputs"] == "[p, q]"
    assert run.data.metrics["test_rmse"] == reported["test_rmse"]
    assert run.data.metrics["fresh_dot_rmse"] == reported["fresh_dot_rmse"]
