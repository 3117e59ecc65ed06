"""The hand-computable fit the training and tracking tests share: `w * x` with one weight from 0,
SGD at lr 1/4 on the one row (x=1, y=2), validated on (x=1, y=1.6)."""

from __future__ import annotations

import torch
from torch import nn

from utilities.training import Fit, fit

ONE = torch.ones(1)


class Scale(nn.Module):
    """`w * x`, one weight starting at 0."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x


def w_after(epoch: int) -> float:
    """Each epoch's one step halves the gap to 2: w = 0, 1, 1.5, 1.75, …"""
    return 2 - 2.0 ** (1 - epoch)


def val_loss_after(epoch: int) -> float:
    """Validation loss 0.36, 0.01, 0.0225, 0.0756, …: lowest after epoch 2."""
    return (w_after(epoch) - 1.6) ** 2


def fit_scale(**settings) -> Fit:
    """`Scale` through `fit` on this case: 3 epochs unless `settings` say otherwise."""
    settings = {"epochs": 3, "lr": 0.25, "optimizer": "sgd", "batch_size": 1} | settings
    return fit(Scale(), (ONE, 2 * ONE), (ONE, 1.6 * ONE), accelerator="cpu", **settings)
