"""Tuning over seeds: choices made on the mean, ties within two standard errors broken by the
grid's order, so that perturbing the scores at float precision never changes a choice."""

from __future__ import annotations

import numpy as np
import polars as pl

from utilities.experiments import choose_setting, grid_edges, tune_over_seeds

# mean val score per lr over 3 seeds: 1e-3 → 0.50 (se 0.01), 1e-2 → 0.505 (se 0.01), 1e-1 → 0.3
SCORES = {1e-3: [0.49, 0.50, 0.51], 1e-2: [0.495, 0.505, 0.515], 1e-1: [0.29, 0.30, 0.31]}


def trials() -> pl.DataFrame:
    rows = [
        {"lr": lr, "seed": seed, "val": value}
        for lr, values in SCORES.items()
        for seed, value in enumerate(values)
    ]
    return pl.DataFrame(rows)


def test_a_setting_within_two_standard_errors_of_the_best_wins_by_grid_order():
    assert choose_setting(trials(), ["lr"], "val", maximise=True) == {"lr": 1e-3}
    # listed the other way round, the best mean is also first: it wins
    reordered = trials().sort("lr", descending=True)
    assert choose_setting(reordered, ["lr"], "val", maximise=True) == {"lr": 1e-2}
    # a setting listed first but far below the best (0.3 against 0.505 ± 0.006) is not tied
    far_first = pl.concat([trials().filter(lr=1e-1), trials().filter(pl.col("lr") < 1e-1)])
    assert choose_setting(far_first, ["lr"], "val", maximise=True) == {"lr": 1e-3}


def test_minimising_picks_the_lowest_mean():
    assert choose_setting(trials(), ["lr"], "val", maximise=False) == {"lr": 1e-1}


def test_perturbing_the_scores_by_1e_6_never_changes_the_choice():
    rng = np.random.default_rng(0)
    base = trials()
    for _ in range(200):
        noisy = base.with_columns(pl.col("val") + rng.uniform(-1e-6, 1e-6, base.height))
        assert choose_setting(noisy, ["lr"], "val", maximise=True) == {"lr": 1e-3}


def test_tuning_trains_every_setting_at_every_seed_and_keeps_the_chosen_fits():
    calls = []

    def train_one(lr: float, wd: float, seed: int) -> tuple[dict, str]:
        calls.append((lr, wd, seed))
        return {"lr": lr, "wd": wd, "seed": seed, "val": -abs(lr - 0.1) - wd}, f"{lr}/{wd}/{seed}"

    tuned = tune_over_seeds(
        train_one, {"lr": [0.01, 0.1], "wd": [0.0, 1.0]}, [0, 1], select="val", maximise=True
    )
    assert len(calls) == 8
    assert tuned.chosen == {"lr": 0.1, "wd": 0.0}
    assert tuned.fits == {0: "0.1/0.0/0", 1: "0.1/0.0/1"}
    assert tuned.results.height == 2 and tuned.edges == ["lr", "wd"]


def test_edges_are_reported_only_for_ends_of_numeric_grids():
    grid = {"lr": [1, 2, 3], "opt": ["adam", "sgd"]}
    assert grid_edges({"lr": 2, "opt": "sgd"}, grid) == []
    assert grid_edges({"lr": 3, "opt": "sgd"}, grid) == ["lr"]
