"""fastbook chapter 8's anchor on ml-100k, run with fastai itself: the chapter's `DotProductBias`
and `collab_learner(n_factors=50, y_range=(0, 5.5))`, items by title, `CollabDataLoaders`' 80/20
random split with `bs=64`, `fit_one_cycle(5, 5e-3, wd=0.1)`, over several split seeds.

    python -m venv .venv-anchors && .venv-anchors/bin/pip install -e ".[anchors]"
    .venv-anchors/bin/python benchmarks/fastbook_anchor.py [--data-dir FOLDER] [--seeds 0 1 2 3 4]
        [--csv fastai.csv]

fastai pins its own torch, so it lives in an environment of its own (the `anchors` extra, never
installed by CI); this script imports nothing from `utilities`. FOLDER holds GroupLens' `u.data`
and `u.item` (default: `DOTLAB_ML100K_COPY`). Prints every seed's validation MSE and RMSE after
the fifth epoch, their mean and sd, and the book's published number.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import fastai
import fastai.callback.progress  # noqa: F401  (adds `Learner.no_bar`)
import pandas as pd
import torch
from fastai.collab import CollabDataLoaders, collab_learner
from fastai.layers import Embedding
from fastai.layers import sigmoid_range as fastai_sigmoid_range
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from fastai.tabular.core import TabDataLoader
from fastai.torch_core import Module, set_seed

MODELS = ("DotProductBias", "DotProductBias (book's loader)", "collab_learner")
PUBLISHED_MSE = 0.821  # fastbook ch. 8, `DotProductBias` with wd=0.1, after 5 epochs (0.905 RMSE)


class DotProductBias(Module):
    """The chapter's model: user·movie factors plus a bias each, through `sigmoid_range`."""

    def __init__(self, n_users: int, n_movies: int, n_factors: int, y_range=(0, 5.5)):
        self.user_factors = Embedding(n_users, n_factors)
        self.user_bias = Embedding(n_users, 1)
        self.movie_factors = Embedding(n_movies, n_factors)
        self.movie_bias = Embedding(n_movies, 1)
        self.y_range = y_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        users = self.user_factors(x[:, 0])
        movies = self.movie_factors(x[:, 1])
        res = (users * movies).sum(dim=1, keepdim=True)
        res += self.user_bias(x[:, 0]) + self.movie_bias(x[:, 1])
        return fastai_sigmoid_range(res, *self.y_range)


def load_ratings(folder: Path) -> pd.DataFrame:
    """The chapter's frame: `u.data` joined with the titles of `u.item`."""
    ratings = pd.read_csv(
        folder / "u.data", sep="\t", header=None, names=["user", "movie", "rating", "timestamp"]
    )
    movies = pd.read_csv(
        folder / "u.item",
        sep="|",
        encoding="latin-1",
        usecols=(0, 1),
        names=("movie", "title"),
        header=None,
    )
    return ratings.merge(movies)


def train(model_name: str, ratings: pd.DataFrame, seed: int) -> float:
    """One model on the split of `seed`, as the chapter trains it: its final validation MSE.

    In fastai 2.8.12 `TabularPandas`, and so `CollabDataLoaders`, batches through
    `TabWeightedDL` (added by fastai's PR #3995, March 2024), which draws each epoch's rows
    *with replacement* (about 63% of the distinct training ratings an epoch); "(book's loader)"
    passes `dl_type=TabDataLoader`, the shuffle without replacement the book was run with."""
    set_seed(seed, reproducible=True)
    loader = {"dl_type": TabDataLoader} if model_name.endswith("(book's loader)") else {}
    dls = CollabDataLoaders.from_df(ratings, item_name="title", bs=64, seed=seed, **loader)
    if model_name.startswith("DotProductBias"):
        n_users, n_movies = len(dls.classes["user"]), len(dls.classes["title"])
        learn = Learner(dls, DotProductBias(n_users, n_movies, 50), loss_func=MSELossFlat())
    else:
        learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(5, 5e-3, wd=0.1)
        return float(learn.validate()[0])


def main() -> None:
    """Train both models at every seed and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("DOTLAB_ML100K_COPY"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--csv", type=Path, help="also write the per-seed table here")
    args = parser.parse_args()
    if not args.data_dir or not (Path(args.data_dir) / "u.data").is_file():
        raise SystemExit(
            "error: pass --data-dir FOLDER (with u.data and u.item) or set DOTLAB_ML100K_COPY"
        )
    torch.set_num_threads(1)
    ratings = load_ratings(Path(args.data_dir))
    rows = []
    for model_name in MODELS:
        for seed in args.seeds:
            start = time.perf_counter()
            mse = train(model_name, ratings, seed)
            rows.append({"model": model_name, "seed": seed, "mse": mse, "rmse": mse**0.5})
            print(
                f"{model_name} seed {seed}: MSE {mse:.4f} ({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
            )
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(
        f"# {date.today()}: fastai {fastai.__version__}, torch {torch.__version__}, "
        f"pandas {pd.__version__}, "
        f"Python {platform.python_version()}"
    )
    print(table.to_string(index=False, float_format="%.4f"))
    summary = table.groupby("model", sort=False)[["mse", "rmse"]].agg(["mean", "std"])
    print(summary.to_string(float_format="%.4f"))
    print(f"published (DotProductBias, wd 0.1): MSE {PUBLISHED_MSE}, RMSE {PUBLISHED_MSE**0.5:.3f}")


if __name__ == "__main__":
    main()
