"""How fast the project trains the sigmoid-scaled embedding dot model, against the original
notebooks' training path and scikit-surprise's SVD, on the same ratings in one run.

    python benchmarks/train_speed.py            # synthetic MovieLens-25M-top-50-shaped ratings
    python benchmarks/train_speed.py --data ml-25m  # the real release, where it is in the cache

Ends with one line `speedup: original=<X>x svd=<Y>x`: the project's throughput divided by each
other path's. See benchmarks/README.md for what each path is and the measured numbers.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The MLflow runs of the benchmark go to a store that is deleted afterwards.
os.environ["MLFLOW_TRACKING_URI"] = (
    "sqlite:///" + tempfile.mkdtemp(prefix="dotlab-bench-") + "/m.db"
)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from benchmarks.ratings_data import TOP50_SHAPE, make_ratings  # noqa: E402
from utilities.collab import (  # noqa: E402
    BATCHES_PER_STEP,
    SigmoidDot,
    evaluate_mse,
    make_sigmoid_dot,
)
from utilities.data import load_torch_data, map_ids  # noqa: E402
from utilities.device import select_device  # noqa: E402
from utilities.models import DotProductMLP  # noqa: E402
from utilities.splits import (  # noqa: E402
    BatchGroups,
    TensorBatchLoader,
    ratings_to_tensors,
    split_train_test,
)
from utilities.synthetic import FreshPairLoader  # noqa: E402
from utilities.tracking import get_mlflow_logger  # noqa: E402
from utilities.training import make_trainer, seed_everything  # noqa: E402

BATCH_SIZE = 4096
N_FACTORS = 5  # the original experiment's embedding width
MODEL = {"n_factors": N_FACTORS, "init_std": 0.01, "weight_decay": 0.0}


@dataclass
class Result:
    """One training path's measurements."""

    name: str
    ratings_per_s: float
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

    def __init__(self, ratings: pl.DataFrame) -> None:
        self.users, self.movies, self.ratings = ratings_to_tensors(ratings)

    def __len__(self) -> int:
        return len(self.ratings)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.users[index], self.movies[index], self.ratings[index]


def use_nn_embedding_lookups(model: SigmoidDot) -> SigmoidDot:
    """`model` with `nn.Embedding`'s own lookup and backward instead of the project's
    `index_select` (the project's `Embedding` is an `nn.Embedding` with the same weights)."""
    model.user_factors.__class__ = nn.Embedding
    model.movie_factors.__class__ = nn.Embedding
    return model


class OriginalSigmoidDot(SigmoidDot):
    """The same model as the original notebooks trained it (with `use_nn_embedding_lookups`):
    Lightning's automatic optimisation and `self.log` on every step."""

    def training_step(self, batch, batch_idx):
        users, movies, ratings = batch
        loss = torch.nn.functional.mse_loss(self(users, movies), ratings)
        self.log("train_loss", loss)
        return loss


def time_fit(model, loader, epochs: int, limit_batches: int | None, device: str, **trainer):
    """Seconds `Trainer.fit` takes on `loader`, logging to MLflow."""
    logger = get_mlflow_logger("benchmark_train_speed")
    logger.experiment.get_run(logger.run_id)  # create the store and the run before the clock
    trainer = make_trainer(
        max_epochs=epochs,
        logger=logger,
        accelerator=select_device(device)[1],
        progress_bar=False,
        limit_train_batches=limit_batches,
        default_root_dir=tempfile.mkdtemp(prefix="dotlab-bench-"),
        **trainer,
    )
    start = time.perf_counter()
    trainer.fit(model, loader)
    return time.perf_counter() - start


def run_original(train, test, sizes, args) -> Result:
    """Per-item Dataset + DataLoader(shuffle) + Lightning, MLflow logging every step."""
    seed_everything(args.seed)
    model = make_sigmoid_dot(*sizes, ratings_to_tensors(train)[2], **MODEL)
    model.__class__ = OriginalSigmoidDot
    model.automatic_optimization = True
    use_nn_embedding_lookups(model)
    loader = DataLoader(RatingsDataset(train), batch_size=BATCH_SIZE, shuffle=True)
    limit = args.original_batches
    seconds = time_fit(model, loader, args.epochs, limit, args.device, log_every_n_steps=1)
    n_batches = min(limit or len(loader), len(loader))
    epochs = args.epochs * n_batches / len(loader)
    mse = None if limit else evaluate_on(model, test, args.device)
    return make_result("original", train.height * epochs, seconds, epochs, mse)


def run_project(
    name: str,
    train,
    test,
    sizes,
    args,
    *,
    nn_embedding: bool = False,
    batches_per_step: int = BATCHES_PER_STEP,
    repeats: int = 1,
    **options,
) -> Result:
    """The notebooks' path, as `train_rating_model` runs it: batches sliced from tensors,
    `batches_per_step` of them per Lightning step, `make_trainer`, MLflow per epoch.

    With `repeats`, the same seeded training runs that often and the median time counts.
    """
    device = select_device(args.device)[0]
    tensors = ratings_to_tensors(train, device)
    times = []
    for _ in range(repeats):
        seed_everything(args.seed)
        model = make_sigmoid_dot(*sizes, tensors[2], **MODEL, **options)
        if nn_embedding:
            use_nn_embedding_lookups(model)
        loader = TensorBatchLoader(*tensors, batch_size=BATCH_SIZE, shuffle=True, seed=args.seed)
        times.append(
            time_fit(model, BatchGroups(loader, batches_per_step), args.epochs, None, args.device)
        )
    mse = evaluate_on(model, test, args.device)
    seconds = statistics.median(times)
    return make_result(name, train.height * args.epochs, seconds, args.epochs, mse)


def evaluate_on(model: torch.nn.Module, test: pl.DataFrame, device: str | None) -> float:
    tensors = ratings_to_tensors(test, select_device(device)[0])
    return evaluate_mse(model, TensorBatchLoader(*tensors, batch_size=65_536))


def run_svd(train, test, args, n_factors: int) -> Result | None:
    """scikit-surprise's SVD (biased, Cython SGD) with `n_factors` and the same epochs."""
    try:
        from surprise import SVD, Reader
        from surprise import Dataset as SurpriseDataset
    except ImportError:
        print("scikit-surprise is not installed (pip install -e '.[benchmark]'): SVD skipped.")
        return None
    columns = ["userIdMapped", "movieIdMapped", "rating"]
    start = time.perf_counter()
    data = SurpriseDataset.load_from_df(
        train.select(columns).to_pandas(), Reader(rating_scale=(0.5, 5))
    )
    trainset = data.build_full_trainset()
    print(f"  (building SVD's trainset took {time.perf_counter() - start:.1f} s, not counted)")
    algorithm = SVD(n_factors=n_factors, n_epochs=args.epochs, random_state=args.seed)
    start = time.perf_counter()
    algorithm.fit(trainset)
    seconds = time.perf_counter() - start
    predictions = algorithm.test(test.select(columns).rows())
    mse = sum((p.r_ui - p.est) ** 2 for p in predictions) / len(predictions)
    return make_result(
        f"svd, {n_factors} factors", train.height * args.epochs, seconds, args.epochs, mse
    )


def make_result(name: str, ratings: float, seconds: float, epochs: float, mse) -> Result:
    result = Result(name, ratings / seconds, seconds / epochs, epochs, mse, get_peak_rss_gb())
    print(f"  {name}: {result.ratings_per_s:,.0f} ratings/s", flush=True)
    return result


def time_fresh_pairs(args, steps: int = 300) -> float:
    """Steps/s of notebook 01's `DotProductMLP` on fresh pairs drawn on the device."""
    seed_everything(args.seed)
    device = select_device(args.device)[0]
    loader = FreshPairLoader(32, batches_per_epoch=steps, batch_size=256, device=device)
    model = DotProductMLP(32, [128, 128])
    return steps / time_fit(model, loader, 1, None, args.device)


def print_table(results: list[Result], project: Result) -> None:
    print(
        f"\n{'path':<28}{'ratings/s':>12}{'s/epoch':>9}{'epochs':>8}{'test MSE':>10}"
        f"{'peak RSS':>10}{'project is':>12}"
    )
    for r in results:
        mse = "n/a" if r.heldout_mse is None else f"{r.heldout_mse:.4f}"
        ratio = project.ratings_per_s / r.ratings_per_s
        print(
            f"{r.name:<28}{r.ratings_per_s:>12,.0f}{r.s_per_epoch:>9.2f}{r.epochs:>8.2f}"
            f"{mse:>10}{r.peak_rss_gb:>8.2f}GB{ratio:>11.1f}x"
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
    print(
        f"{args.data}: {train.height:,} train / {test.height:,} test ratings, {n_users:,} users, "
        f"{n_movies} movies; device {select_device(args.device)[0]}, "
        f"{torch.get_num_threads()} threads"
    )
    sizes = (n_users, n_movies)
    results = [
        run_project("project (as notebooks train)", train, test, sizes, args, repeats=3),
        run_project("project, 1 batch per step", train, test, sizes, args, batches_per_step=1),
        run_project("project, nn.Embedding", train, test, sizes, args, nn_embedding=True),
        run_project("project, unfused Adam", train, test, sizes, args, fused=False),
        run_original(train, test, sizes, args),
    ]
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
