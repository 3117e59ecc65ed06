"""The ranking metrics, the leave-one-out split and the negative samplers, each on a case small
enough to work out by hand, and the samplers against the bundled ratings."""

from __future__ import annotations

import math

import polars as pl
import pytest
import torch
from torch import nn

from utilities.ranking import (
    NegativeSampler,
    full_ranks,
    hit_rate,
    hits_and_gains,
    interaction_matrix,
    leave_one_out,
    ndcg,
    ranking_metrics,
    ranks_among,
    sample_negatives,
    sample_unseen,
    sampled_ranks,
    score_all,
    to_pairs,
    user_gains,
)

# Two users, five items. User 0 interacted with items 0 and 1 (known); its held-out item is 2.
SCORES = torch.tensor([[9.0, 8.0, 5.0, 7.0, 1.0], [0.0, 4.0, 4.0, 3.0, 2.0]])
KNOWN = torch.tensor([[True, True, False, False, False], [False, False, False, True, False]])
TARGET = torch.tensor([2, 2])


def test_full_ranks_by_hand():
    # User 0: unseen candidates 3 (7.0) and 4 (1.0); only item 3 scores above 5.0 -> rank 1.
    # User 1: item 3 is known; candidates 0, 1, 4 -> item 1 ties at 4.0 and counts against -> 1.
    assert full_ranks(SCORES, TARGET, KNOWN).tolist() == [1, 1]


def test_full_ranks_leave_known_items_out():
    # Counting the known items 0 and 1 as candidates would give user 0 rank 3.
    nothing_known = torch.zeros_like(KNOWN)
    assert full_ranks(SCORES, TARGET, nothing_known).tolist() == [3, 1]


def test_ranks_among_count_ties_against_the_target():
    # A model that scores everything alike ranks the target last, not first.
    assert ranks_among(torch.tensor([1.0]), torch.ones(1, 4)).tolist() == [4]


def test_sampled_ranks_by_hand():
    negatives = torch.tensor([[4, 3], [0, 4]])
    # User 0: 1.0 and 7.0 against 5.0 -> 1 above. User 1: 0.0 and 2.0 against 4.0 -> 0 above.
    assert sampled_ranks(SCORES, TARGET, negatives).tolist() == [1, 0]


def test_hit_rate_and_ndcg_by_hand():
    ranks = torch.tensor([0, 1, 2, 9, 10])
    assert hit_rate(ranks, k=10) == pytest.approx(4 / 5)
    assert hit_rate(ranks, k=2) == pytest.approx(2 / 5)
    by_hand = (1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(11)) / 5
    assert ndcg(ranks, k=10) == pytest.approx(by_hand)


def test_ranking_metrics_agree_with_a_loop():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 30, generator=generator)
    known = torch.rand(6, 30, generator=generator) < 0.3
    target = torch.randint(30, (6,), generator=generator)
    negatives = sample_unseen(known, 5, generator)
    hits, gains = [], []
    for user in range(6):
        mine = scores[user, target[user]]
        others = [j for j in range(30) if j != target[user] and not known[user, j]]
        rank = sum(scores[user, j] >= mine for j in others)
        hits.append(rank < 3)
        gains.append(1 / math.log2(rank + 2) if rank < 3 else 0.0)
    metrics = ranking_metrics(scores, target, known, negatives, k=3)
    assert metrics["hr3_full"] == pytest.approx(sum(hits) / 6)
    assert metrics["ndcg3_full"] == pytest.approx(sum(gains) / 6)


def test_user_gains_average_to_ranking_metrics_over_each_draw():
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(8, 40, generator=generator)
    known = torch.rand(8, 40, generator=generator) < 0.3
    target = torch.randint(40, (8,), generator=generator)
    draws = [sample_unseen(known, 6, generator) for _ in range(3)]
    gains = user_gains(scores, target, known, draws, k=4)
    each = [ranking_metrics(scores, target, known, draw, k=4) for draw in draws]
    for name in ("hr4_full", "ndcg4_full"):
        assert gains[name].mean().item() == pytest.approx(each[0][name])
    for name in ("hr4_sampled", "ndcg4_sampled"):
        by_draw = sum(metrics[name] for metrics in each) / 3
        assert gains[name].mean().item() == pytest.approx(by_draw)


def test_hits_and_gains_by_hand():
    hits, gains = hits_and_gains(torch.tensor([0, 2, 3]), k=3)
    assert hits.tolist() == [1.0, 1.0, 0.0]
    assert gains.tolist() == pytest.approx([1.0, 0.5, 0.0])


def test_leave_one_out_by_hand():
    ratings = pl.DataFrame(
        {
            "userId": [1, 1, 1, 1, 2, 2, 2],
            "movieId": [10, 11, 12, 13, 10, 11, 12],
            "timestamp": [4, 1, 3, 2, 5, 6, 7],
        }
    )
    train, val, test = leave_one_out(ratings, seed=0)
    assert test.select("userId", "movieId").rows() == [(1, 10), (2, 12)]
    assert val.select("userId", "movieId").rows() == [(1, 12), (2, 11)]
    assert sorted(train.select("userId", "movieId").rows()) == [(1, 11), (1, 13), (2, 10)]


def test_leave_one_out_breaks_ties_by_seed():
    ratings = pl.DataFrame({"userId": [1] * 6, "movieId": list(range(6)), "timestamp": [0] * 6})
    tests = {leave_one_out(ratings, seed=seed)[2].item(0, "movieId") for seed in range(20)}
    assert len(tests) > 1, "a tie in timestamp always broken the same way"
    first, again = leave_one_out(ratings, seed=3), leave_one_out(ratings, seed=3)
    assert all(a.equals(b) for a, b in zip(first, again, strict=True))


def test_leave_one_out_on_the_bundled_ratings(bundled):
    ratings, users, _ = bundled
    train, val, test = leave_one_out(ratings)
    assert val.height == test.height == users.height
    assert train.height + val.height + test.height == ratings.height
    latest = ratings.group_by("userId").agg(pl.col("timestamp").max()).sort("userId")
    assert test.sort("userId").get_column("timestamp").equals(latest.get_column("timestamp"))
    last_train = train.group_by("userId").agg(pl.col("timestamp").max()).sort("userId")
    assert (val.sort("userId")["timestamp"] >= last_train["timestamp"]).all()


def test_leave_one_out_needs_three_interactions():
    ratings = pl.DataFrame({"userId": [1, 1], "movieId": [1, 2], "timestamp": [1, 2]})
    with pytest.raises(ValueError, match="at least 3"):
        leave_one_out(ratings)


def test_samplers_avoid_known_items(bundled):
    ratings, users, movies = bundled
    user_ids, item_ids = to_pairs(ratings)
    known = interaction_matrix(user_ids, item_ids, users.height, movies.height)
    generator = torch.Generator().manual_seed(0)
    negatives = sample_negatives(user_ids, known, generator)
    assert not known[user_ids, negatives].any()
    unseen = sample_unseen(known, 100, generator)
    assert not known.gather(1, unseen).any()
    assert all(len(set(row)) == 100 for row in unseen.tolist()), "repeated sampled negatives"


def test_sample_negatives_is_uniform_over_unseen_items():
    known = torch.tensor([[True, False, False, True]])
    draws = sample_negatives(torch.zeros(4000, dtype=torch.long), known, torch.Generator())
    counts = torch.bincount(draws, minlength=4).tolist()
    assert counts[0] == counts[3] == 0 and abs(counts[1] - counts[2]) < 200


def test_sample_negatives_draws_what_redrawing_every_clash_by_hand_draws(bundled):
    ratings, user_table, movie_table = bundled
    users, items = to_pairs(ratings)
    users = users.repeat(4)  # as NegativeSampler asks: several negatives per interaction
    known = interaction_matrix(to_pairs(ratings)[0], items, user_table.height, movie_table.height)
    mine = sample_negatives(users, known, torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    by_hand = torch.randint(known.shape[1], users.shape, generator=generator)
    clash = known[users, by_hand]
    while clash.any():  # every clash redrawn, in index order, until none is left
        by_hand[clash] = torch.randint(known.shape[1], (int(clash.sum()),), generator=generator)
        clash = known[users, by_hand]
    assert torch.equal(mine, by_hand)


def test_negative_sampler_epochs():
    users, items = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 2])
    known = interaction_matrix(users, items, 2, 5)
    sampler = NegativeSampler(users, items, known, n_negatives=2, batch_size=4, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3
    u, i, labels = (torch.cat(parts) for parts in zip(*batches, strict=True))
    assert labels.sum() == 3 and len(labels) == 9
    assert not known[u[labels == 0], i[labels == 0]].any()
    positives = zip(u[labels == 1].tolist(), i[labels == 1].tolist(), strict=True)
    assert sorted(positives) == [(0, 0), (0, 1), (1, 2)]
    again = NegativeSampler(users, items, known, n_negatives=2, batch_size=4, seed=0)
    assert torch.equal(torch.cat([b[1] for b in again]), i), "same seed, same first epoch"
    assert not torch.equal(torch.cat([b[1] for b in sampler]), i), "a new draw each epoch"


class Outer(nn.Module):
    """score(u, i) = u * i: a model whose every score is known in advance."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (users * items).float() + self.unused


def test_score_all_covers_every_pair_in_order():
    scores = score_all(Outer(), 5, 7, users_per_chunk=2)
    assert torch.equal(scores, torch.outer(torch.arange(5), torch.arange(7)).float())
