"""The spread figures draw what they say: means as lines, bars or diamonds, every seed a point."""

from __future__ import annotations

import matplotlib
import numpy as np
import polars as pl
import pytest
from matplotlib.collections import PathCollection

from utilities.plotting import bars_with_seeds, lines_with_seeds, seeds_with_mean

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RUNS = pl.DataFrame(
    {
        "model": ["dot"] * 3 + ["mlp"] * 3,
        "seed": [0, 1, 2] * 2,
        "error": [1.0, 2.0, 6.0, 4.0, 5.0, 9.0],
    }
)


@pytest.fixture
def ax():
    figure, ax = plt.subplots()
    yield ax
    plt.close(figure)


def by_hand(model: str) -> tuple[float, float]:
    """The mean and sample sd of a model's errors, from the frame's numbers."""
    values = [v for m, v in zip(RUNS["model"], RUNS["error"], strict=True) if m == model]
    return sum(values) / len(values), float(np.std(values, ddof=1))


def test_lines_with_seeds_draws_the_mean_per_x_and_every_seed(ax):
    runs = RUNS.with_columns(step=pl.col("seed") % 2)  # x: 0, 1, 0 per model
    lines_with_seeds(runs, "step", "error", "model", ax=ax)
    means = [
        list(ln.get_ydata()) for ln in ax.lines if ln.get_marker() == "o" and len(ln.get_ydata())
    ]
    assert means == [[3.5, 2.0], [6.5, 5.0]]
    seeds = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    assert seeds == RUNS.height
    assert ax.get_legend() is not None


def test_bars_with_seeds_have_the_mean_as_length_and_a_point_per_seed(ax):
    bars_with_seeds(RUNS, "model", "error", order=["mlp", "dot"], ax=ax)
    by_row = {round(p.get_y() + p.get_height() / 2): p.get_width() for p in ax.patches}
    assert by_row == {0: by_hand("mlp")[0], 1: by_hand("dot")[0]}
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert points == RUNS.height


def test_seeds_with_mean_marks_mean_and_sd_and_joins_seeds(ax):
    palette = {"dot": "#1f77b4", "mlp": "#d62728"}
    seeds_with_mean(
        RUNS, "model", "error", order=["dot", "mlp"], palette=palette, ax=ax, join="seed"
    )
    joins = [line for line in ax.lines if line.get_color() == "grey"]
    assert [list(line.get_ydata()) for line in joins] == [[1.0, 4.0], [2.0, 5.0], [6.0, 9.0]]
    diamonds = [line for line in ax.lines if line.get_marker() == "D"]
    assert [line.get_ydata()[0] for line in diamonds] == [by_hand("dot")[0], by_hand("mlp")[0]]
    bars = [c for c in ax.collections if hasattr(c, "get_segments")]
    spans = [s[0][1][1] - s[0][0][1] for s in (b.get_segments() for b in bars)]
    assert spans == pytest.approx([2 * by_hand("dot")[1], 2 * by_hand("mlp")[1]])
