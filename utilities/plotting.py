"""Plots the notebooks share, with a fixed palette so colours mean the same thing everywhere."""

from __future__ import annotations

import matplotlib.pyplot as plt
import polars as pl
import seaborn as sns

DATASET_COLOURS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}


def plot_training_curves(
    logs: pl.DataFrame, *, ax: plt.Axes | None = None, title: str = ""
) -> plt.Axes:
    """Loss against epoch, one line per dataset, from `training_logs_to_df`."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
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
