"""Run one training function over every combination of a parameter grid, and summarise the
results over seeds (mean, spread, paired differences)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import polars as pl
from tqdm.auto import tqdm

from utilities.training import is_interactive

T = TypeVar("T")


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last key varying fastest."""
    for key, values in grid.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}.")
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


def run_sweep(
    train: Callable[..., T],
    grid: Mapping[str, Sequence[Any]],
    *,
    description: str = "sweep",
    progress_bar: bool | None = None,
    **fixed: Any,
) -> list[T]:
    """Call `train(**combination, **fixed)` for each combination of `grid`, in order.

    Returns the results in the same order. A progress bar shows when interactive.
    """
    overlap = set(grid) & set(fixed)
    if overlap:
        raise ValueError(f"parameters both swept and fixed: {sorted(overlap)}.")
    combinations = expand_grid(grid)
    show = is_interactive() if progress_bar is None else progress_bar
    return [
        train(**combination, **fixed)
        for combination in tqdm(combinations, desc=description, disable=not show)
    ]


def summarise_seeds(results: pl.DataFrame, by: Sequence[str], value: str) -> pl.DataFrame:
    """Per group of `by`: the mean, standard deviation and number of rows (seeds) of `value`,
    sorted by `by`."""
    summary = results.group_by(by).agg(
        mean=pl.col(value).mean(), sd=pl.col(value).std(), n=pl.len()
    )
    return summary.sort(by)


@dataclass(frozen=True)
class PairedDifference:
    """A mean difference over paired seeds, its standard error and the number of pairs."""

    mean: float
    se: float
    n: int

    @property
    def distinguishable(self) -> bool:
        """True when the mean difference is more than twice its standard error."""
        return abs(self.mean) > 2 * self.se

    def __str__(self) -> str:
        return f"{self.mean:.3g} ± {self.se:.2g} (SE, n={self.n})"


def compare_paired(
    results: pl.DataFrame, value: str, column: str, first: Any, second: Any, on: str = "seed"
) -> PairedDifference:
    """`value` where `column == first` minus where `column == second`, rows paired on `on`
    (filter `results` to one setting first: each side needs one row per value of `on`)."""
    firsts, seconds = (results.filter(pl.col(column) == side) for side in (first, second))
    if firsts.get_column(on).is_duplicated().any() or seconds.get_column(on).is_duplicated().any():
        raise ValueError(f"several rows share one {on!r}: filter the results to one setting.")
    pairs = firsts.join(seconds, on=on, suffix="_second")
    differences = pairs.get_column(value) - pairs.get_column(f"{value}_second")
    if len(differences) < 2:
        raise ValueError(f"need at least two pairs to compare {first!r} with {second!r}.")
    n = len(differences)
    return PairedDifference(differences.mean(), differences.std() / math.sqrt(n), n)
