"""Probe (not the project's path): can a row-sparse ("lazy") Adam speed up the sigmoid dot model?

Plain PyTorch loops, no Lightning, on train_speed.py's synthetic ratings, batch 4096, 5 factors,
Adam lr 5e-3, 3 epochs, the project's torch threads (`DOTLAB_THREADS`, default 1); prints
ratings/s and held-out MSE of each variant in one run:

- dense: autograd over the whole tables + fused Adam (what `fit` does a step);
- lazy: only the batch's unique user rows get a gradient and an Adam update (moments gathered
  and scattered back with `index_select`/`index_copy_`); the 50-row movie table and the
  Linear(1, 1) stay dense. Variants of the bias correction of the user rows: the global step
  (TensorFlow's LazyAdam, PyTorch's SparseAdam), per-row step counts, and a closed-form
  "catch-up" of the steps a row missed (moments decayed, momentum's displacement added).

    python benchmarks/lazy_adam_probe.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from benchmarks.ratings_data import TOP50_SHAPE, make_ratings  # noqa: E402
from benchmarks.train_speed import SigmoidDot, make_sigmoid_dot  # noqa: E402
from utilities.data import map_ids  # noqa: E402
from utilities.splits import TensorBatchLoader, ratings_to_tensors, split_train_test  # noqa: E402
from utilities.training import evaluate, get_thread_count, seed_everything  # noqa: E402

BATCH_SIZE, EPOCHS, BETA1, BETA2, EPS = 4096, 3, 0.9, 0.999, 1e-8


def train_dense(model: SigmoidDot, loader: TensorBatchLoader, lr: float) -> None:
    """Autograd over the whole tables, one fused Adam step over every parameter."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    for _ in range(EPOCHS):
        for users, movies, ratings in loader:
            optimiser.zero_grad()
            F.mse_loss(model(users, movies), ratings).backward()
            optimiser.step()


def train_lazy(model: SigmoidDot, loader: TensorBatchLoader, lr: float, correction: str) -> None:
    """Adam on the batch's unique user rows only; `correction`: global, per_row or catch_up."""
    table = model.user_factors.weight
    dense = [model.movie_factors.weight, model.linear.weight, model.linear.bias]
    moments = torch.zeros(2, *table.shape)  # exp_avg and exp_avg_sq of the user rows
    dense_moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in dense]
    last_step = torch.zeros(len(table))  # per_row: updates so far; catch_up: last step touched
    step = torch.zeros(())
    low, high = model.y_range
    for _ in range(EPOCHS):
        for users, movies, ratings in loader:
            unique, inverse = torch.unique(users, return_inverse=True)
            rows = table.detach().index_select(0, unique).requires_grad_()
            dot = (rows.index_select(0, inverse) * F.embedding(movies, dense[0])).sum(1, True)
            prediction = torch.sigmoid(model.linear(dot).squeeze(1)) * (high - low) + low
            grads = torch.autograd.grad(F.mse_loss(prediction, ratings), [rows, *dense])
            step += 1
            torch._fused_adam_(
                [p.data for p in dense], list(grads[1:]), [m for m, _ in dense_moments],
                [v for _, v in dense_moments], [], [step.clone() for _ in dense], lr=lr,
                beta1=BETA1, beta2=BETA2, weight_decay=0.0, eps=EPS, amsgrad=False, maximize=False,
            )  # fmt: skip
            with torch.no_grad():
                state = moments.index_select(1, unique)
                update_rows(rows.detach(), grads[0], state, step, last_step, unique, lr, correction)
                table.index_copy_(0, unique, rows.detach())
                moments.index_copy_(1, unique, state)


def update_rows(params, grad, state, step, last_step, unique, lr: float, correction: str) -> None:
    """One Adam step of the gathered rows `params` (and their `state`) in place."""
    exp_avg, exp_avg_sq = state[0], state[1]
    steps = step
    if correction == "per_row":
        steps = last_step.index_select(0, unique).add_(1)
        last_step.index_copy_(0, unique, steps)
        steps = steps.unsqueeze(1)
    elif correction == "catch_up":  # the steps since the last touch, with zero gradients
        skipped = (step - 1 - last_step.index_select(0, unique)).unsqueeze(1)
        ratio = BETA1 / BETA2**0.5
        scale = -lr / (1 - BETA1**step) * ratio * (1 - ratio**skipped) / (1 - ratio)
        params.addcdiv_(exp_avg * scale, (exp_avg_sq / (1 - BETA2**step)).sqrt() + EPS)
        exp_avg.mul_(BETA1**skipped)
        exp_avg_sq.mul_(BETA2**skipped)
        last_step.index_fill_(0, unique, step.item())
    exp_avg.mul_(BETA1).add_(grad, alpha=1 - BETA1)
    exp_avg_sq.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
    denominator = (exp_avg_sq / (1 - BETA2**steps)).sqrt_().add_(EPS)
    params.addcdiv_(exp_avg / (1 - BETA1**steps), denominator, value=-lr)


def main() -> None:
    torch.set_num_threads(get_thread_count())  # the project's policy (DOTLAB_THREADS, default 1)
    ratings, users, movies = map_ids(make_ratings(**TOP50_SHAPE, seed=0))
    train, _, test = split_train_test(ratings, seed=42)
    train_tensors, test_tensors = ratings_to_tensors(train), ratings_to_tensors(test)
    variants = [
        ("dense, fused Adam", lambda m, ld: train_dense(m, ld, 5e-3)),
        ("lazy, global step", lambda m, ld: train_lazy(m, ld, 5e-3, "global")),
        ("lazy, global step, lr 1e-2", lambda m, ld: train_lazy(m, ld, 1e-2, "global")),
        ("lazy, per-row step", lambda m, ld: train_lazy(m, ld, 5e-3, "per_row")),
        ("lazy, catch-up", lambda m, ld: train_lazy(m, ld, 5e-3, "catch_up")),
    ]
    print(f"{'variant':<28}{'ratings/s':>12}{'s/epoch':>9}{'test MSE':>10}")
    for name, train_model in variants:
        seed_everything(0)
        model = make_sigmoid_dot((users.height, movies.height), train_tensors[2])
        loader = TensorBatchLoader(*train_tensors, batch_size=BATCH_SIZE, shuffle=True, seed=0)
        start = time.perf_counter()
        train_model(model, loader)
        seconds = time.perf_counter() - start
        mse = evaluate(model, test_tensors)
        rate = train.height * EPOCHS / seconds
        print(f"{name:<28}{rate:>12,.0f}{seconds / EPOCHS:>9.2f}{mse:>10.4f}", flush=True)


if __name__ == "__main__":
    main()
