"""Paired differences over seeds: the t-interval against scipy by hand, the verdict's margin,
and Holm's correction on a family worked out by hand."""

from __future__ import annotations

import math

import polars as pl
import pytest
from scipy import stats

from utilities.stats import (
    Difference,
    compare_paired,
    difference_of,
    holm,
    joint_verdict,
    relate_verdicts,
)


def test_the_interval_is_scipys_t_interval_on_a_tiny_case():
    difference = difference_of([0.1, 0.3, 0.2, 0.6])
    mean, sd = 0.3, math.sqrt(((-0.2) ** 2 + 0 + 0.1**2 + 0.3**2) / 3)
    low, high = stats.t.interval(0.95, 3, loc=mean, scale=sd / 2)
    assert difference.mean == pytest.approx(mean)
    assert difference.se == pytest.approx(sd / 2)
    assert difference.interval == pytest.approx((low, high))
    assert difference.p_value == pytest.approx(stats.ttest_1samp([0.1, 0.3, 0.2, 0.6], 0).pvalue)


def test_t_of_two_and_a_half_at_three_seeds_is_not_distinguishable():
    difference = Difference(mean=2.5, se=1.0, n=3)  # t = 2.5 < t(0.975, 2) = 4.30
    assert not difference.distinguishable
    assert difference.verdict("A", "B") == "not distinguishable"


def test_a_difference_that_barely_clears_zero_is_not_called():
    critical = stats.t.ppf(0.975, 4)
    barely = Difference(mean=1.1 * critical, se=1.0, n=5)
    assert barely.distinguishable and not barely.clear
    assert barely.verdict("A", "B") == "not distinguishable"
    clear = Difference(mean=-2 * critical, se=1.0, n=5)
    assert clear.verdict("A", "B") == "B higher"
    assert clear.verdict("A", "B", lower=True) == "A lower"


def test_str_shows_the_mean_its_error_and_the_interval():
    text = str(Difference(mean=0.012, se=0.003, n=5))
    assert text.startswith("+0.012 ± 0.003 [+0.00367, +0.0203]") and text.endswith("(n=5)")


def test_compare_paired_pairs_rows_by_seed():
    rows = pl.DataFrame(
        {
            "model": ["a", "a", "a", "b", "b", "b"],
            "seed": [0, 1, 2, 2, 1, 0],
            "x": [1, 2, 3, 0, 0, 1],
        }
    )
    difference = compare_paired(rows, "x", "model", "a", "b")  # pairs: 1-1, 2-0, 3-0
    assert difference.mean == pytest.approx(5 / 3) and difference.n == 3


def test_holm_steps_down_from_the_smallest_p_value():
    def with_p(p: float) -> Difference:  # a difference at 10 pairs with two-sided p-value `p`
        return Difference(mean=stats.t.isf(p / 2, 9), se=1.0, n=10)

    family = [with_p(0.04), with_p(0.001), with_p(0.02)]
    # sorted: 0.001 <= 0.05/3 kept; 0.02 <= 0.05/2 kept; 0.04 <= 0.05/1 kept
    assert holm(family) == [True, True, True]
    family = [with_p(0.04), with_p(0.001), with_p(0.03)]  # 0.03 > 0.025 stops the walk
    assert holm(family) == [False, True, False]


def test_a_joint_verdict_needs_every_check_to_call_it():
    clear_up, clear_down = Difference(1.0, 0.1, 5), Difference(-1.0, 0.1, 5)
    unclear = Difference(0.3, 0.2, 5)  # half-width 0.56: not clear
    assert joint_verdict([clear_up, Difference(2.0, 0.1, 610)], "A", "B") == "A higher"
    assert joint_verdict([clear_up, unclear], "A", "B") == "not distinguishable"
    assert joint_verdict([clear_up, clear_down], "A", "B") == "not distinguishable"


def test_verdicts_relate_as_agreeing_reversed_or_only_one_called():
    assert relate_verdicts("A higher", "A higher") == "agree"
    assert relate_verdicts("A higher", "B higher") == "reversed"
    assert relate_verdicts("A higher", "not distinguishable") == "only one called"
    assert relate_verdicts("not distinguishable", "not distinguishable") == "agree"


def test_the_bracket_is_the_interval_to_four_decimals():
    difference = Difference(0.01, 0.002, 5)
    low, high = difference.interval
    assert difference.bracket() == f"[{low:+.4f}, {high:+.4f}]"
    assert difference.bracket(2) == "[+0.00, +0.02]"
