"""The shared models: the dot-product MLP (01–03) with probes of its ReLU layers, and the rating
models 04–06 teach and fastbook's recipe, which notebook 07 trains again."""

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


def sigmoid_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """A sigmoid stretched from (0, 1) to (low, high)."""
    return torch.sigmoid(x) * (high - low) + low


class DotProductBias(nn.Module):
    """Notebook 04's final model: user·movie dot product → Linear(1, 1), plus a bias per user
    and per movie, through a sigmoid stretched to `y_range` (notebook 04 builds it up)."""

    def __init__(self, n_users, n_movies, n_factors, y_range=(0.0, 5.5), init_std=0.01):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.movie_factors = nn.Embedding(n_movies, n_factors)
        nn.init.normal_(self.user_factors.weight, std=init_std)
        nn.init.normal_(self.movie_factors.weight, std=init_std)
        self.linear = nn.Linear(1, 1)
        self.y_range = y_range
        self.user_bias = nn.Embedding(n_users, 1)
        self.movie_bias = nn.Embedding(n_movies, 1)
        nn.init.normal_(self.user_bias.weight, std=init_std)
        nn.init.normal_(self.movie_bias.weight, std=init_std)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(users) * self.movie_factors(movies)).sum(1, keepdim=True)
        biases = self.user_bias(users) + self.movie_bias(movies)
        return sigmoid_range((self.linear(dot) + biases).squeeze(1), *self.y_range)


class FastbookDotProductBias(nn.Module):
    """fastbook chapter 8's DotProductBias: a bias per user and per movie plus the dot product,
    through a sigmoid stretched to `y_range`; N(0, 0.01²) as fastai initialises embeddings."""

    def __init__(self, n_users, n_movies, n_factors, y_range=(0.0, 5.5)):
        super().__init__()
        self.user_factors, self.user_bias = (
            nn.Embedding(n_users, n_factors),
            nn.Embedding(n_users, 1),
        )
        self.movie_factors, self.movie_bias = (
            nn.Embedding(n_movies, n_factors),
            nn.Embedding(n_movies, 1),
        )
        for table in (self.user_factors, self.user_bias, self.movie_factors, self.movie_bias):
            nn.init.normal_(table.weight, std=0.01)
        self.y_range = y_range

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        res = (self.user_factors(users) * self.movie_factors(movies)).sum(1, keepdim=True)
        res = res + self.user_bias(users) + self.movie_bias(movies)
        return sigmoid_range(res.squeeze(1), *self.y_range)


def create_params(*shape: int) -> nn.Parameter:
    """A trainable tensor drawn from N(0, 0.01²) (notebook 06 writes it out)."""
    return nn.Parameter(torch.randn(*shape) * 0.01)


class MatrixFactorisation(nn.Module):
    """Notebook 06's model: mean rating + user bias + movie bias + user·movie factors, from
    hand-made parameters (`n_factors=0`: the biases alone)."""

    def __init__(self, n_users: int, n_movies: int, n_factors: int, mean: float):
        super().__init__()
        self.user_factors = create_params(n_users, n_factors)
        self.movie_factors = create_params(n_movies, n_factors)
        self.user_bias = create_params(n_users)
        self.movie_bias = create_params(n_movies)
        self.mean = mean

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        dots = (self.user_factors[users] * self.movie_factors[movies]).sum(1)
        return self.mean + self.user_bias[users] + self.movie_bias[movies] + dots


class CollabNN(nn.Module):
    """Notebook 05's model: user and movie embeddings concatenated, then Linear → ReLU →
    Linear and the same stretched sigmoid."""

    def __init__(
        self, n_users: int, n_movies: int, n_factors: int, n_hidden: int, y_range=(0.0, 5.5)
    ):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.movie_factors = nn.Embedding(n_movies, n_factors)
        for table in (self.user_factors, self.movie_factors):
            nn.init.normal_(table.weight, std=0.01)
        self.layers = nn.Sequential(
            nn.Linear(2 * n_factors, n_hidden), nn.ReLU(), nn.Linear(n_hidden, 1)
        )
        self.y_range = y_range

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        pairs = torch.cat([self.user_factors(users), self.movie_factors(movies)], dim=1)
        return sigmoid_range(self.layers(pairs).squeeze(1), *self.y_range)
