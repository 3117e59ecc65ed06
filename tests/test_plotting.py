"""Training-curve plots of a `Fit.history` keep one colour per dataset."""

from __future__ import annotations

import matplotlib
import polars as pl
import pytest
from matplotlib.colors import to_hex

from utilities.plotting import DATASET_COLOURS, plot_training_curves

matplotlib.use("Agg")


@pytest.mark.parametrize("datasets", [["train", "val"], ["train"], ["val", "train"]])
def test_one_line_per_loss_column_in_its_colour(datasets):
    import matplotlib.pyplot as plt

    losses = {name: [3.0 - i, 2.0 - i, 1.5 - i] for i, name in enumerate(datasets)}
    history = pl.DataFrame({"epoch": [1, 2, 3]} | {f"{k}_loss": v for k, v in losses.items()})
    figure, ax = plt.subplots()
    try:
        assert plot_training_curves(history, ax=ax, title="curves") is ax
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        assert legend == [name for name in DATASET_COLOURS if name in datasets]
        drawn = [line for line in ax.lines if len(line.get_xdata())]
        assert len(drawn) == len(datasets)
        by_colour = {to_hex(line.get_color()): list(line.get_ydata()) for line in drawn}
        assert by_colour == {DATASET_COLOURS[name]: losses[name] for name in datasets}
        assert all(list(line.get_xdata()) == [1, 2, 3] for line in drawn)
        assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("curves", "epoch", "MSE loss")
    finally:
        plt.close(figure)
