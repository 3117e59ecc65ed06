"""The figures with spread over seeds the notebooks share: a line with every seed as a point,
bars with every seed, and seeds beside their mean ± sd; legends go outside the data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import polars as pl
import seaborn as sns

SEED_POINTS = {"alpha": 0.4, "legend": False}


def new_axes(ax: plt.Axes | None, size: tuple[float, float]) -> plt.Axes:
    """`ax`, or the axes of a new figure of `size` inches."""
    return ax if ax is not None else plt.subplots(figsize=size)[1]


def legend_outside(ax: plt.Axes, **kwargs) -> None:
    """The legend to the right of the axes, where it hides no data."""
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", **kwargs)


def lines_with_seeds(
    frame: pl.DataFrame, x: str, y: str, hue: str, *, ax: plt.Axes | None = None, **kwargs
) -> plt.Axes:
    """Mean ± sd of `y` per `x` and `hue` as lines with error bars, every seed a faint point."""
    ax, data = new_axes(ax, (8, 4.5)), frame.to_pandas()
    line = {"errorbar": "sd", "err_style": "bars", "marker": "o"}
    sns.lineplot(data, x=x, y=y, hue=hue, ax=ax, **line, **kwargs)
    sns.scatterplot(data, x=x, y=y, hue=hue, ax=ax, **SEED_POINTS, **kwargs)
    legend_outside(ax)
    return ax


def bars_with_seeds(
    frame: pl.DataFrame,
    category: str,
    value: str,
    *,
    order: Sequence[str],
    hue: str | None = None,
    palette: Mapping[str, str] | Sequence[str] | None = None,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Horizontal bars of the mean `value` per `category` (± sd), every seed a black point;
    with `hue`, bars side by side within each category."""
    ax, data = new_axes(ax, (8, 4.5)), frame.to_pandas()
    common = {"y": category, "x": value, "order": order, "ax": ax}
    colours = {"hue": hue or category, "palette": palette}
    sns.barplot(data, **common, **colours, errorbar="sd", alpha=0.5, legend=hue is not None)
    n_hues = frame.get_column(hue).n_unique() if hue else 1
    points = {"hue": hue, "dodge": True, "palette": ["black"] * n_hues} if hue else {}
    sns.stripplot(data, **common, **points, color="black", size=3.5, legend=False)
    ax.set(ylabel="")
    if hue:
        legend_outside(ax)
    return ax


def seeds_with_mean(
    frame: pl.DataFrame,
    category: str,
    value: str,
    *,
    order: Sequence[str],
    palette: Mapping[str, str],
    ax: plt.Axes | None = None,
    join: str | None = None,
) -> plt.Axes:
    """Every seed's `value` per `category` as points, the mean ± sd as a diamond beside them;
    with `join` (e.g. "seed"), grey lines join the points of the same seed."""
    ax = new_axes(ax, (6, 4))
    if join is not None:
        wide = frame.pivot(on=category, index=join, values=value).select(order)
        for row in wide.iter_rows():
            ax.plot(range(len(order)), row, color="grey", alpha=0.5, lw=1)
    for x, name in enumerate(order):
        values = frame.filter(pl.col(category) == name).get_column(value)
        colour = palette[name]
        ax.scatter([x - 0.06] * len(values), values, color=colour, s=16, alpha=0.8, zorder=3)
        ax.errorbar(x + 0.1, values.mean(), yerr=values.std(), fmt="D", color=colour, capsize=4)
    ax.set(xticks=range(len(order)), xticklabels=list(order), xlim=(-0.5, len(order) - 0.5))
    return ax
