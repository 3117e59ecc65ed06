"""The project's rating models on Surprise's benchmark protocol: ml-100k, GroupLens' u1–u5 folds,
each model tuned with the same budget on a validation split carved from the training fold, beside
Surprise's `SVD` tuned with that budget; the best model's RMSE against the 0.900 goal.

    python benchmarks/ml100k_folds.py [--data-dir FOLDER] [--folds 1 2 3 4 5]

Fold i tests on the i-th block of 20,000 lines of `u.data` (as the archive's `mku.sh` builds
u1–u5); a seeded 10% of its other 80,000 ratings is the validation split, the rest trains. Every
model starts from four settings (a 2 × 2 grid), each trained on every fold; the setting with the
lowest validation MSE averaged over the folds is chosen (ties within 1e-4 go to the first tried);
where a chosen value is the smallest or largest tried, that axis gets one more value outward and
the new settings are trained (twice at most, the same rule for every model); the chosen models,
already trained, read their test fold once. The neural models follow fastbook's
recipe as `benchmarks/fastbook_replica.py` reproduces it (AdamW β (0.9, 0.99), ε 1e-5, one cycle
peaking at 5e-3, batches of 64). Intervals are t-intervals over the folds (the folds share
training ratings, so they are optimistic). MLflow records every fit (experiment `ml100k-folds`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl
import surprise
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from fastbook_replica import fastai_adam, named, one_cycle  # noqa: E402

from utilities import (  # noqa: E402
    CollabNN,
    DotProductBias,
    difference_of,
    evaluate,
    fit,
    fit_surprise,
    predict_surprise,
    seed_everything,
)
from utilities.experiments import outward  # noqa: E402

FOLD_SIZE, N_USERS, N_ITEMS, GOAL_RMSE = 20_000, 943, 1682, 0.900
Ratings = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
NEURAL_GRID = {"weight_decay": [0.1, 0.3], "epochs": [5, 10]}
SVD_GRID = {"reg_all": [0.02, 0.1], "n_epochs": [20, 50]}  # n_factors 100, lr_all 0.005: defaults


class BiasesOnly(nn.Module):
    """r̂ = μ + b_u + b_i: the global mean and a bias per user and per movie."""

    def __init__(self, n_users: int, n_items: int, mean: float) -> None:
        super().__init__()
        self.user_bias, self.item_bias = nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)
        for table in (self.user_bias, self.item_bias):
            nn.init.zeros_(table.weight)
        self.register_buffer("mean", torch.tensor(mean))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.mean + self.user_bias(users).squeeze(1) + self.item_bias(items).squeeze(1)


class MFWithBiases(BiasesOnly):
    """r̂ = μ + b_u + b_i + ⟨p_u, q_i⟩: Surprise's SVD model, trained by AdamW here."""

    def __init__(self, n_users: int, n_items: int, mean: float, n_factors: int = 50) -> None:
        super().__init__(n_users, n_items, mean)
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        for table in (self.user_factors, self.item_factors):
            nn.init.normal_(table.weight, std=0.01)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(users) * self.item_factors(items)).sum(1)
        return super().forward(users, items) + dot


MODELS: dict[str, Callable[[float], nn.Module]] = {  # name -> model, given the mean rating
    "biases only": lambda mean: BiasesOnly(N_USERS, N_ITEMS, mean),
    "MF with biases": lambda mean: MFWithBiases(N_USERS, N_ITEMS, mean),
    "DotProductBias": lambda mean: DotProductBias(N_USERS, N_ITEMS, 50),
    "CollabNN": lambda mean: CollabNN(N_USERS, N_ITEMS, 50, 100),
}


def read_folds(u_data: Path) -> list[tuple[Ratings, Ratings, Ratings]]:
    """Per fold: training, validation (a seeded 10% of the training fold) and test ratings."""
    frame = pl.read_csv(
        u_data, separator="\t", has_header=False, new_columns=["user", "item", "rating", "t"]
    )
    tensors = [torch.as_tensor(frame[c].to_numpy()) - 1 for c in ("user", "item")]
    data = (*tensors, torch.as_tensor(frame["rating"].to_numpy(), dtype=torch.float32))
    folds = []
    for fold in range(5):
        test = torch.arange(fold * FOLD_SIZE, (fold + 1) * FOLD_SIZE)
        rest = torch.cat([torch.arange(0, fold * FOLD_SIZE), torch.arange(test[-1] + 1, 100_000)])
        order = rest[torch.randperm(len(rest), generator=torch.Generator().manual_seed(fold))]
        val, train = order[: len(order) // 10], order[len(order) // 10 :]
        folds.append(tuple(tuple(t[rows] for t in data) for rows in (train, val, test)))
    return folds


def train_neural(name: str, fold: int, splits, setting: dict) -> dict[str, float]:
    """One neural model at one setting on one fold: validation and test MSE."""
    train, val, test = splits
    seed_everything(fold)
    model = MODELS[name](train[2].mean().item())
    run = f"{name} · fold u{fold + 1} · " + " · ".join(f"{k} {v}" for k, v in setting.items())
    adam = named(fastai_adam, "adamw_fastai", weight_decay=setting["weight_decay"])
    result = fit(
        model, train, val, lr=5e-3, batch_size=64, seed=fold, optimizer=adam,
        schedule=one_cycle, experiment="ml100k-folds", run_name=run, **setting,
    )  # fmt: skip
    return {"val_mse": result.metrics["val_loss"], "test_mse": evaluate(result.model, test)}


def train_svd(fold: int, splits, setting: dict) -> dict[str, float]:
    """Surprise's SVD at one setting on one fold: validation and test MSE."""
    train, val, test = splits
    algorithm = fit_surprise(surprise.SVD(random_state=fold, **setting), train)
    mse = lambda part: ((predict_surprise(algorithm, *part[:2]) - part[2]) ** 2).mean().item()  # noqa: E731
    return {"val_mse": mse(val), "test_mse": mse(test)}


def grid(settings: dict[str, list]) -> list[dict]:
    """Every combination of the settings, in the grid's order."""
    combinations = itertools.product(*settings.values())
    return [dict(zip(settings, values, strict=True)) for values in combinations]


def train_setting(name: str, folds: list, fold_ids: list[int], setting: dict) -> list[dict]:
    """One model at one setting on every fold: its rows."""
    rows = []
    for fold in fold_ids:
        if name.startswith("SVD"):
            scores = train_svd(fold, folds[fold], setting)
        else:
            scores = train_neural(name, fold, folds[fold], setting)
        rows.append({"model": name, "setting": str(setting), "fold": fold} | scores)
        print(f"{name} {setting} u{fold + 1}: val MSE {scores['val_mse']:.4f}", file=sys.stderr)
    return rows


def tune_model(name: str, folds: list, fold_ids: list[int], rounds: int = 2) -> pl.DataFrame:
    """The model's 2 × 2 grid on every fold, then, up to `rounds` times, each setting whose
    chosen value is the smallest or largest tried extended one step outward (the same rule for
    every model): every row tried."""
    axes = {
        key: list(values) for key, values in (SVD_GRID if "SVD" in name else NEURAL_GRID).items()
    }
    rows, tried = [], {}
    for _ in range(rounds + 1):
        for setting in grid(axes):
            if str(setting) not in tried:
                tried[str(setting)] = setting
                rows += train_setting(name, folds, fold_ids, setting)
        chosen = tried[choose(pl.DataFrame(rows))["setting"][0]]
        wider = {key: outward(values, chosen[key]) for key, values in axes.items()}
        if all(value is None for value in wider.values()):
            break
        for key, value in wider.items():
            if value is not None:
                axes[key].append(value)
    return pl.DataFrame(rows)


def run_all(folds: list, fold_ids: list[int]) -> pl.DataFrame:
    """Every model tuned on every fold: one row per model, setting and fold."""
    return pl.concat([tune_model(name, folds, fold_ids) for name in [*MODELS, "SVD (Surprise)"]])


def choose(runs: pl.DataFrame) -> pl.DataFrame:
    """Per model, the rows of the setting with the lowest mean validation MSE over the folds
    (settings within 1e-4 of it count as tied: the first tried wins)."""
    means = runs.group_by("model", "setting", maintain_order=True).agg(pl.col("val_mse").mean())
    best = means.group_by("model").agg(pl.col("val_mse").min().alias("best"))
    near = means.join(best, on="model", maintain_order="left")
    near = near.filter(pl.col("val_mse") <= pl.col("best") + 1e-4)
    chosen = near.group_by("model", maintain_order=True).agg(pl.col("setting").first())
    runs = runs.join(chosen, on=["model", "setting"], maintain_order="left")
    return runs.with_columns(test_rmse=pl.col("test_mse").sqrt())


def summarise(chosen: pl.DataFrame) -> pl.DataFrame:
    """Per model: chosen setting, test RMSE over folds with its t-interval, difference from SVD."""
    svd = chosen.filter(pl.col("model") == "SVD (Surprise)").select("fold", svd="test_rmse")
    rows = []
    for name, runs in chosen.join(svd, on="fold").group_by("model", maintain_order=True):
        rmse = runs.get_column("test_rmse")
        low, high = difference_of(rmse).interval
        row = {"model": name[0], "setting": runs["setting"][0], "test_rmse": rmse.mean()}
        row |= {"interval": f"[{low:.3f}, {high:.3f}]", "folds": rmse.len()}
        row["minus SVD"] = (
            "" if name[0].startswith("SVD") else str(difference_of(rmse - runs["svd"]))
        )
        rows.append(row)
    return pl.DataFrame(rows).sort("test_rmse")


def main() -> None:
    """Run the grid on the folds and print the table and the verdict on the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("DOTLAB_ML100K_COPY"))
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    args = parser.parse_args()
    if not args.data_dir or not (Path(args.data_dir) / "u.data").is_file():
        raise SystemExit("error: pass --data-dir FOLDER (with u.data) or set DOTLAB_ML100K_COPY")
    folds = read_folds(Path(args.data_dir) / "u.data")
    runs = run_all(folds, [fold - 1 for fold in args.folds])
    tried = runs.group_by("model").agg(settings=pl.col("setting").n_unique())
    table = summarise(choose(runs)).join(tried, on="model", maintain_order="left")
    print(f"# {date.today()}: torch {torch.__version__}, surprise {surprise.__version__}, "
          f"Python {platform.python_version()}; folds u{args.folds}")  # fmt: skip
    with pl.Config(tbl_rows=-1, tbl_width_chars=200, fmt_str_lengths=80, float_precision=4):
        print(table)
    best = table.filter(~pl.col("model").str.starts_with("SVD")).row(0, named=True)
    print(f"best project model: {best['model']}, test RMSE {best['test_rmse']:.4f} "
          f"{best['interval']} against the goal {GOAL_RMSE}")  # fmt: skip


if __name__ == "__main__":
    main()
