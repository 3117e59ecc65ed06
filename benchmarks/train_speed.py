"""Speed as users feel it: how soon each way of training a rating model reaches a held-out error,
against scikit-surprise's SVD with its default settings, on the same ratings in one run.

    python benchmarks/train_speed.py              # synthetic MovieLens-25M-top-50-shaped ratings
    python benchmarks/train_speed.py --data ml-25m  # the real release, where it is in the cache
    python benchmarks/train_speed.py --tune       # the project model's grid on the validation split

Every path records, after each epoch, the training seconds spent so far (evaluation not
counted) and the held-out MSE. The target is the best held-out MSE Surprise's `SVD` reaches with
its defaults. Ends with two lines:

    best held-out MSE: project=<a> svd=<b>
    speedup: original=<X>x time_to_target_vs_svd=<Y>x

`original` is the project's training throughput (ratings/s) over the original notebooks' path;
`time_to_target_vs_svd` is SVD's seconds to the target over the project's. See
benchmarks/README.md for what each path is and the measured numbers.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402
import pytorch_lightning as L  # noqa: E402
import torch  # noqa: E402
from pytorch_lightning.callbacks import Callback  # noqa: E402
from pytorch_lightning.loggers import MLFlowLogger  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from benchmarks.ratings_data import TOP50_SHAPE, make_ratings  # noqa: E402
from utilities import evaluate, fit, seed_everything  # noqa: E402
from utilities.collab import predict_surprise  # noqa: E402
from utilities.data import load_torch_data, map_ids  # noqa: E402
from utilities.device import select_device  # noqa: E402
from utilities.splits import ratings_to_tensors, split_train_test  # noqa: E402
from utilities.training import get_thread_count, torch_threads  # noqa: E402

Ratings = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
SVD_EPOCH_COUNTS = (1, 2, 3, 5, 8, 12, 16, 20)  # refits; 20 is SVD's default
# The project's model and settings, chosen on the validation split (`--tune`).
PROJECT = {"n_factors": 5, "reg": 0.05, "lr": 0.03, "batch_size": 32_768, "epochs": 6}
PROJECT_GRID = {"reg": [0.02, 0.05, 0.1], "lr": [0.01, 0.03]}


class RegularisedMF(nn.Module):
    """Notebook 06's model, mean + user bias + movie bias + user·movie factors, with each side's
    factors and bias in one table (one lookup per side) and Surprise's regularisation: `reg`
    times the squared size of the rows a batch uses, which `penalty` holds after a training
    forward pass."""

    def __init__(self, n_users: int, n_movies: int, n_factors: int, mean: float, reg: float):
        super().__init__()
        self.users = nn.Parameter(self.init_rows(n_users, n_factors))
        self.movies = nn.Parameter(self.init_rows(n_movies, n_factors))
        self.mean, self.reg, self.penalty = mean, reg, torch.tensor(0.0)

    @staticmethod
    def init_rows(n_rows: int, n_factors: int) -> torch.Tensor:
        """`n_factors` columns drawn from N(0, 0.01²), then a bias column of zeros."""
        return torch.cat([torch.randn(n_rows, n_factors) * 0.01, torch.zeros(n_rows, 1)], 1)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        user_rows = self.users.index_select(0, users)
        movie_rows = self.movies.index_select(0, movies)
        if self.training:
            sizes = user_rows.square().sum(1) + movie_rows.square().sum(1)
            self.penalty = self.reg * sizes.mean()
        dots = (user_rows[:, :-1] * movie_rows[:, :-1]).sum(1)
        return self.mean + user_rows[:, -1] + movie_rows[:, -1] + dots


def regularised_mse(model: RegularisedMF) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss: the batch's MSE plus the model's penalty on the rows it used."""
    return lambda prediction, target: F.mse_loss(prediction, target) + model.penalty


class NotebookMF(nn.Module):
    """Notebook 06's `MatrixFactorisation` as written there (trained there by SGD, weight decay)."""

    def __init__(self, n_users: int, n_movies: int, n_factors: int, mean: float) -> None:
        super().__init__()
        self.user_factors = nn.Parameter(torch.randn(n_users, n_factors) * 0.01)
        self.movie_factors = nn.Parameter(torch.randn(n_movies, n_factors) * 0.01)
        self.user_bias = nn.Parameter(torch.randn(n_users) * 0.01)
        self.movie_bias = nn.Parameter(torch.randn(n_movies) * 0.01)
        self.mean = mean

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        dots = (self.user_factors[users] * self.movie_factors[movies]).sum(1)
        return self.mean + self.user_bias[users] + self.movie_bias[movies] + dots


class SigmoidDot(nn.Module):
    """Notebook 04's first model: user·movie dot (5 factors) → Linear(1, 1) → sigmoid scaled to
    `y_range`; no biases, no weight decay."""

    def __init__(self, n_users: int, n_movies: int, y_range: tuple[float, float], mean: float):
        super().__init__()
        self.user_factors, self.movie_factors = nn.Embedding(n_users, 5), nn.Embedding(n_movies, 5)
        nn.init.normal_(self.user_factors.weight, std=0.01)
        nn.init.normal_(self.movie_factors.weight, std=0.01)
        self.linear, self.y_range = nn.Linear(1, 1), y_range
        low, high = y_range  # the bias starts at the logit of the mean rating
        nn.init.constant_(self.linear.bias, math.log((mean - low) / (high - mean)))

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(users) * self.movie_factors(movies)).sum(1, keepdim=True)
        low, high = self.y_range
        return torch.sigmoid(self.linear(dot).squeeze(1)) * (high - low) + low


def make_sigmoid_dot(sizes: tuple[int, int], ratings: torch.Tensor) -> SigmoidDot:
    """A `SigmoidDot` with the rating range widened by 0.5 and the mean of `ratings`."""
    y_range = (ratings.min().item() - 0.5, ratings.max().item() + 0.5)
    return SigmoidDot(*sizes, y_range, ratings.mean().item())


@dataclass
class Curve:
    """One path's held-out MSE after each epoch and the training seconds spent by then."""

    name: str
    epochs: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)

    def add(self, epochs: int, seconds: float, mse: float) -> None:
        """Record one point and announce it on one line."""
        self.epochs.append(epochs)
        self.seconds.append(seconds)
        self.mse.append(mse)
        print(f"  {self.name}: epoch {epochs}, {seconds:.2f} s, held-out MSE {mse:.4f}", flush=True)

    @property
    def best(self) -> float:
        return min(self.mse)

    def time_to(self, target: float) -> float:
        """Training seconds until the held-out MSE first reaches `target` (inf if never)."""
        return next(
            (s for s, m in zip(self.seconds, self.mse, strict=True) if m <= target), math.inf
        )

    def ratings_per_second(self, n_train: int) -> float:
        return n_train * self.epochs[-1] / self.seconds[-1]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read means what it says."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class HeldOutCurve(Callback):
    """After every training epoch, records the training seconds since `start` (this callback's
    own evaluations excluded) and the model's held-out MSE into `curve`."""

    def __init__(self, curve: Curve, heldout: Ratings, device: torch.device) -> None:
        self.curve, self.heldout, self.device = curve, heldout, device
        self.start, self.excluded = time.perf_counter(), 0.0

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        synchronize(self.device)
        stop = time.perf_counter()
        mse = evaluate(module.model, self.heldout)
        self.curve.add(trainer.current_epoch + 1, stop - self.start - self.excluded, mse)
        self.excluded += time.perf_counter() - stop


def train_through_fit(name: str, model: nn.Module, data, args, **settings) -> Curve:
    """One seeded `fit` (no MLflow record) with a held-out curve."""
    curve, device = Curve(name), select_device(args.device)[0]
    clock = HeldOutCurve(curve, data[1], device)
    fit(model, data[0], seed=args.seed, callbacks=[clock], accelerator=device.type, **settings)
    return curve


def run_project(data, sizes: tuple[int, int], args, *, name="project", **changes) -> Curve:
    """The project's model: `RegularisedMF` through `fit`, Adam and a cosine schedule."""
    setting = PROJECT | changes
    seed_everything(args.seed)
    model = RegularisedMF(*sizes, setting["n_factors"], data[0][2].mean().item(), setting["reg"])
    return train_through_fit(
        name,
        model,
        data,
        args,
        epochs=setting["epochs"],
        lr=setting["lr"],
        batch_size=setting["batch_size"],
        schedule="cosine",
        loss=regularised_mse(model),
    )


def run_notebook_06(data, sizes: tuple[int, int], args) -> Curve:
    """Notebook 06's MF with its tuned settings: SGD lr 20, weight decay 1e-4, batch 1024, 32
    factors, a cosine schedule (over `--epochs-06` epochs here, 20 there)."""
    seed_everything(args.seed)
    model = NotebookMF(*sizes, 32, data[0][2].mean().item())
    settings = {"epochs": args.epochs_06, "lr": 20.0, "weight_decay": 1e-4, "batch_size": 1024}
    return train_through_fit(
        "notebook 06's MF", model, data, args, optimizer="sgd", schedule="cosine", **settings
    )


def run_sigmoid_dot(data, sizes: tuple[int, int], args) -> Curve:
    """The earlier benchmark model through `fit`: Adam lr 5e-3, batch 4096."""
    seed_everything(args.seed)
    model = make_sigmoid_dot(sizes, data[0][2])
    return train_through_fit(
        "sigmoid dot", model, data, args, epochs=args.epochs_sigmoid, lr=5e-3, batch_size=4096
    )


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
        return torch.optim.Adam(self.parameters(), lr=5e-3)


def run_original(data, sizes: tuple[int, int], args) -> Curve:
    """The sigmoid dot the original way: per-item Dataset, DataLoader(shuffle), Lightning with
    the MLflow logger writing every step into a temporary store."""
    (train, heldout), curve = data, Curve("original")
    seed_everything(args.seed)
    model = make_sigmoid_dot(sizes, train[2])
    loader = DataLoader(
        RatingsDataset(tuple(t.cpu() for t in train)), batch_size=4096, shuffle=True
    )
    store = tempfile.mkdtemp(prefix="dotlab-bench-")
    logger = MLFlowLogger("benchmark_train_speed", tracking_uri=f"sqlite:///{store}/m.db")
    logger.run_id  # noqa: B018 (creates the store and the run before the clock)
    device, accelerator = select_device(args.device)
    trainer = L.Trainer(
        max_epochs=args.epochs_original,
        logger=logger,
        log_every_n_steps=1,
        callbacks=[HeldOutCurve(curve, heldout, device)],
        accelerator=accelerator,
        deterministic=True,
        default_root_dir=store,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with torch_threads(get_thread_count()):  # as `fit` does, so that only the path differs
        trainer.fit(OriginalModule(model), loader)
    return curve


def run_svd(train: pl.DataFrame, heldout: Ratings, n_factors: int, seed: int) -> Curve:
    """Surprise's `SVD` with its defaults but `n_factors`, refitted for each epoch count in
    `SVD_EPOCH_COUNTS` (its learning rate is constant, so a k-epoch fit is the first k epochs of
    a longer one); each point is that fit's seconds."""
    from surprise import SVD, Reader
    from surprise import Dataset as SurpriseDataset

    columns = ["userIdMapped", "movieIdMapped", "rating"]
    reader = Reader(rating_scale=(0.5, 5))
    trainset = SurpriseDataset.load_from_df(train.select(columns).to_pandas(), reader)
    trainset, curve = trainset.build_full_trainset(), Curve(f"svd, {n_factors} factors")
    for n_epochs in SVD_EPOCH_COUNTS:
        algorithm = SVD(n_factors=n_factors, n_epochs=n_epochs, random_state=seed)
        start = time.perf_counter()
        algorithm.fit(trainset)
        seconds = time.perf_counter() - start
        predictions = predict_surprise(algorithm, *heldout[:2]).double()
        curve.add(n_epochs, seconds, ((predictions - heldout[2].cpu().double()) ** 2).mean().item())
    return curve


def tune_project(data, sizes: tuple[int, int], args) -> None:
    """The project model's grid on the validation split: the setting with the lowest best MSE."""
    results = {}
    for reg, lr in itertools.product(PROJECT_GRID["reg"], PROJECT_GRID["lr"]):
        name = f"reg {reg:g}, lr {lr:g}"
        results[name] = run_project(data, sizes, args, name=name, reg=reg, lr=lr).best
    for name, best in sorted(results.items(), key=lambda item: item[1]):
        print(f"{name}: best validation MSE {best:.4f}")


def plot_curves(curves: list[Curve], target: float, mean_mse: float, path: Path) -> None:
    """Held-out MSE against training seconds, one line per path, the target dashed."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for curve in curves:
        ax.plot(curve.seconds, curve.mse, marker="o", markersize=3, label=curve.name)
    ax.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:.3f}")
    ax.set(
        xscale="log",
        ylim=(min(c.best for c in curves) - 0.03, mean_mse + 0.05),
        xlabel="training seconds (log scale; evaluation not counted)",
        ylabel="held-out MSE (lower is better)",
        title="Time to a held-out error: the project's models against Surprise's SVD",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot: {path}")


def print_table(curves: list[Curve], target: float, n_train: int, project: Curve) -> None:
    """One row per path: best MSE and when, seconds to the target, throughput, ratios."""
    print(
        f"\n{'path':<22}{'best MSE':>9}{'at s':>7}{'to target':>10}"
        f"{'ratings/s':>12}{'project is':>11}"
    )
    for c in curves:
        at = c.seconds[c.mse.index(c.best)]
        ratio = project.ratings_per_second(n_train) / c.ratings_per_second(n_train)
        print(
            f"{c.name:<22}{c.best:>9.4f}{at:>7.2f}{c.time_to(target):>9.2f}s"
            f"{c.ratings_per_second(n_train):>12,.0f}{ratio:>10.1f}x"
        )


def load_benchmark_ratings(data: str, seed: int) -> tuple[pl.DataFrame, int, int]:
    """Ratings with mapped ids, and the numbers of users and movies."""
    if data == "synthetic":
        ratings, users, movies = map_ids(make_ratings(**TOP50_SHAPE, seed=seed))
    else:
        ratings, users, movies = load_torch_data(data, top_n_movies=50)
    return ratings, users.height, movies.height


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic", help="'synthetic' or a cached release")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA if present)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs-original", type=int, default=4)
    parser.add_argument("--epochs-06", type=int, default=5)
    parser.add_argument("--epochs-sigmoid", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=PROJECT["batch_size"])
    parser.add_argument("--tune", action="store_true", help="the project's grid on validation")
    parser.add_argument("--plot", type=Path, default=Path(__file__).with_name("time_to_target.png"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    ratings, n_users, n_movies = load_benchmark_ratings(args.data, args.seed)
    train, val, test = split_train_test(ratings, seed=42)
    heldout = val if args.tune else test
    device = select_device(args.device)[0]
    data = (ratings_to_tensors(train, device), ratings_to_tensors(heldout, device))
    sizes, n_train = (n_users, n_movies), train.height
    print(
        f"{args.data}: {n_train:,} train / {heldout.height:,} held-out ratings "
        f"({'validation' if args.tune else 'test'}), {n_users:,} users, {n_movies} movies; "
        f"device {device}; {get_thread_count()} torch thread(s) (DOTLAB_THREADS)"
    )
    if args.tune:
        return tune_project(data, sizes, args)
    curves = [
        run_project(data, sizes, args, batch_size=args.batch_size),
        run_notebook_06(data, sizes, args),
        run_sigmoid_dot(data, sizes, args),
        run_original(data, sizes, args),
        run_svd(train, data[1], 5, args.seed),
        run_svd(train, data[1], 100, args.seed),
    ]
    project, original, svds = curves[0], curves[3], curves[4:]
    target = min(c.best for c in svds)
    svd_time = min(c.time_to(target) for c in svds)
    mean_mse = float(((data[1][2] - data[0][2].mean()) ** 2).mean())
    print_table(curves, target, n_train, project)
    plot_curves(curves, target, mean_mse, args.plot)
    print(f"mean predictor MSE {mean_mse:.4f}; total {time.perf_counter() - start:.0f} s")
    throughput = project.ratings_per_second(n_train) / original.ratings_per_second(n_train)
    print(f"best held-out MSE: project={project.best:.4f} svd={target:.4f}")
    print(
        f"speedup: original={throughput:.1f}x "
        f"time_to_target_vs_svd={svd_time / project.time_to(target):.1f}x"
    )


if __name__ == "__main__":
    main()
