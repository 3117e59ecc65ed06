"""Rendle et al.'s synthetic protocol for "can an MLP learn a dot product?" and its training.

"Neural Collaborative Filtering vs. Matrix Factorization Revisited" (RecSys 2020), section 6:
labels are a dot product of random embeddings plus noise, scaled so that the true dot product
has RMSE `noise_sd` and predicting 0 has RMSE `total_sd`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from utilities.models import DotProductMLP
from utilities.splits import TensorBatchLoader
from utilities.training import fit, seed_everything

NOISE_SD = 0.85
TOTAL_SD = 1.13


def reference_embedding_sd(
    dim: int, noise_sd: float = NOISE_SD, total_sd: float = TOTAL_SD
) -> float:
    """The embedding std that makes `Var(<p, q>) = total_sd² - noise_sd²` in dimension `dim`."""
    return ((total_sd**2 - noise_sd**2) / dim) ** 0.25


@dataclass(frozen=True)
class ReferenceData:
    """Embeddings, observed (user, item, label) pairs split 90/10, and fresh pairs.

    `train` and `test` are `(users, items, labels)` index triples into the embeddings;
    `fresh` is `(p, q, labels)` for embeddings never seen in training.
    """

    user_embeddings: torch.Tensor
    item_embeddings: torch.Tensor
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    fresh: tuple[torch.Tensor, torch.Tensor, torch.Tensor]

    def loader(
        self, part: str, *, batch_size: int, shuffle: bool = False, seed: int = 0
    ) -> TensorBatchLoader | EmbeddingPairLoader:
        """Batches of `(p, q, label)` from `"train"`, `"test"` or `"fresh"`."""
        if part == "fresh":
            return TensorBatchLoader(*self.fresh, batch_size=batch_size, shuffle=shuffle, seed=seed)
        if part not in ("train", "test"):
            raise ValueError(f"part must be 'train', 'test' or 'fresh', got {part!r}.")
        return EmbeddingPairLoader(
            self.user_embeddings,
            self.item_embeddings,
            *getattr(self, part),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
        )


def make_reference_data(
    num_users: int,
    dim: int,
    *,
    pairs_per_user: int = 100,
    test_frac: float = 0.1,
    n_fresh: int = 20_000,
    seed: int = 0,
    noise_sd: float = NOISE_SD,
    total_sd: float = TOTAL_SD,
) -> ReferenceData:
    """Rendle et al.'s synthetic data: `num_users` users and as many items, about
    `pairs_per_user` observed items per user (drawn with replacement, duplicates dropped),
    labels `<p, q> + N(0, noise_sd²)`; a seeded 90/10 split of the distinct pairs."""
    check_reference_sizes(num_users, dim, pairs_per_user, n_fresh, test_frac)
    generator = torch.Generator().manual_seed(seed)
    sd = reference_embedding_sd(dim, noise_sd, total_sd)
    users_emb = torch.randn(num_users, dim, generator=generator) * sd
    items_emb = torch.randn(num_users, dim, generator=generator) * sd
    users, items = sample_observed_pairs(num_users, pairs_per_user, generator)
    labels = noisy_dot(users_emb[users], items_emb[items], noise_sd, generator)
    train_rows, test_rows = split_rows(len(users), test_frac, generator)
    fresh_p = torch.randn(n_fresh, dim, generator=generator) * sd
    fresh_q = torch.randn(n_fresh, dim, generator=generator) * sd
    return ReferenceData(
        users_emb,
        items_emb,
        train=(users[train_rows], items[train_rows], labels[train_rows]),
        test=(users[test_rows], items[test_rows], labels[test_rows]),
        fresh=(fresh_p, fresh_q, noisy_dot(fresh_p, fresh_q, noise_sd, generator)),
    )


def check_reference_sizes(
    num_users: int, dim: int, pairs_per_user: int, n_fresh: int, test_frac: float
) -> None:
    """Raise, naming the values, where a size is not positive or `test_frac` not in (0, 1)."""
    if num_users < 1 or dim < 1 or pairs_per_user < 1 or n_fresh < 1:
        raise ValueError(
            "num_users, dim, pairs_per_user and n_fresh must be positive, got "
            f"{num_users}, {dim}, {pairs_per_user}, {n_fresh}."
        )
    if not 0 < test_frac < 1:
        raise ValueError(f"test_frac must be in (0, 1), got {test_frac}.")


def split_rows(
    n_rows: int, test_frac: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded split of `range(n_rows)` into sorted training and test rows (at least one)."""
    order = torch.randperm(n_rows, generator=generator)
    n_test = max(1, round(n_rows * test_frac))
    return order[n_test:].sort().values, order[:n_test].sort().values


def sample_observed_pairs(
    num_users: int, pairs_per_user: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct (user, item) pairs: `pairs_per_user` random items per user, repeats dropped."""
    users = torch.arange(num_users).repeat_interleave(pairs_per_user)
    items = torch.randint(num_users, (len(users),), generator=generator)
    keys = torch.unique(users * num_users + items)  # sorted by user, then item
    return keys // num_users, keys % num_users


def noisy_dot(
    p: torch.Tensor, q: torch.Tensor, noise_sd: float, generator: torch.Generator
) -> torch.Tensor:
    """`<p, q>` per row plus Gaussian noise of sd `noise_sd` drawn from `generator`."""
    return (p * q).sum(dim=1) + noise_sd * torch.randn(len(p), generator=generator)


class EmbeddingPairLoader:
    """Batches `(P[users], Q[items], labels)` gathered per batch from index tensors, so the
    pairs' embeddings are never all materialised (the paper's grid has 12.8M pairs)."""

    def __init__(
        self,
        user_embeddings: torch.Tensor,
        item_embeddings: torch.Tensor,
        users: torch.Tensor,
        items: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        self.user_embeddings, self.item_embeddings = user_embeddings, item_embeddings
        self.indices = TensorBatchLoader(
            users, items, labels, batch_size=batch_size, shuffle=shuffle, seed=seed
        )

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def batch_size(self) -> int:
        """Pairs per batch, as `fit` records it."""
        return self.indices.batch_size

    @property
    def shuffle(self) -> bool:
        """Whether each pass reshuffles the pairs, as `fit` records it."""
        return self.indices.shuffle

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for users, items, labels in self.indices:
            yield self.user_embeddings[users], self.item_embeddings[items], labels


def model_rmse(model: torch.nn.Module, loader: Iterable) -> float:
    """Root mean squared error of `model(p, q)` against the labels over every batch."""
    with torch.no_grad():
        errors = torch.cat([(model(p, q) - y).pow(2) for p, q, y in loader])
    return errors.mean().sqrt().item()


def dot_product_rmse(loader: Iterable) -> float:
    """The error of the true dot product `<p, q>` on the same pairs: the floor the noise sets."""
    return torch.cat([((p * q).sum(1) - y).pow(2) for p, q, y in loader]).mean().sqrt().item()


def train_reference_mlp(
    dim: int,
    num_users: int,
    width: int = 1,
    *,
    feature: bool = False,
    experiment: str | None,
    epochs: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    pairs_per_user: int = 100,
    seed: int = 0,
    data_seed: int | None = None,
    run_name: str | None = None,
) -> dict[str, float]:
    """Train the paper's MLP `[2md, md, md/2]` (with `feature`: on `[p, q, p*q]`) on one
    (d, N, m) setting; returns the setting with test and fresh RMSE of the model and of the
    true dot product. `seed` sets the initialisation and shuffling, `data_seed` (default
    `seed`) the data."""
    seed_everything(seed)
    data_seed = seed if data_seed is None else data_seed
    data = make_reference_data(num_users, dim, pairs_per_user=pairs_per_user, seed=data_seed)
    setting = {"dim": dim, "num_users": num_users, "width": width}
    setting |= {"inputs": "[p, q, p*q]" if feature else "[p, q]"}
    result = fit(
        reference_mlp(dim, width, feature),
        data.loader("train", batch_size=batch_size, shuffle=True, seed=seed),
        data.loader("test", batch_size=8192),
        epochs=epochs,
        lr=lr,
        seed=seed,
        experiment=experiment,
        run_name=run_name or describe_reference_run(setting, seed),
        params=setting | {"data_seed": data_seed},
    )
    metrics = reference_rmses(result.model, data)
    result.log(**metrics)
    return setting | {"seed": seed, "train_pairs": len(data.train[0])} | metrics


def reference_mlp(dim: int, width: int, feature: bool) -> DotProductMLP:
    """The paper's MLP for embeddings of size `dim` and width multiplier `width`."""
    hidden = [2 * width * dim, width * dim, max(1, width * dim // 2)]
    return DotProductMLP(dim, hidden, incl_multiplication=feature)


def describe_reference_run(setting: dict, seed: int) -> str:
    """The run name of one setting of the protocol, e.g. `reference MLP on [p, q] · d 16 · …`."""
    return (
        f"reference MLP on {setting['inputs']} · d {setting['dim']} · N {setting['num_users']}"
        f" · m {setting['width']} · seed {seed}"
    )


def reference_rmses(model: torch.nn.Module, data: ReferenceData) -> dict[str, float]:
    """Test and fresh RMSE of `model(p, q)` and of the true dot product `<p, q>`."""
    test, fresh = (data.loader(part, batch_size=8192) for part in ("test", "fresh"))
    model_rmses = {"test_rmse": model_rmse(model, test), "fresh_rmse": model_rmse(model, fresh)}
    return model_rmses | {
        "test_dot_rmse": dot_product_rmse(test),
        "fresh_dot_rmse": dot_product_rmse(fresh),
    }
