"""Surprise's published ml-100k table, reproduced with Surprise's own `cross_validate` on
GroupLens' u1–u5 folds (rebuilt from `u.data` as the archive's `mku.sh` builds them).

    python benchmarks/surprise_anchor.py [--data-dir FOLDER] [--seeds 0 1 2]
        [--algorithms BaselineOnly SVD SVDpp] [--csv table.csv]

FOLDER holds GroupLens' `u.data` (default: `DOTLAB_ML100K_COPY`, else the project's cache of
ml-100k). `mku.sh` makes fold i's test set the i-th block of 20,000 lines of `u.data` and its
training set the other 80,000 lines (each then sorted by user and item, which changes nothing
here). Prints, per algorithm at its defaults, the test RMSE of every fold and seed, their mean
and sd, and Surprise's published number (its own folds are random 5-fold splits, not u1–u5);
`--csv` also writes that table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import polars as pl
import surprise
from surprise import SVD, BaselineOnly, Dataset, Reader, SVDpp
from surprise.model_selection import PredefinedKFold, cross_validate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utilities.data import get_dataset_dir  # noqa: E402

FOLD_SIZE, N_FOLDS = 20_000, 5
# surprise.readthedocs.io, "Benchmarks" on ml-100k (5-fold cross-validation, random folds).
PUBLISHED_RMSE = {"SVD": 0.934, "SVDpp": 0.92, "BaselineOnly": 0.944}  # SVD++: two places
ALGORITHMS = {"BaselineOnly": BaselineOnly, "SVD": SVD, "SVDpp": SVDpp}


def find_u_data(data_dir: str | None) -> Path:
    """`u.data` in `data_dir`, else in `DOTLAB_ML100K_COPY`, else in the project's cache."""
    folder = data_dir or os.environ.get("DOTLAB_ML100K_COPY")
    path = Path(folder) / "u.data" if folder else get_dataset_dir("ml-100k") / "u.data"
    if not path.is_file():
        raise SystemExit(f"error: no u.data in {path.parent}; pass --data-dir FOLDER")
    return path


def write_folds(u_data: Path, folder: Path) -> list[tuple[str, str]]:
    """Files u1.base/u1.test … u5.base/u5.test as `mku.sh` writes them; their paths."""
    lines = u_data.read_text().splitlines(keepends=True)
    if len(lines) != FOLD_SIZE * N_FOLDS:
        raise SystemExit(f"error: {u_data} has {len(lines):,} lines, expected 100,000")
    by_user_item = lambda rows: sorted(rows, key=lambda r: tuple(map(int, r.split("\t")[:2])))  # noqa: E731
    paths = []
    for fold in range(1, N_FOLDS + 1):
        start, end = (fold - 1) * FOLD_SIZE, fold * FOLD_SIZE
        base, test = folder / f"u{fold}.base", folder / f"u{fold}.test"
        base.write_text("".join(by_user_item(lines[:start] + lines[end:])))
        test.write_text("".join(by_user_item(lines[start:end])))
        paths.append((str(base), str(test)))
    return paths


def run_algorithm(name: str, folds: Dataset, seed: int) -> list[float]:
    """One algorithm at its defaults, seeded, through Surprise's `cross_validate`: RMSE per fold."""
    algorithm = (
        ALGORITHMS[name](random_state=seed)
        if name != "BaselineOnly"
        else BaselineOnly(verbose=False)
    )
    results = cross_validate(algorithm, folds, ["rmse"], cv=PredefinedKFold(), verbose=False)
    return list(results["test_rmse"])


def main() -> None:
    """Rebuild the folds, run every algorithm at every seed, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with GroupLens' u.data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    add = parser.add_argument
    add("--algorithms", nargs="+", choices=list(ALGORITHMS), default=list(ALGORITHMS))
    parser.add_argument("--csv", type=Path, help="also write the table here")
    args = parser.parse_args()
    u_data = find_u_data(args.data_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dotlab-u-folds-") as folder:
        reader = Reader(line_format="user item rating timestamp", sep="\t")
        folds = Dataset.load_from_folds(write_folds(u_data, Path(folder)), reader=reader)
        for name in args.algorithms:
            for seed in args.seeds if name != "BaselineOnly" else args.seeds[:1]:
                start = time.perf_counter()
                rmses = run_algorithm(name, folds, seed)
                seconds = time.perf_counter() - start
                rows += [
                    {"algorithm": name, "seed": seed, "fold": f"u{i + 1}", "rmse": r}
                    for i, r in enumerate(rmses)
                ]
                print(
                    f"{name} seed {seed}: {sum(rmses) / len(rmses):.4f} ({seconds:.0f} s)",
                    file=sys.stderr,
                )
    table = (
        pl.DataFrame(rows)
        .group_by("algorithm", maintain_order=True)
        .agg(
            u1=pl.col("rmse").filter(pl.col("fold") == "u1").mean(),
            mean=pl.col("rmse").mean(),
            sd_over_folds=pl.col("rmse").filter(pl.col("seed") == pl.col("seed").first()).std(),
            runs=pl.len(),
        )
        .with_columns(published=pl.col("algorithm").replace_strict(PUBLISHED_RMSE))
        .with_columns(pl.exclude("algorithm", "runs").round(4))
    )
    print(f"# {date.today()}, surprise {surprise.__version__}, Python {platform.python_version()}")
    print(f"# u1–u5 folds rebuilt from {u_data.name}; seeds {args.seeds}")
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(table)
    if args.csv:
        table.write_csv(args.csv)


if __name__ == "__main__":
    main()
