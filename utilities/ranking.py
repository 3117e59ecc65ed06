"""Item recommendation from implicit feedback: the leave-one-out split, negative sampling, and
HR@k / NDCG@k of a held-out item ranked against every unseen item or against sampled ones."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import polars as pl
import torch
from torch import nn

from utilities.training import predict

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def leave_one_out(
    ratings: pl.DataFrame, *, seed: int = 42
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Train, validation and test interactions: each user's latest interaction is the test item,
    the one before it the validation item; ties in `timestamp` are broken by a seeded draw."""
    counts = ratings.group_by("userId").len()
    if counts.get_column("len").min() < 3:
        raise ValueError("every user needs at least 3 interactions (train, validation, test).")
    tie_break = np.random.default_rng(seed).permutation(ratings.height)
    ordered = ratings.with_columns(tie_break=pl.Series(tie_break)).sort(
        "userId", "timestamp", "tie_break"
    )
    from_end = ordered.select(pl.int_range(pl.len()).reverse().over("userId")).to_series()
    ordered = ordered.with_columns(from_end=from_end).drop("tie_break")
    parts = (pl.col("from_end") >= 2, pl.col("from_end") == 1, pl.col("from_end") == 0)
    return tuple(ordered.filter(part).drop("from_end") for part in parts)


def to_pairs(interactions: pl.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """`(users, items)` int64 tensors of the mapped ids."""
    users = interactions.get_column("userIdMapped").to_numpy().astype(np.int64)
    items = interactions.get_column("movieIdMapped").to_numpy().astype(np.int64)
    return torch.from_numpy(users), torch.from_numpy(items)


def interaction_matrix(
    users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int
) -> torch.Tensor:
    """A `(n_users, n_items)` bool matrix, True where the user interacted with the item."""
    known = torch.zeros(n_users, n_items, dtype=torch.bool)
    known[users, items] = True
    return known


def sample_negatives(
    users: torch.Tensor, known: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """For each entry of `users`, an item drawn uniformly from those the user has not interacted
    with (draws that hit a known item are redrawn until none does)."""
    items = torch.randint(known.shape[1], users.shape, generator=generator)
    redraw = known[users, items].nonzero().squeeze(1)  # only these are looked at again
    while len(redraw):
        items[redraw] = torch.randint(known.shape[1], (len(redraw),), generator=generator)
        redraw = redraw[known[users[redraw], items[redraw]]]
    return items


def sample_unseen(known: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """For each user (row of `known`), `n` distinct items they never interacted with, uniformly
    (the `n` lowest of a random key per item, known items keyed above every other)."""
    keys = torch.rand(known.shape, generator=generator).masked_fill(known, 2.0)
    return keys.topk(n, dim=1, largest=False).indices


class NegativeSampler:
    """Each epoch: every positive `(user, item, 1)` with `n_negatives` fresh `(user, j, 0)`
    drawn by `sample_negatives`, shuffled and sliced into batches (a generator seeded once)."""

    def __init__(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        known: torch.Tensor,
        *,
        n_negatives: int,
        batch_size: int,
        seed: int = 0,
    ) -> None:
        self.users, self.items, self.known = users, items, known
        self.n_negatives, self.batch_size = n_negatives, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.users) * (1 + self.n_negatives) / self.batch_size)

    def draw_epoch(self) -> Batch:
        """One epoch's `(users, items, labels)`, positives and negatives shuffled together."""
        negative_users = self.users.repeat(self.n_negatives)
        negatives = sample_negatives(negative_users, self.known, self.generator)
        users = torch.cat([self.users, negative_users])
        items = torch.cat([self.items, negatives])
        labels = torch.cat([torch.ones(len(self.users)), torch.zeros(len(negatives))])
        order = torch.randperm(len(users), generator=self.generator)
        return users[order], items[order], labels[order]

    def __iter__(self) -> Iterator[Batch]:
        users, items, labels = self.draw_epoch()
        for start in range(0, len(users), self.batch_size):
            end = start + self.batch_size
            yield users[start:end], items[start:end], labels[start:end]


def score_all(
    model: nn.Module, n_users: int, n_items: int, users_per_chunk: int = 64
) -> torch.Tensor:
    """`(n_users, n_items)` scores: the model's forward pass on every user-item pair."""
    items = torch.arange(n_items)
    rows = []
    for start in range(0, n_users, users_per_chunk):
        users = torch.arange(start, min(start + users_per_chunk, n_users))
        pairs = users.repeat_interleave(n_items), items.repeat(len(users))
        rows.append(predict(model, *pairs).reshape(len(users), n_items))
    return torch.cat(rows)


def ranks_among(
    target: torch.Tensor, candidates: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """0-based rank of each row's `target` score among its `candidates` (the valid ones):
    how many score at least as high, so ties count against the target."""
    above = candidates >= target.unsqueeze(1)
    if valid is not None:
        above &= valid
    return above.sum(1)


def hit_rate(ranks: torch.Tensor, k: int = 10) -> float:
    """HR@k: the share of users whose held-out item ranks in the top `k`."""
    return (ranks < k).double().mean().item()


def ndcg(ranks: torch.Tensor, k: int = 10) -> float:
    """NDCG@k with one relevant item: 1 / log2(rank + 2) inside the top `k`, else 0, averaged."""
    gains = 1.0 / torch.log2(ranks.double() + 2.0)
    return torch.where(ranks < k, gains, 0.0).mean().item()


def full_ranks(scores: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Rank of each user's `target` item among every item not in `known` (the target excluded),
    on the device `scores` are on."""
    target, valid = target.to(scores.device), ~known.to(scores.device)
    valid[torch.arange(len(target), device=scores.device), target] = False
    targets = scores.gather(1, target.unsqueeze(1)).squeeze(1)
    return ranks_among(targets, scores, valid)


def sampled_ranks(
    scores: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """Rank of each user's `target` item among that user's sampled `negatives` only."""
    target, negatives = target.to(scores.device), negatives.to(scores.device)
    targets = scores.gather(1, target.unsqueeze(1)).squeeze(1)
    return ranks_among(targets, scores.gather(1, negatives))


def hits_and_gains(ranks: torch.Tensor, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Per user: 1.0 where the held-out item ranks in the top `k` (else 0.0), and its NDCG gain."""
    inside = (ranks < k).double()
    return inside, inside / torch.log2(ranks.double() + 2.0)


def user_gains(
    scores: torch.Tensor,
    target: torch.Tensor,
    known: torch.Tensor,
    negative_draws: Sequence[torch.Tensor],
    k: int = 10,
) -> dict[str, torch.Tensor]:
    """Each user's hit and NDCG gain at `k` against every unseen item (`full`) and against each
    draw of sampled negatives (`sampled`, averaged over the draws): `ranking_metrics` per user."""
    full = hits_and_gains(full_ranks(scores, target, known), k)
    drawn = [hits_and_gains(sampled_ranks(scores, target, draw), k) for draw in negative_draws]
    sampled = [torch.stack(values).mean(0) for values in zip(*drawn, strict=True)]
    names = [f"hr{k}_full", f"ndcg{k}_full", f"hr{k}_sampled", f"ndcg{k}_sampled"]
    return dict(zip(names, [*full, *sampled], strict=True))


def ranking_metrics(
    scores: torch.Tensor,
    target: torch.Tensor,
    known: torch.Tensor,
    negatives: torch.Tensor,
    k: int = 10,
) -> dict[str, float]:
    """HR@k and NDCG@k against every unseen item (`full`) and against `negatives` (`sampled`)."""
    full, sampled = full_ranks(scores, target, known), sampled_ranks(scores, target, negatives)
    return {
        f"hr{k}_full": hit_rate(full, k),
        f"ndcg{k}_full": ndcg(full, k),
        f"hr{k}_sampled": hit_rate(sampled, k),
        f"ndcg{k}_sampled": ndcg(sampled, k),
    }
