"""The thread policy's evidence: small models trained with 1 and 2 torch threads, on a quiet CPU
and beside 1 or 2 competing CPU-bound processes that this script starts and stops.

    python benchmarks/threads.py [--repeats 3] [--load busy|torch]

Workloads: 500 Adam steps of notebook 01's `DotProductMLP` (plain loop, batch 256), and one
epoch of train_speed.py's sigmoid dot through `fit` (batch 4096, the first quarter of its 1.78M
training ratings, full-size tables). Loads: Python busy loops, or single-threaded torch matmul
loops (like other notebooks). Prints per regime the median seconds, the slowdown against no
load, and the fair-share slowdown (the cores shared evenly among all runnable threads, counting
`outside`: the cores that other processes kept busy on average during the regime).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from benchmarks.train_speed import load_benchmark_ratings, make_sigmoid_dot  # noqa: E402
from utilities import DotProductMLP, fit, make_vector_pairs, seed_everything  # noqa: E402
from utilities.splits import ratings_to_tensors, split_train_test  # noqa: E402
from utilities.training import torch_threads  # noqa: E402

LOADS = {
    "busy": "while True: pass",
    "torch": "import torch\ntorch.set_num_threads(1)\na = torch.randn(256, 256)\nwhile True: a @ a",
}


def time_mlp(threads: int, steps: int = 500, budget: float = 3.0) -> float:
    """Seconds for `steps` Adam steps of a 32-d `DotProductMLP` (128-128) on batches of 256;
    a run that passes `budget` seconds stops there and is scaled up to `steps`."""
    seed_everything(0)
    batches = make_vector_pairs(steps * 256, 32, generator=torch.Generator().manual_seed(0))
    model = DotProductMLP(32, [128, 128])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    done, start = 0, time.perf_counter()
    with torch_threads(threads):
        for a, b, target in zip(*(t.split(256) for t in batches), strict=True):
            optimiser.zero_grad()
            F.mse_loss(model(a, b), target).backward()
            optimiser.step()
            done += 1
            if time.perf_counter() - start > budget:
                break
    return (time.perf_counter() - start) * steps / done


def time_rating_epoch(threads: int, train: tuple[torch.Tensor, ...], sizes) -> float:
    """Seconds of one epoch of the sigmoid dot through `fit` with `DOTLAB_THREADS=threads`."""
    seed_everything(0)
    with mock.patch.dict(os.environ, {"DOTLAB_THREADS": str(threads)}):
        result = fit(make_sigmoid_dot(sizes, train[2]), train, epochs=1, lr=5e-3, batch_size=4096)
    return result.metrics["train_seconds"]


def read_cpu_seconds() -> tuple[float, float]:
    """CPU seconds used so far by all processes (from /proc/stat), and by this process and its
    waited-for children."""
    with open("/proc/stat") as stat:
        jiffies = [int(v) for v in stat.readline().split()[1:]]
    busy = sum(jiffies[:3]) + jiffies[5] + jiffies[6]  # user, nice, system, irq, softirq
    return busy / os.sysconf("SC_CLK_TCK"), sum(os.times()[:4])


def measure(workloads: dict[str, Callable[[int], float]], kind: str, n_loads: int, args):
    """Median seconds per (workload, threads) with `n_loads` load processes running, and the
    cores other processes kept busy meanwhile; a cell stops repeating after `args.cell_budget`
    seconds."""
    (all_before, ours_before), start = read_cpu_seconds(), time.perf_counter()
    loads = [subprocess.Popen([sys.executable, "-c", LOADS[kind]]) for _ in range(n_loads)]
    try:
        time.sleep(1.0 if loads else 0.0)  # the loads start and take their cores
        times = {(w, t): [] for w in workloads for t in (1, 2)}
        for _ in range(args.repeats):  # interleaved, so that outside load hits every cell alike
            for (name, threads), seconds in times.items():
                if sum(seconds) < args.cell_budget:
                    seconds.append(workloads[name](threads))
    finally:
        for process in loads:
            process.kill()
            process.wait()
    all_after, ours_after = read_cpu_seconds()
    outside = (all_after - all_before - ours_after + ours_before) / (time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}, max(0.0, outside)


def get_fair_share(threads: int, busy: float, busy_before: float, cores: int) -> float:
    """The slowdown if the cores were shared evenly among all runnable threads: `threads` of
    ours beside `busy` others' instead of `busy_before`."""
    return max(1.0, (threads + busy) / cores) / max(1.0, (threads + busy_before) / cores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", choices=sorted(LOADS), default="busy")
    parser.add_argument("--cell-budget", type=float, default=6.0, help="seconds per cell")
    parser.add_argument("--fraction", type=float, default=0.25, help="of the training ratings")
    args = parser.parse_args()
    ratings, n_users, n_movies = load_benchmark_ratings("synthetic", 0)
    train = ratings_to_tensors(split_train_test(ratings, seed=42)[0])
    train = tuple(t[: int(len(t) * args.fraction)] for t in train)
    workloads = {
        "MLP, 500 Adam steps": time_mlp,
        "sigmoid dot, 1 epoch (fit)": lambda t: time_rating_epoch(t, train, (n_users, n_movies)),
    }
    for workload in workloads.values():  # warm up both paths before any clock
        workload(1)
    cores = os.cpu_count() or 1
    print(f"{cores} cores; sigmoid dot on {len(train[0]):,} ratings; load: {args.load} loops")
    print(f"\n{'workload':<28}{'threads':>8}{'loads':>6}{'outside':>8}{'s':>8}"
          f"{'slowdown':>10}{'fair share':>12}{'2 vs 1 thr':>12}")  # fmt: skip
    for n_loads in (0, 1, 2):
        seconds, outside = measure(workloads, args.load, n_loads, args)
        if n_loads == 0:
            quiet, quiet_outside = seconds, outside
        for (name, threads), value in seconds.items():
            share = get_fair_share(threads, n_loads + outside, quiet_outside, cores)
            print(
                f"{name:<28}{threads:>8}{n_loads:>6}{outside:>8.2f}{value:>8.2f}"
                f"{value / quiet[name, threads]:>9.1f}x{share:>11.1f}x"
                f"{value / seconds[name, 1]:>11.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
