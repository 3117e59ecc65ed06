"""Random Gaussian vector pairs `(a, b, a·b)` for the dot-product notebooks."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from utilities.splits import check_batch_size


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
