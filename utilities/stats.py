"""Results over seeds: mean ± sd per group, and paired differences judged against their spread."""

from __future__ import annotations

import math

import polars as pl


def summarise_seeds(results: pl.DataFrame, by: str | list[str], value: str) -> pl.DataFrame:
    """Per group of `by`: mean, standard deviation and number of seeds of `value`."""
    return results.group_by(by, maintain_order=True).agg(
        mean=pl.col(value).mean(),
        sd=pl.col(value).std().fill_null(0.0),
        n=pl.len(),
    )


def paired_difference(
    results: pl.DataFrame, value: str, first: str, second: str, *, key: str = "model"
) -> dict[str, float]:
    """Mean and standard error over seeds of `value` for `first` minus `value` for `second`,
    pairing rows by `seed`."""
    rows = {
        name: results.filter(pl.col(key) == name).select("seed", value) for name in (first, second)
    }
    paired = rows[first].join(rows[second], on="seed", suffix="_second")
    if paired.is_empty():
        raise ValueError(f"no seed has both {first!r} and {second!r} in column {key!r}.")
    differences = paired.get_column(value) - paired.get_column(f"{value}_second")
    n = len(differences)
    sd = differences.std() if n > 1 else math.inf
    return {"mean": differences.mean(), "se": sd / math.sqrt(n), "n": n}


def is_distinguishable(difference: dict[str, float]) -> bool:
    """True when the mean paired difference is more than twice its standard error."""
    return abs(difference["mean"]) > 2 * difference["se"]


def format_difference(difference: dict[str, float], digits: int = 3) -> str:
    """`-0.012 ± 0.003 (n=5)`: mean paired difference ± its standard error."""
    return f"{difference['mean']:+.{digits}f} ± {difference['se']:.{digits}f} (n={difference['n']})"
