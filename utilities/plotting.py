"""Plots the notebooks share, with a fixed palette so colours mean the same thing everywhere."""

from __future__ import annotations

import matplotlib.pyplot as plt
import polars as pl
import seaborn as sns

DATASET_COLOURS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}


def plot_training_curves(
    history: pl.DataFrame, *, ax: plt.Axes | None = None, title: str = ""
) -> plt.Axes:
    """Loss against epoch, one line per dataset, from a `Fit.history`."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    losses = [c for c in history.columns if c.endswith("_loss")]
    logs = history.unpivot(index="epoch", on=losses, variable_name="dataset", value_name="loss")
    logs = logs.with_columns(pl.col("dataset").str.strip_suffix("_loss"))
    present = [name for name in DATASET_COLOURS if name in set(logs.get_column("dataset"))]
    sns.lineplot(
        data=logs.to_pandas(),
        x="epoch",
        y="loss",
        hue="dataset",
        hue_order=present,
        palette=DATASET_COLOURS,
        marker="o",
        ax=ax,
    )
    ax.set(title=title, ylabel="MSE loss")
    return ax
