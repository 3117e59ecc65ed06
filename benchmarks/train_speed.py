"""How fast the project trains the sigmoid-scaled embedding dot model, against the original
notebooks' training path and scikit-surprise's SVD, on the same ratings in one run.

    python benchmarks/train_speed.py            # synthetic MovieLens-25M-top-50-shaped ratings
    python benchmarks/train_speed.py --data ml-25m  # the real release, where it is in the cache

Ends with one line `speedup: original=<X>x svd=<Y>x`: the project's throughput divided by each
other path's. See benchmarks/README.md for what each path is and the measured numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402
import pytorch_lightning as L  # noqa: E402
import torch  # noqa: E402
from pytorch_lightning.loggers import MLFlowLogger  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

import utilities.training  # noqa: E402
from benchmarks.ratings_data import TOP50_SHAPE, make_ratings  # noqa: E402
from utilities import DotProductMLP, FreshPairLoader, evaluate, fit, seed_everything  # noqa: E402
from utilities.data import load_torch_data, map_ids  # noqa: E402
from utilities.device import select_device  # noqa: E402
from utilities.splits import ratings_to_tensors, split_train_test  # noqa: E402
from utilities.training import get_thread_count, torch_threads  # noqa: E402

BATCH_SIZE, LR = 4096, 5e-3
N_FACTORS = 5  # the original experiment's embedding width
Ratings = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class IndexSelectEmbedding(nn.Embedding):
    """`nn.Embedding` looking rows up with `index_select` (backward: one scatter-add)."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight.index_select(0, ids.reshape(-1)).view(*ids.shape, self.embedding_dim)


class SigmoidDot(nn.Module):
    """Notebook 04's model: user·movie dot → Linear(1, 1) → sigmoid scaled to `y_range`."""

    def __init__(
        self,
        n_users: int,
        n_movies: int,
        y_range: tuple[float, float],
        mean: float,
        embedding: type[nn.Embedding] = nn.Embedding,
    ) -> None:
        super().__init__()
        self.user_factors = embedding(n_users, N_FACTORS)
        self.movie_factors = embedding(n_movies, N_FACTORS)
        nn.init.normal_(self.user_factors.weight, std=0.01)
        nn.init.normal_(self.movie_factors.weight, std=0.01)
        self.linear, self.y_range = nn.Linear(1, 1), y_range
        low, high = y_range  # the bias starts at the logit of the mean rating
        nn.init.constant_(self.linear.bias, math.log((mean - low) / (high - mean)))

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(users) * self.movie_factors(movies)).sum(1, keepdim=True)
        low, high = self.y_range
        return torch.sigmoid(self.linear(dot).squeeze(1)) * (high - low) + low


def make_model(sizes: tuple[int, int], ratings: torch.Tensor, **options) -> SigmoidDot:
    """A `SigmoidDot` with the rating range widened by 0.5 and the mean of `ratings`."""
    y_range = (ratings.min().item() - 0.5, ratings.max().item() + 0.5)
    return SigmoidDot(*sizes, y_range, ratings.mean().item(), **options)


@dataclass
class Result:
    """One training path's measurements."""

    name: str
    ratings_per_s: float
    ratings_per_cpu_s: float  # per second of CPU time of this process, all threads
    s_per_epoch: float
    epochs: float  # epochs timed (a fraction where only part of one was)
    heldout_mse: float | None
    peak_rss_gb: float


def get_peak_rss_gb() -> float:
    """The process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def load_benchmark_ratings(data: str, seed: int) -> tuple[pl.DataFrame, int, int]:
    """Ratings with mapped ids, and the numbers of users and movies."""
    if data == "synthetic":
        ratings, users, movies = map_ids(make_ratings(**TOP50_SHAPE, seed=seed))
    else:
        ratings, users, movies = load_torch_data(data, top_n_movies=50)
    return ratings, users.height, movies.height


class RatingsDataset(Dataset):
    """The original notebooks' dataset: one `(user, movie, rating)` item per `__getitem__`."""

    def __init__(self, tensors: Ratings) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[2])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(tensor[index] for tensor in self.tensors)


class OriginalModule(L.LightningModule):
    """The original notebooks' training: automatic optimisation, PyTorch's default Adam and
    `self.log` on every step."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def training_step(self, batch: Ratings, batch_idx: int) -> torch.Tensor:
        users, movies, ratings = batch
        loss = F.mse_loss(self.model(users, movies), ratings)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=LR)


def run_original(data: tuple[Ratings, Ratings], sizes, args) -> Result:
    """Per-item Dataset + DataLoader(shuffle) + Lightning, MLflow logging every step."""
    (train, test), limit = data, args.original_batches
    seed_everything(args.seed)
    model = make_model(sizes, train[2])
    loader = DataLoader(
        RatingsDataset(tuple(t.cpu() for t in train)), batch_size=BATCH_SIZE, shuffle=True
    )
    store = tempfile.mkdtemp(prefix="dotlab-bench-")
    logger = MLFlowLogger("benchmark_train_speed", tracking_uri=f"sqlite:///{store}/m.db")
    logger.run_id  # noqa: B018 (creates the store and the run before the clock)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        logger=logger,
        log_every_n_steps=1,
        limit_train_batches=limit,
        accelerator=select_device(args.device)[1],
        deterministic=True,
        default_root_dir=store,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start, cpu = time.perf_counter(), time.process_time()
    with torch_threads(get_thread_count()):  # as `fit` does, so that only the path differs
        trainer.fit(OriginalModule(model), loader)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    epochs = args.epochs * min(limit or len(loader), len(loader)) / len(loader)
    mse = None if limit else evaluate(model, test)
    return make_result("original", len(train[2]) * epochs, seconds, cpu, epochs, mse)


@dataclass
class Variant:
    """One way of running the project's path: model options, a setting around `fit`, repeats."""

    name: str
    repeats: int = 1
    setting: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    options: dict = field(default_factory=dict)


def time_project(variant: Variant, train: Ratings, sizes, args) -> tuple[float, float, nn.Module]:
    """Wall and CPU seconds of one seeded `fit` (no MLflow record), and the trained model."""
    seed_everything(args.seed)
    model, cpu = make_model(sizes, train[2], **variant.options), time.process_time()
    with variant.setting():
        result = fit(
            model,
            train,
            epochs=args.epochs,
            lr=LR,
            batch_size=BATCH_SIZE,
            seed=args.seed,
            accelerator=select_device(args.device)[1],
        )
    return result.metrics["train_seconds"], time.process_time() - cpu, model


def run_project(variants: list[Variant], data: tuple[Ratings, Ratings], sizes, args):
    """The notebooks' path, `fit` on tensors, per variant: the variants take turns (so that the
    machine's load hits them alike) and each one's median time counts."""
    times: dict[str, list[tuple[float, float]]] = {v.name: [] for v in variants}
    models = {}
    for turn in range(max(v.repeats for v in variants)):
        for v in (v for v in variants if turn < v.repeats):
            *seconds, models[v.name] = time_project(v, data[0], sizes, args)
            times[v.name].append(tuple(seconds))
    n_ratings = len(data[0][2]) * args.epochs
    return [
        make_result(
            v.name,
            n_ratings,
            *map(statistics.median, zip(*times[v.name], strict=True)),
            args.epochs,
            evaluate(models[v.name], data[1]),
        )
        for v in variants
    ]


def run_svd(train: pl.DataFrame, test: pl.DataFrame, args, n_factors: int) -> Result | None:
    """scikit-surprise's SVD (biased, Cython SGD) with `n_factors` and the same epochs."""
    try:
        from surprise import SVD, Reader
        from surprise import Dataset as SurpriseDataset
    except ImportError:
        print("scikit-surprise is not installed (pip install -e '.[benchmark]'): SVD skipped.")
        return None
    columns = ["userIdMapped", "movieIdMapped", "rating"]
    start = time.perf_counter()
    reader = Reader(rating_scale=(0.5, 5))
    trainset = SurpriseDataset.load_from_df(train.select(columns).to_pandas(), reader)
    trainset = trainset.build_full_trainset()
    print(f"  (building SVD's trainset took {time.perf_counter() - start:.1f} s, not counted)")
    algorithm = SVD(n_factors=n_factors, n_epochs=args.epochs, random_state=args.seed)
    start, cpu = time.perf_counter(), time.process_time()
    algorithm.fit(trainset)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    predictions = algorithm.test(test.select(columns).rows())
    mse = sum((p.r_ui - p.est) ** 2 for p in predictions) / len(predictions)
    name = f"svd, {n_factors} factors"
    return make_result(name, train.height * args.epochs, seconds, cpu, args.epochs, mse)


def make_result(
    name: str, ratings: float, seconds: float, cpu_seconds: float, epochs: float, mse
) -> Result:
    """A `Result` with the peak memory so far, announced on one line."""
    speeds = (ratings / seconds, ratings / cpu_seconds, seconds / epochs)
    result = Result(name, *speeds, epochs, mse, get_peak_rss_gb())
    print(f"  {name}: {result.ratings_per_s:,.0f} ratings/s", flush=True)
    return result


def time_fresh_pairs(args, steps: int = 300) -> float:
    """Steps/s of notebook 01's `DotProductMLP` through `fit` on fresh pairs drawn on the device."""
    device, accelerator = select_device(args.device)
    loader = FreshPairLoader(32, batches_per_epoch=steps, batch_size=256, device=device)
    seed_everything(args.seed)
    result = fit(DotProductMLP(32, [128, 128]), loader, epochs=1, lr=1e-3, accelerator=accelerator)
    return steps / result.metrics["train_seconds"]


def print_table(results: list[Result], project: Result) -> None:
    """One row per path: throughput, time, held-out MSE, memory, and the project's ratio."""
    print(
        f"\n{'path':<30}{'ratings/s':>12}{'s/epoch':>9}{'epochs':>8}{'test MSE':>10}"
        f"{'peak RSS':>10}{'project is':>12}{'per CPU-s':>12}{'project is':>12}"
    )
    for r in results:
        mse = "n/a" if r.heldout_mse is None else f"{r.heldout_mse:.4f}"
        ratio = project.ratings_per_s / r.ratings_per_s
        cpu_ratio = project.ratings_per_cpu_s / r.ratings_per_cpu_s
        print(
            f"{r.name:<30}{r.ratings_per_s:>12,.0f}{r.s_per_epoch:>9.2f}{r.epochs:>8.2f}"
            f"{mse:>10}{r.peak_rss_gb:>8.2f}GB{ratio:>11.2f}x"
            f"{r.ratings_per_cpu_s:>12,.0f}{cpu_ratio:>11.2f}x"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic", help="'synthetic' or a cached release")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA if present)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--original-batches",
        type=int,
        default=None,
        help="time only this many batches per epoch of the original path (no MSE then)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    ratings, n_users, n_movies = load_benchmark_ratings(args.data, args.seed)
    train, _, test = split_train_test(ratings, seed=42)
    device = select_device(args.device)[0]
    data = (ratings_to_tensors(train, device), ratings_to_tensors(test, device))
    print(
        f"{args.data}: {train.height:,} train / {test.height:,} test ratings, {n_users:,} users, "
        f"{n_movies} movies; device {device}; {get_thread_count()} torch thread(s) "
        "(DOTLAB_THREADS) for fit and the original path"
    )
    sizes = (n_users, n_movies)
    one_batch = partial(mock.patch.object, utilities.training, "BATCHES_PER_STEP", 1)
    variants = [
        Variant("project (fit, nn.Embedding)", repeats=3),
        Variant("project, index_select lookup", 3, options={"embedding": IndexSelectEmbedding}),
        Variant("project, 1 batch per step", setting=one_batch),
    ]
    results = [*run_project(variants, data, sizes, args), run_original(data, sizes, args)]
    svd = run_svd(train, test, args, N_FACTORS)
    results += [svd, run_svd(train, test, args, 100)] if svd else []
    project = results[0]
    original = next(r for r in results if r.name == "original")
    print_table(results, project)
    print(f"fresh-pair DotProductMLP (notebooks 01-03): {time_fresh_pairs(args):,.0f} steps/s")
    print(f"total {time.perf_counter() - start:.0f} s")
    svd_ratio = f"{project.ratings_per_s / svd.ratings_per_s:.1f}x" if svd else "n/a"
    print(
        f"speedup: original={project.ratings_per_s / original.ratings_per_s:.1f}x svd={svd_ratio}"
    )


if __name__ == "__main__":
    main()
