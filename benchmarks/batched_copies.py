"""Does training K copies of a small model as one batched model pay, and where?

    python benchmarks/batched_copies.py [--steps 200] [--copies 3 5 15]

Issue "The whole collection in minutes" proposes training the seeds of a setting side by side:
the copies' parameters stacked (`torch.func.stack_module_state`), one forward pass over every
copy (`vmap` of `functional_call`), each copy with its own batches, and one Adam over the stacked
tensors (Adam is element-wise, so each copy keeps its own optimiser state). The script times,
on the project's thread count (`DOTLAB_THREADS`, default 1), plain training loops of the
notebooks' shapes one copy at a time against K copies batched, and prints the ratio
`K x (seconds a step of one copy) / (seconds a batched step)`: above 1 the batching pays. It
first checks on one case that every batched copy ends where its own loop ends.

Workloads: notebook 08's dot product (610 users, 9,724 items, 32 factors, biases, batch 8,192,
BCE plus L2 on the batch's rows) and its MLP tower at 64 factors; notebook 02's networks of
2,500 parameters at depth 1 (width 147) and 8 (width 17) on dimension-8 pairs, batch 256.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utilities import get_thread_count  # noqa: E402

N_USERS, N_ITEMS, BIG_BATCH, SMALL_BATCH, DIM = 610, 9_724, 8_192, 256, 8


class Tables(nn.Module):
    """Notebook 08's embedding tables; `penalty` is the batch rows' mean squared length."""

    def __init__(self, n_factors: int) -> None:
        super().__init__()
        self.user = nn.Parameter(torch.randn(N_USERS, n_factors) * 0.1)
        self.item = nn.Parameter(torch.randn(N_ITEMS, n_factors) * 0.1)

    def rows(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's user and item rows, keeping their penalty."""
        p, q = self.user.index_select(0, users), self.item.index_select(0, items)
        self.penalty = ((p**2).sum(-1) + (q**2).sum(-1)).mean()
        return p, q


class DotProduct(Tables):
    """Notebook 08's dot product: <p_u, q_i> + b_u + b_i."""

    def __init__(self, n_factors: int = 32) -> None:
        super().__init__(n_factors)
        self.user_bias, self.item_bias = (nn.Parameter(torch.zeros(n)) for n in (N_USERS, N_ITEMS))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        p, q = self.rows(users, items)
        biases = self.user_bias.index_select(0, users) + self.item_bias.index_select(0, items)
        return (p * q).sum(-1) + biases


class TowerMLP(Tables):
    """Notebook 08's MLP: [p_u, q_i] through Linear + ReLU layers 2F → F → F/2 → F/4 → 1."""

    def __init__(self, n_factors: int = 64) -> None:
        super().__init__(n_factors)
        widths = [2 * n_factors, n_factors, n_factors // 2, n_factors // 4]
        layers = [m for a, b in pairwise(widths) for m in (nn.Linear(a, b), nn.ReLU())]
        self.tower = nn.Sequential(*layers, nn.Linear(widths[-1], 1))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.tower(torch.cat(self.rows(users, items), dim=-1)).squeeze(-1)


def deep_mlp(depth: int, width: int) -> nn.Module:
    """Notebook 02's network: `depth` ReLU layers of `width` on [a, b], then Linear(width, 1)."""
    sizes = [2 * DIM] + [width] * depth
    layers = [m for a, b in pairwise(sizes) for m in (nn.Linear(a, b), nn.ReLU())]
    return nn.Sequential(*layers, nn.Linear(width, 1), nn.Flatten(0))


def ranking_batch(generator: torch.Generator, shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """Random (users, items, labels) of `shape`, as notebook 08's sampler yields them."""
    users = torch.randint(N_USERS, shape, generator=generator)
    items = torch.randint(N_ITEMS, shape, generator=generator)
    return users, items, torch.randint(2, shape, generator=generator).float()


def ranking_loss(prediction: torch.Tensor, labels: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Binary cross-entropy plus 0.01 times the batch rows' penalty."""
    return F.binary_cross_entropy_with_logits(prediction, labels) + 0.01 * model.penalty


def pairs_batch(generator: torch.Generator, shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """Random `[a, b]` of dimension DIM and their dot products, `shape` pairs."""
    x = torch.randn(*shape, 2 * DIM, generator=generator)
    return x, (x[..., :DIM] * x[..., DIM:]).sum(-1)


def pairs_loss(prediction: torch.Tensor, target: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Mean squared error of the predicted dot products."""
    return F.mse_loss(prediction, target)


WORKLOADS = {  # name: (model factory, batch maker, batch size, loss)
    "08 dot product, 32 factors": (DotProduct, ranking_batch, BIG_BATCH, ranking_loss),
    "08 MLP, 64 factors": (TowerMLP, ranking_batch, BIG_BATCH, ranking_loss),
    "02 depth 1 x 147": (lambda: deep_mlp(1, 147), pairs_batch, SMALL_BATCH, pairs_loss),
    "02 depth 8 x 17": (lambda: deep_mlp(8, 17), pairs_batch, SMALL_BATCH, pairs_loss),
}


def train_one(model: nn.Module, batches: list, loss: Callable) -> float:
    """Adam over `batches`, one copy; seconds per step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
    start = time.perf_counter()
    for *inputs, target in batches:
        optimizer.zero_grad(set_to_none=True)
        loss(model(*inputs), target, model).backward()
        optimizer.step()
    return (time.perf_counter() - start) / len(batches)


def train_batched(models: list[nn.Module], batches: list, loss: Callable) -> tuple[float, dict]:
    """Adam over the copies' stacked parameters, copy k trained on slice k of each stacked
    batch; seconds per step and the stacked parameters at the end."""
    stacked, _ = stack_module_state(models)
    params = {name: tensor.detach().requires_grad_() for name, tensor in stacked.items()}
    skeleton = copy.deepcopy(models[0]).to("meta")

    def copy_loss(copy_params: dict, *batch: torch.Tensor) -> torch.Tensor:
        *inputs, target = batch
        return loss(functional_call(skeleton, copy_params, tuple(inputs)), target, skeleton)

    copies_loss = vmap(copy_loss)
    optimizer = torch.optim.Adam(params.values(), lr=1e-2, fused=True)
    start = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        copies_loss(params, *batch).sum().backward()
        optimizer.step()
    return (time.perf_counter() - start) / len(batches), params


def copies_match_their_own_loops(name: str, copies: int = 3, steps: int = 20) -> float:
    """Largest parameter difference between each batched copy and its own loop, same
    initialisation and batches."""
    make_model, make_batch, size, loss = WORKLOADS[name]
    torch.manual_seed(0)
    models = [make_model() for _ in range(copies)]
    own = copy.deepcopy(models)
    generator = torch.Generator().manual_seed(1)
    batches = [make_batch(generator, (copies, size)) for _ in range(steps)]
    _, stacked = train_batched(models, batches, loss)
    worst = 0.0
    for k, model in enumerate(own):
        train_one(model, [[t[k] for t in batch] for batch in batches], loss)
        for param_name, param in model.named_parameters():
            worst = max(worst, (param - stacked[param_name][k]).abs().max().item())
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--copies", type=int, nargs="+", default=[3, 5, 15])
    args = parser.parse_args()
    torch.set_num_threads(get_thread_count())
    check = "08 dot product, 32 factors"
    print(
        f"{check}: 3 batched copies against their own loops, 20 steps: largest difference "
        f"{copies_match_their_own_loops(check):.1e}"
    )
    print(f"{torch.get_num_threads()} torch thread(s); {args.steps} steps per timing")
    print(
        f"{'workload':<28} {'one copy ms/step':>17} "
        + " ".join(f"{f'K={k}':>14}" for k in args.copies)
    )
    for name, (make_model, make_batch, size, loss) in WORKLOADS.items():
        generator = torch.Generator().manual_seed(0)
        single = train_one(
            make_model(), [make_batch(generator, (size,)) for _ in range(args.steps)], loss
        )
        cells = []
        for k in args.copies:
            batches = [make_batch(generator, (k, size)) for _ in range(args.steps)]
            batched, _ = train_batched([make_model() for _ in range(k)], batches, loss)
            cells.append(f"{batched * 1e3:6.2f} ms {k * single / batched:4.2f}x")
        print(f"{name:<28} {single * 1e3:17.2f} " + " ".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
