"""Tuning on validation over seeds: every setting of a grid trained at every seed, and one
choice that float noise cannot flip (ties within two standard errors go to the grid's order)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from tqdm.auto import tqdm

from utilities.sweep import expand_grid
from utilities.training import is_interactive

# Settings whose mean is within this many standard errors (of the best's mean) of the best are
# tied: about what validation over these seeds cannot tell apart at 95%.
TIE_SES = 2.0


@dataclass(frozen=True)
class Tuned:
    """What `tune_over_seeds` returns: every trial's row, the setting chosen and, per seed, the
    rows and whatever `train_one` returned with them (e.g. the `Fit`) for that setting."""

    trials: pl.DataFrame
    chosen: dict[str, Any]
    fits: dict[int, Any]
    edges: list[str]

    @property
    def results(self) -> pl.DataFrame:
        """The chosen setting's rows, one per seed."""
        chosen = [pl.col(key) == value for key, value in self.chosen.items()]
        return self.trials.filter(*chosen)


def summarise_settings(
    trials: pl.DataFrame, keys: Sequence[str], select: str, *, maximise: bool
) -> pl.DataFrame:
    """Per setting, in the order first tried: the mean of `select` over seeds, its standard
    error, and whether it ties with the best (within `TIE_SES` of the best's standard errors)."""
    summary = trials.group_by(keys, maintain_order=True).agg(
        mean=pl.col(select).mean(), se=pl.col(select).std() / pl.len().sqrt(), seeds=pl.len()
    )
    best = summary.row(
        summary.get_column("mean").arg_max() if maximise else summary.get_column("mean").arg_min(),
        named=True,
    )
    gap = (pl.col("mean") - best["mean"]) * (1 if maximise else -1)
    return summary.with_columns(tied=gap >= -TIE_SES * best["se"])


def choose_setting(
    trials: pl.DataFrame, keys: Sequence[str], select: str, *, maximise: bool
) -> dict[str, Any]:
    """The first setting (in the order tried) whose mean `select` over seeds is within two
    standard errors of the best mean: noise far below that error cannot change the choice."""
    summary = summarise_settings(trials, keys, select, maximise=maximise)
    return summary.filter("tied").select(keys).row(0, named=True)


def grid_edges(chosen: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> list[str]:
    """The keys of numeric grids whose chosen value is the smallest or largest tried."""
    numeric = {k: v for k, v in grid.items() if all(isinstance(x, int | float) for x in v)}
    return [k for k, v in numeric.items() if len(v) > 1 and chosen[k] in (min(v), max(v))]


def tune_over_seeds(
    train_one: Callable[..., tuple[dict, Any]],
    grid: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    *,
    select: str,
    maximise: bool = False,
    description: str = "tuning",
) -> Tuned:
    """Train every setting of `grid` at every seed with `train_one(**setting, seed=...)`, which
    returns a row (with `select`, validation only) and its fit; choose with `choose_setting`.

    The grid is listed in order of preference: among tied settings, the first one wins (list
    the simpler or more regularised values first). The chosen setting's fits are kept.
    """
    settings = expand_grid(grid)
    jobs = [(setting, seed) for setting in settings for seed in seeds]
    rows, fits = [], {}
    for setting, seed in tqdm(jobs, desc=description, disable=not is_interactive()):
        row, fitted = train_one(**setting, seed=seed)
        rows.append(row)
        fits[tuple(setting.values()), seed] = fitted
    trials = pl.DataFrame(rows)
    chosen = choose_setting(trials, list(grid), select, maximise=maximise)
    kept = {seed: fits[tuple(chosen.values()), seed] for seed in seeds}
    return Tuned(trials, chosen, kept, grid_edges(chosen, grid))
