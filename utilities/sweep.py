"""Run one training function over every combination of a parameter grid."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

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
