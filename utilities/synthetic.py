"""Random Gaussian vector pairs `(a, b, a·b)` for the dot-product notebooks."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from utilities.splits import TensorBatchLoader, check_batch_size


def make_vector_pairs(
    n_pairs: int, dim: int, *, generator: torch.Generator, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`n_pairs` pairs of standard normal vectors of length `dim`, and their dot products."""
    if n_pairs < 1 or dim < 1:
        raise ValueError(f"n_pairs and dim must be positive, got n_pairs={n_pairs}, dim={dim}.")
    a = torch.randn(n_pairs, dim, generator=generator, device=device)
    b = torch.randn(n_pairs, dim, generator=generator, device=device)
    return a, b, (a * b).sum(dim=1)


class FreshPairLoader:
    """New random pairs for every batch of every epoch: an infinite supply of data.

    The pairs come from one generator seeded at construction, so the run is repeatable.
    """

    def __init__(
        self,
        dim: int,
        *,
        batches_per_epoch: int,
        batch_size: int,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        check_batch_size(batch_size)
        if batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be positive, got {batches_per_epoch}.")
        self.dim, self.batches_per_epoch, self.batch_size = dim, batches_per_epoch, batch_size
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for _ in range(self.batches_per_epoch):
            yield make_vector_pairs(
                self.batch_size, self.dim, generator=self.generator, device=self.device
            )


def fixed_pair_loader(
    n_pairs: int,
    dim: int,
    *,
    batch_size: int,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> TensorBatchLoader:
    """The same `n_pairs` pairs every epoch, in the same order: data to fit or to evaluate on."""
    generator = torch.Generator(device=device or "cpu").manual_seed(seed)
    return TensorBatchLoader(
        *make_vector_pairs(n_pairs, dim, generator=generator, device=device), batch_size=batch_size
    )


def get_vector_pair_loaders(
    dim: int,
    *,
    fresh: bool = True,
    n_train: int = 51_200,
    n_val: int = 8_192,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> tuple[FreshPairLoader | TensorBatchLoader, TensorBatchLoader]:
    """Train loader (fresh pairs, or a fixed sample of `n_train`) and a fixed validation set.

    With `fresh=True` an epoch is `n_train / batch_size` batches of new pairs. The validation
    pairs come from their own seed, so they never coincide with training pairs by construction.
    """
    if fresh:
        batches = max(1, n_train // batch_size)
        train = FreshPairLoader(
            dim, batches_per_epoch=batches, batch_size=batch_size, seed=seed, device=device
        )
    else:
        train = fixed_pair_loader(n_train, dim, batch_size=batch_size, seed=seed, device=device)
    val = fixed_pair_loader(
        n_val, dim, batch_size=max(batch_size, 4096), seed=seed + 1, device=device
    )
    return train, val
