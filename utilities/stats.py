"""Results over seeds: mean ± sd per group, and paired differences with their t-intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from scipy import stats

CONFIDENCE = 0.95
# A difference is *clear* when its interval clears zero with room to spare: its mean is at least
# this many times the interval's half-width (|t| >= 1.5 t_crit: p < 0.014 at n = 5, p < 0.0034
# over 610 users).
ROOM = 1.5


def summarise_seeds(results: pl.DataFrame, by: Sequence[str], value: str) -> pl.DataFrame:
    """Per group of `by`: the mean, standard deviation and number of rows (seeds) of `value`,
    sorted by `by`."""
    summary = results.group_by(by).agg(
        mean=pl.col(value).mean(), sd=pl.col(value).std(), n=pl.len()
    )
    return summary.sort(by)


@dataclass(frozen=True)
class Difference:
    """A mean paired difference (first minus second): its standard error, pairs and t-interval.

    `str()` gives `+0.012 ± 0.003 [+0.004, +0.020] (n=5)`: mean ± standard error, then the
    two-sided t-interval at `confidence`. The verdict asks whether that interval clears zero.
    """

    mean: float
    se: float
    n: int
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float:
        """Half the width of the t-interval: t(confidence, n - 1) times the standard error."""
        return stats.t.ppf((1 + self.confidence) / 2, self.n - 1) * self.se

    @property
    def interval(self) -> tuple[float, float]:
        """The two-sided t-interval of the mean difference."""
        return self.mean - self.half_width, self.mean + self.half_width

    @property
    def p_value(self) -> float:
        """The two-sided p-value of a paired t-test of a zero mean difference."""
        if self.se == 0:
            return 0.0 if self.mean != 0 else 1.0
        return float(2 * stats.t.sf(abs(self.mean) / self.se, self.n - 1))

    @property
    def distinguishable(self) -> bool:
        """True when the t-interval excludes zero."""
        low, high = self.interval
        return low > 0 or high < 0

    @property
    def clear(self) -> bool:
        """True when the interval clears zero with room to spare (|mean| >= ROOM × half-width),
        so that float noise in the last digits cannot move the verdict."""
        return abs(self.mean) >= ROOM * self.half_width and self.mean != 0

    def verdict(self, first: str = "first", second: str = "second", *, lower: bool = False) -> str:
        """`'<first> higher'`, `'<second> higher'` (`lower`: which is lower) or `'not
        distinguishable'`; a difference that is distinguishable but not clear is not called."""
        if not self.clear:
            return "not distinguishable"
        first_wins = (self.mean < 0) if lower else (self.mean > 0)
        return f"{first if first_wins else second} {'lower' if lower else 'higher'}"

    def bracket(self, digits: int = 4) -> str:
        """The t-interval as text: `[low, high]` with signs, to `digits` decimals."""
        low, high = self.interval
        return f"[{low:+.{digits}f}, {high:+.{digits}f}]"

    def __str__(self) -> str:
        low, high = self.interval
        return f"{self.mean:+.3g} ± {self.se:.2g} [{low:+.3g}, {high:+.3g}] (n={self.n})"


def joint_verdict(differences: Sequence[Difference], first: str, second: str) -> str:
    """The verdict all of `differences` call (e.g. over seeds and over users), else `'not
    distinguishable'`: a claim stands only where every way of checking it makes it."""
    called = {difference.verdict(first, second) for difference in differences}
    return called.pop() if len(called) == 1 else "not distinguishable"


def relate_verdicts(one: str, other: str) -> str:
    """How two verdicts on one pair relate: `'agree'`, `'reversed'` (both called, opposite
    ways) or `'only one called'` (a difference in power, not in direction)."""
    if one == other:
        return "agree"
    return "only one called" if "not distinguishable" in (one, other) else "reversed"


def difference_of(differences: Sequence[float], confidence: float = CONFIDENCE) -> Difference:
    """The mean of paired `differences` with its standard error over them."""
    values = [float(value) for value in differences]
    n = len(values)
    if n < 2:
        raise ValueError(f"need at least two paired differences, got {n}.")
    mean = sum(values) / n
    sd = math.sqrt(sum((value - mean) ** 2 for value in values) / (n - 1))
    return Difference(mean, sd / math.sqrt(n), n, confidence)


def compare_paired(
    results: pl.DataFrame, value: str, column: str, first: Any, second: Any, on: str = "seed"
) -> Difference:
    """`value` where `column == first` minus where `column == second`, rows paired on `on`
    (filter `results` to one setting first: each side needs one row per value of `on`)."""
    firsts, seconds = (results.filter(pl.col(column) == side) for side in (first, second))
    if firsts.get_column(on).is_duplicated().any() or seconds.get_column(on).is_duplicated().any():
        raise ValueError(f"several rows share one {on!r}: filter the results to one setting.")
    pairs = firsts.join(seconds, on=on, suffix="_second")
    if pairs.height < 2:
        raise ValueError(f"need at least two pairs to compare {first!r} with {second!r}.")
    return difference_of(pairs.get_column(value) - pairs.get_column(f"{value}_second"))


def paired_difference(
    results: pl.DataFrame, value: str, first: str, second: str, *, key: str = "model"
) -> Difference:
    """`compare_paired` on the rows of `key`, paired by `seed`."""
    return compare_paired(results, value, key, first, second)


def holm(differences: Sequence[Difference], alpha: float = 1 - CONFIDENCE) -> list[bool]:
    """Which of a family of differences stay significant at `alpha` under Holm's step-down
    correction (the smallest p against alpha / m, the next against alpha / (m - 1), ...)."""
    order = sorted(range(len(differences)), key=lambda i: differences[i].p_value)
    kept = [False] * len(differences)
    for rank, index in enumerate(order):
        if differences[index].p_value > alpha / (len(differences) - rank):
            break
        kept[index] = True
    return kept
