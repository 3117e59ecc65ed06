"""The MLP of the dot-product notebooks, and probes of what its ReLU layers are doing."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class DotProductMLP(nn.Module):
    """An MLP on `[a, b]` (or `[a, b, a*b]`) predicting `a·b`: `layer_sizes` hidden widths
    (none: a single linear layer), ReLU between layers."""

    def __init__(self, dim: int, layer_sizes: list[int], incl_multiplication: bool = False):
        super().__init__()
        self.incl_multiplication = incl_multiplication
        sizes = [(3 if incl_multiplication else 2) * dim, *layer_sizes, 1]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])  # no ReLU after the output layer

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        features = [a, b, a * b] if self.incl_multiplication else [a, b]
        return self.net(torch.cat(features, dim=1)).squeeze(1)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable numbers in `model`."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def relu_outputs(net: nn.Sequential, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The output of every `nn.ReLU` in `net` for a batch of `inputs`, in layer order."""
    outputs = []
    for layer in net:
        inputs = layer(inputs)
        if isinstance(layer, nn.ReLU):
            outputs.append(inputs)
    return outputs


def dead_unit_fractions(net: nn.Sequential, inputs: torch.Tensor) -> list[float]:
    """Per ReLU layer, the fraction of units that output 0 for every one of `inputs`.

    A dead unit passes no gradient back, so whatever feeds only it stops learning.
    """
    return [(out == 0).all(dim=0).float().mean().item() for out in relu_outputs(net, inputs)]


def linear_gradient_norms(
    net: nn.Sequential, inputs: torch.Tensor, targets: torch.Tensor
) -> list[float]:
    """Per `nn.Linear` of `net`, the norm of its weight gradient of the MSE on one batch."""
    net.zero_grad()
    F.mse_loss(net(inputs).squeeze(1), targets).backward()
    norms = [layer.weight.grad.norm().item() for layer in net if isinstance(layer, nn.Linear)]
    net.zero_grad()
    return norms
