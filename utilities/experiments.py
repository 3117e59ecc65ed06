"""Sweeps over a grid of settings, and tuning on validation over seeds: every setting trained
at every seed, and one choice that float noise cannot flip (ties go to the grid's order)."""

from __future__ import annotations

import itertools
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


# Settings whose mean is within this many standard errors (of the best's mean) of the best are
# tied: about what validation over these seeds cannot tell apart at 95%.
TIE_SES = 2.0


@dataclass(frozen=True)
class Tuned:
    """What `tune_over_seeds` returns: every trial's row, the setting chosen, the settings whose
    chosen value is on the edge of the grid, and what `train_one` returned beside each row (e.g.
    the `Fit`), keyed by `(setting values, seed)`."""

    trials: pl.DataFrame
    chosen: dict[str, Any]
    edges: list[str]
    every_fit: dict[tuple[tuple, int], Any]

    @property
    def fits(self) -> dict[int, Any]:
        """The chosen setting's fits, by seed."""
        chosen = tuple(self.chosen.values())
        return {seed: fit for (setting, seed), fit in self.every_fit.items() if setting == chosen}

    @property
    def tried(self) -> dict[str, list[Any]]:
        """Every value each axis tried, in the order tried."""
        return {key: self.trials[key].unique(maintain_order=True).to_list() for key in self.chosen}

    @property
    def results(self) -> pl.DataFrame:
        """The chosen setting's rows, one per seed."""
        chosen = [pl.col(key) == value for key, value in self.chosen.items()]
        return self.trials.filter(*chosen)


def summarise_settings(
    trials: pl.DataFrame,
    keys: Sequence[str],
    select: str,
    *,
    maximise: bool,
    tolerance: float = 0.0,
) -> pl.DataFrame:
    """Per setting, in the order first tried: the mean of `select` over seeds, its standard
    error, and whether it ties with the best: within `TIE_SES` of the best's standard errors,
    or within `tolerance` (a fraction of the best's mean), whichever is wider."""
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance must be a fraction in [0, 1), got {tolerance!r}.")
    summary = trials.group_by(keys, maintain_order=True).agg(
        mean=pl.col(select).mean(),
        se=(pl.col(select).std() / pl.len().sqrt()).fill_null(0.0),  # one seed: no tolerance
        seeds=pl.len(),
    )
    best = summary.row(
        summary.get_column("mean").arg_max() if maximise else summary.get_column("mean").arg_min(),
        named=True,
    )
    gap = (pl.col("mean") - best["mean"]) * (1 if maximise else -1)
    allowed = max(TIE_SES * best["se"], tolerance * abs(best["mean"]))
    return summary.with_columns(tied=gap >= -allowed)


def choose_setting(
    trials: pl.DataFrame,
    keys: Sequence[str],
    select: str,
    *,
    maximise: bool,
    tolerance: float = 0.0,
) -> dict[str, Any]:
    """The first setting (in the order tried) that ties with the best (`summarise_settings`):
    noise far below the tie's width cannot change the choice."""
    summary = summarise_settings(trials, keys, select, maximise=maximise, tolerance=tolerance)
    return summary.filter("tied").select(keys).row(0, named=True)


def grid_edges(chosen: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> list[str]:
    """The keys of numeric grids whose chosen value is the smallest or largest tried."""
    numeric = {
        k: v
        for k, v in grid.items()
        if all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
    }
    return [k for k, v in numeric.items() if len(v) > 1 and chosen[k] in (min(v), max(v))]


def tune_over_seeds(
    train_one: Callable[..., tuple[dict, Any]],
    grid: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    *,
    select: str,
    maximise: bool = False,
    tolerance: float = 0.0,
    description: str = "tuning",
) -> Tuned:
    """Train every setting of `grid` at every seed with `train_one(**setting, seed=...)`, which
    returns a row (with `select`, validation only) and its fit; choose with `choose_setting`
    (`tolerance`: the fraction of the best mean within which settings tie, beside two se).

    The grid is listed in order of preference: among tied settings, the first one wins (list
    the simpler or more regularised values first). Every fit is kept beside its row.
    """
    settings = expand_grid(grid)
    jobs = [(setting, seed) for setting in settings for seed in seeds]
    rows, fits = [], {}
    for setting, seed in tqdm(jobs, desc=description, disable=not is_interactive()):
        row, fitted = train_one(**setting, seed=seed)
        rows.append(row)
        fits[tuple(setting.values()), seed] = fitted
    trials = pl.DataFrame(rows)
    chosen = choose_setting(trials, list(grid), select, maximise=maximise, tolerance=tolerance)
    return Tuned(trials, chosen, grid_edges(chosen, grid), fits)


def outward(values: Sequence[Any], chosen: Any) -> Any | None:
    """The next value past `chosen` when it is the smallest or largest of `values`, at the same
    ratio as its neighbour (a decade beyond a neighbour of 0; whole numbers stay whole); None
    inside the grid, at 0, on an axis of one value, of negative values or of non-numbers, and
    where rounding leaves no new value past `chosen`."""
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in values):
        return None
    ordered = sorted(values)
    if len(ordered) < 2 or chosen not in (ordered[0], ordered[-1]) or chosen == 0:
        return None
    near, far = (ordered[0], ordered[1]) if chosen == ordered[0] else (ordered[-1], ordered[-2])
    value = near * 10 if far == 0 else near * near / far
    value = max(1, round(value)) if isinstance(near, int) else float(f"{value:.3g}")
    past = value > chosen if chosen == ordered[-1] else value < chosen
    return value if past else None


def tune_extending(
    train_one: Callable[..., tuple[dict, Any]],
    grid: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    *,
    select: str,
    maximise: bool = False,
    tolerance: float = 0.0,
    rounds: int = 2,
    description: str = "tuning",
) -> Tuned:
    """`tune_over_seeds`, then, at most `rounds` times, every axis whose choice sits on its edge
    extended one step past it (`outward`) and tuned again. A new value goes last in the grid's
    order of preference, so it is chosen only where it beats, beyond the tie tolerance, every
    setting before it. Settings already trained are not trained again; the returned `edges` name
    the axes whose choice is still on an edge."""
    axes = {key: list(values) for key, values in grid.items()}
    trained: dict[tuple, tuple[dict, Any]] = {}

    def train_once(**setting: Any) -> tuple[dict, Any]:
        key = tuple(setting.items())
        if key not in trained:
            trained[key] = train_one(**setting)
        return trained[key]

    def tune() -> Tuned:
        return tune_over_seeds(
            train_once,
            axes,
            seeds,
            select=select,
            maximise=maximise,
            tolerance=tolerance,
            description=description,
        )

    tuned = tune()
    for _ in range(rounds):
        wider = {key: outward(axes[key], tuned.chosen[key]) for key in tuned.edges}
        if all(value is None for value in wider.values()):
            break
        for key, value in wider.items():
            if value is not None:
                axes[key].append(value)
        tuned = tune()
    return tuned
