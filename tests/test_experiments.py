"""Tuning over seeds: choices made on the mean, ties within two standard errors broken by the
grid's order, so that perturbing the scores at float precision never changes a choice."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from utilities.experiments import (
    choose_setting,
    grid_edges,
    outward,
    tune_extending,
    tune_over_seeds,
)

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


def test_a_relative_tolerance_widens_the_tie_beyond_two_standard_errors():
    # one seed each: no standard error, so only the tolerance can tie (0.95 is 5% below 1.0)
    rows = [{"lr": 1e-3, "seed": 0, "val": 0.95}, {"lr": 1e-2, "seed": 0, "val": 1.0}]
    one_seed = pl.DataFrame(rows)
    assert choose_setting(one_seed, ["lr"], "val", maximise=True) == {"lr": 1e-2}
    assert choose_setting(one_seed, ["lr"], "val", maximise=True, tolerance=0.06) == {"lr": 1e-3}
    assert choose_setting(one_seed, ["lr"], "val", maximise=True, tolerance=0.04) == {"lr": 1e-2}
    # minimising: 1.05 is within 6% of 1.0, by hand
    lower = one_seed.with_columns(val=pl.Series([1.0, 1.05]))
    assert choose_setting(lower, ["lr"], "val", maximise=False, tolerance=0.06) == {"lr": 1e-3}
    with pytest.raises(ValueError, match="tolerance must be a fraction in"):
        choose_setting(one_seed, ["lr"], "val", maximise=True, tolerance=1.5)


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
    assert grid_edges({"flag": True}, {"flag": [False, True]}) == []  # a switch has no edge


def test_outward_takes_the_next_value_at_the_same_ratio_and_only_past_an_end():
    assert outward([1e-3, 1e-4, 1e-5], 1e-3) == 1e-2  # past the top, whatever the list's order
    assert outward([1e-3, 1e-4, 1e-5], 1e-5) == 1e-6
    assert outward([0.5, 0.1, 0.02], 0.02) == 0.004  # 0.02 * 0.02 / 0.1, by hand
    assert outward([16, 32], 32) == 64 and isinstance(outward([16, 32], 16), int)
    assert outward([1e-3, 1e-4, 1e-5], 1e-4) is None  # inside
    assert outward([0.0, 1e-4], 1e-4) == 1e-3  # a decade past a neighbour of 0
    assert outward([0.0, 1e-4], 0.0) is None  # nothing below 0
    assert outward(["adam", "sgd"], "sgd") is None and outward([3.0], 3.0) is None
    assert outward([1, 2], 1) is None and outward([1.0, 1.0001], 1.0) is None  # nothing new
    assert outward([-1.0, -2.0], -1.0) is None and outward([False, True], True) is None


def test_tuning_extends_an_axis_whose_choice_is_on_its_edge_until_the_choice_is_inside():
    calls = []

    def train_one(lam: float, lr: float, seed: int) -> tuple[dict, None]:
        """Validation best at λ = 1e-6 (two steps below the grid) and at the rate 0.01."""
        calls.append((lam, lr, seed))
        val = abs(math.log10(lam) + 6) + seed * 1e-9 + (lr != 0.01)
        return {"lam": lam, "lr": lr, "seed": seed, "val": val}, None

    grid = {"lam": [1e-3, 1e-4], "lr": [0.01, 0.1]}
    tuned = tune_extending(train_one, grid, [0, 1], select="val")
    assert tuned.chosen == {"lam": 1e-6, "lr": 0.01} and tuned.edges == ["lam"]  # at its edge
    # 1e-5, then 1e-6, added last in the order of preference
    lams = tuned.trials["lam"].unique(maintain_order=True).to_list()
    assert lams == [1e-3, 1e-4, 1e-5, 1e-6]
    assert tuned.trials["lr"].unique(maintain_order=True).to_list() == [0.01, 0.1, 1e-3]
    assert tuned.tried == {"lam": [1e-3, 1e-4, 1e-5, 1e-6], "lr": [0.01, 0.1, 1e-3]}
    assert len(calls) == len(set(calls)) == 4 * 3 * 2  # every setting trained once per seed
    assert grid == {"lam": [1e-3, 1e-4], "lr": [0.01, 0.1]}  # the caller's grid untouched
    once = tune_extending(train_one, grid, [0, 1], select="val", rounds=1)
    assert once.chosen["lam"] == 1e-5 and once.edges == ["lam"]

    # a new value tied with the edge it extends does not take its place
    def flat(lam: float, seed: int) -> tuple[dict, None]:
        return {"lam": lam, "seed": seed, "val": 1.0 + seed * 1e-3 - (lam < 1e-3) * 1e-9}, None

    kept = tune_extending(flat, {"lam": [1e-3, 1e-2]}, [0, 1], select="val")
    assert kept.chosen == {"lam": 1e-3} and kept.edges == []  # inside once 1e-4 is tried
    assert kept.trials["lam"].unique(maintain_order=True).to_list() == [1e-3, 1e-2, 1e-4]
    inside = tune_extending(train_one, {"lam": [1e-5, 1e-6, 1e-7], "lr": [0.01]}, [0], select="val")
    assert inside.chosen == {"lam": 1e-6, "lr": 0.01} and inside.trials.height == 3
