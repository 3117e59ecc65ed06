"""fastbook chapter 8 replicated in plain PyTorch through `utilities.fit`, on the very splits that
fastai's `CollabDataLoaders` draws, then every difference from fastai's recipe made one at a time.

    python benchmarks/fastbook_replica.py [--data-dir FOLDER] [--seeds 0 1 2 3 4]
        [--arms ARM ...] [--anchor-csv fastai.csv] [--csv replica.csv]

The split is fastai's `RandomSplitter(0.2, seed)`: `torch.manual_seed(seed)`, `randperm` of the
rows of `u.data` joined with `u.item`'s titles (items by title), the first 20% for validation.
The replica is the chapter's `DotProductBias` (50 factors, `sigmoid_range(0, 5.5)`) with
fastai's defaults written out: embeddings drawn N(0, 1) folded at ±2 and scaled by 0.01, Adam with
β = (0.9, 0.99), ε = 1e-5 and weight decay 0.1 decoupled (fastai's `true_wd`: AdamW), one cycle
over 5 epochs peaking at 5e-3 (25% warm-up from lr/25, cosine down to lr/1e5, β₁ cycled 0.95 →
0.85 → 0.95), batches of 64. Each other row changes one thing. `--anchor-csv` takes the per-seed
table `benchmarks/fastbook_anchor.py --csv` wrote (fastai itself on the same splits) and adds,
paired by seed, the replica minus fastai with the book's loader, and the replica drawing rows with
replacement minus fastai as it is today. MLflow records every fit (experiment `fastbook-replica`).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import polars as pl
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from utilities import difference_of, fit, seed_everything, sigmoid_range  # noqa: E402

LR, WD, EPOCHS, BATCH = 5e-3, 0.1, 5, 64
Split = tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]


class DotProductBias(nn.Module):
    """The chapter's model: user·movie factors plus a bias each, through `sigmoid_range`."""

    def __init__(self, n_users: int, n_movies: int, init: str, n_factors: int = 50) -> None:
        super().__init__()
        self.user_factors, self.user_bias = (
            nn.Embedding(n_users, n_factors),
            nn.Embedding(n_users, 1),
        )
        self.movie_factors = nn.Embedding(n_movies, n_factors)
        self.movie_bias = nn.Embedding(n_movies, 1)
        if init == "fastai":  # fastai's `trunc_normal_`: N(0, 1) folded at ±2, times 0.01
            for table in (self.user_factors, self.user_bias, self.movie_factors, self.movie_bias):
                with torch.no_grad():
                    table.weight.normal_().fmod_(2).mul_(0.01)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(users) * self.movie_factors(movies)).sum(1)
        biases = self.user_bias(users).squeeze(1) + self.movie_bias(movies).squeeze(1)
        return sigmoid_range(dot + biases, 0.0, 5.5)


def fastai_adam(
    params, coupled: bool = False, torch_defaults: bool = False, weight_decay: float = WD
):
    """fastai's Adam: β₂ 0.99, ε 1e-5, decoupled weight decay (or torch's betas/eps, or L2)."""
    betas, eps = ((0.9, 0.999), 1e-8) if torch_defaults else ((0.9, 0.99), 1e-5)
    kind = torch.optim.Adam if coupled else torch.optim.AdamW
    return kind(params, lr=LR, betas=betas, eps=eps, weight_decay=weight_decay)


def one_cycle(optimizer, total_steps: int, torch_defaults: bool = False):
    """fastai's `fit_one_cycle` schedule as torch's `OneCycleLR` (or torch's own defaults)."""
    if torch_defaults:
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, LR, total_steps=total_steps)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, LR, total_steps=total_steps, pct_start=0.25, final_div_factor=1e5 / 25
    )


def named(function, name: str, **bound):
    """`function` with `bound` arguments, called `name` (MLflow records the name)."""
    partial = functools.partial(function, **bound)
    partial.__name__ = name
    return partial


@dataclass(frozen=True)
class Arm:
    """What one row of the table trains: the replica's settings unless it says otherwise."""

    init: str = "fastai"
    optimizer: Callable = fastai_adam
    schedule: Callable = one_cycle
    keep: float = 1.0  # the share of the training rows kept
    replacement: bool = False  # each epoch's rows drawn with replacement


TORCH_ADAM = named(fastai_adam, "adamw_torch_defaults", torch_defaults=True)
TORCH_ONE_CYCLE = named(one_cycle, "onecycle_torch_defaults", torch_defaults=True)
ARMS = {
    "replica (fastai's settings)": Arm(),
    "torch's Adam betas and eps": Arm(optimizer=TORCH_ADAM),
    "torch's OneCycleLR defaults": Arm(schedule=TORCH_ONE_CYCLE),
    "torch's N(0, 1) embeddings": Arm(init="torch"),
    "L2 in the gradient (Adam)": Arm(optimizer=named(fastai_adam, "adam_l2", coupled=True)),
    "trained on 70% of ratings": Arm(keep=7 / 8),
    "notebook 07's recipe (torch defaults)": Arm(optimizer=TORCH_ADAM, schedule=TORCH_ONE_CYCLE),
    "rows drawn with replacement (fastai today)": Arm(replacement=True),
}


def load_ratings(folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The chapter's frame (`u.data` joined with `u.item`'s titles) as user, title, rating."""
    ratings = pd.read_csv(
        folder / "u.data", sep="\t", header=None, names=["user", "movie", "rating", "timestamp"]
    )
    movies = pd.read_csv(
        folder / "u.item", sep="|", encoding="latin-1", usecols=(0, 1), names=("movie", "title")
    )
    frame = ratings.merge(movies)  # fastbook's join: its row order decides fastai's split
    users = torch.as_tensor(pd.factorize(frame["user"], sort=True)[0])
    titles = torch.as_tensor(pd.factorize(frame["title"], sort=True)[0])
    return users, titles, torch.as_tensor(frame["rating"].to_numpy(), dtype=torch.float32)


class WithReplacement:
    """Each epoch as many rows as there are, drawn with replacement, in batches: what fastai's
    `TabWeightedDL` (`CollabDataLoaders`' default in fastai 2.8.12) does with equal
    weights."""

    shuffle = "with replacement"

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int) -> None:
        self.tensors, self.batch_size = tensors, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.tensors[0]) // self.batch_size  # fastai drops the last partial batch

    def __iter__(self):
        rows = torch.randint(
            len(self.tensors[0]), (len(self) * self.batch_size,), generator=self.generator
        )
        for batch in rows.split(self.batch_size):
            yield tuple(t[batch] for t in self.tensors)


def fastai_split(data: tuple[torch.Tensor, ...], seed: int, keep: float) -> Split:
    """fastai's `RandomSplitter(valid_pct=0.2, seed=seed)`; `keep` < 1 drops training rows."""
    torch.manual_seed(seed)
    order = torch.randperm(len(data[0]))
    cut = int(0.2 * len(order))
    train_rows = order[cut:]
    if keep < 1:
        kept = torch.randperm(len(train_rows), generator=torch.Generator().manual_seed(seed))
        train_rows = train_rows[kept[: round(keep * len(train_rows))]]
    return tuple(t[train_rows] for t in data), tuple(t[order[:cut]] for t in data)


def train_arm(arm: str, data: tuple[torch.Tensor, ...], seed: int) -> float:
    """One arm at one seed: the validation MSE after the fifth epoch."""
    settings = ARMS[arm]
    train, valid = fastai_split(data, seed, settings.keep)
    if settings.replacement:
        train = WithReplacement(train, BATCH, seed)
    seed_everything(seed)
    model = DotProductBias(int(data[0].max()) + 1, int(data[1].max()) + 1, settings.init)
    params = {"arm": arm, "init": settings.init, "keep": settings.keep}
    result = fit(
        model, train, valid, epochs=EPOCHS, lr=LR, weight_decay=WD, batch_size=BATCH, seed=seed,
        optimizer=settings.optimizer, schedule=settings.schedule, experiment="fastbook-replica",
        run_name=f"{arm} · seed {seed}", params=params,
    )  # fmt: skip
    return result.metrics["val_loss"]


# fastbook_anchor.py's rows, and the arm of the replica that draws its batches the same way
ANCHOR_PAIRS = {
    "DotProductBias (book's loader)": "replica (fastai's settings)",
    "DotProductBias": "rows drawn with replacement (fastai today)",
}


def summarise(results: pl.DataFrame, anchor: pl.DataFrame | None) -> pl.DataFrame:
    """Per arm: mean and sd of the MSE, RMSE, and the paired difference from the replica; per
    fastai run given, the paired difference of its replica arm from it."""
    replica = results.filter(pl.col("arm") == next(iter(ARMS)))
    rows = []
    for arm in results.get_column("arm").unique(maintain_order=True):  # the arms run
        mse = results.filter(pl.col("arm") == arm).get_column("mse")
        row = {"arm": arm, "mse": mse.mean(), "sd": mse.std(), "rmse": mse.mean() ** 0.5}
        runs = results.filter(pl.col("arm") == arm).join(replica, on="seed", suffix="_replica")
        if arm != next(iter(ARMS)) and runs.height > 1:
            row["difference"] = f"− replica: {difference_of(runs['mse'] - runs['mse_replica'])}"
        rows.append(row)
    for fastai_model, arm in ANCHOR_PAIRS.items():
        if anchor is None or anchor.filter(pl.col("model") == fastai_model).height < 2:
            continue
        fastai = anchor.filter(pl.col("model") == fastai_model).select("seed", fastai="mse")
        paired = results.filter(pl.col("arm") == arm).join(fastai, on="seed")
        row = {"arm": f"fastai: {fastai_model}", "mse": paired["fastai"].mean()}
        row |= {"sd": paired["fastai"].std(), "rmse": paired["fastai"].mean() ** 0.5}
        difference = difference_of(paired["mse"] - paired["fastai"])
        rows.append(row | {"difference": f"{arm} − it: {difference}"})
    return pl.DataFrame(rows)


def main() -> None:
    """Train every arm at every seed and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("DOTLAB_ML100K_COPY"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--anchor-csv", type=Path, help="fastbook_anchor.py's --csv table")
    parser.add_argument("--csv", type=Path, help="also write the per-seed table here")
    args = parser.parse_args()
    if not args.data_dir or not (Path(args.data_dir) / "u.data").is_file():
        raise SystemExit(
            "error: pass --data-dir FOLDER (with u.data and u.item) or set DOTLAB_ML100K_COPY"
        )
    if args.anchor_csv and not args.anchor_csv.is_file():
        raise SystemExit(f"error: --anchor-csv {args.anchor_csv}: no such file")
    data = load_ratings(Path(args.data_dir))
    rows = []
    for arm in args.arms:
        for seed in args.seeds:
            rows.append({"arm": arm, "seed": seed, "mse": train_arm(arm, data, seed)})
            print(f"{arm} seed {seed}: MSE {rows[-1]['mse']:.4f}", file=sys.stderr)
    if args.csv:
        pl.DataFrame(rows).write_csv(args.csv)
    anchor = None
    if args.anchor_csv:
        anchor = pl.read_csv(args.anchor_csv).filter(pl.col("seed").is_in(args.seeds))
    print(
        f"# {date.today()}: torch {torch.__version__}, Python {platform.python_version()}, "
        f"seeds {args.seeds}"
    )
    with pl.Config(tbl_rows=-1, tbl_width_chars=200, fmt_str_lengths=80, float_precision=4):
        print(summarise(pl.DataFrame(rows), anchor))


if __name__ == "__main__":
    main()
