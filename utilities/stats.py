"""Results over seeds: mean ± sd per group, and paired differences judged against their spread."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl


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


def paired_difference(
    results: pl.DataFrame, value: str, first: str, second: str, *, key: str = "model"
) -> dict[str, float]:
    """`compare_paired` as a dict (`mean`, `se`, `n`), rows of `key` paired by `seed`."""
    difference = compare_paired(results, value, key, first, second)
    return {"mean": difference.mean, "se": difference.se, "n": difference.n}


def is_distinguishable(difference: dict[str, float]) -> bool:
    """True when the mean paired difference is more than twice its standard error."""
    return abs(difference["mean"]) > 2 * difference["se"]


def format_difference(difference: dict[str, float], digits: int = 3) -> str:
    """`-0.012 ± 0.003 (n=5)`: mean paired difference ± its standard error."""
    return f"{difference['mean']:+.{digits}f} ± {difference['se']:.{digits}f} (n={difference['n']})"
