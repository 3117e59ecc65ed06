"""The sweep runner: every combination once, in order, with clear errors."""

from __future__ import annotations

import pytest

from utilities.experiments import expand_grid, run_sweep


def test_expand_grid_is_the_cartesian_product_last_key_fastest():
    combos = expand_grid({"dim": [1, 2], "arch": ["a", "b", "c"]})
    assert combos == [{"dim": d, "arch": a} for d in [1, 2] for a in ["a", "b", "c"]]


def test_run_sweep_calls_every_combination_with_fixed_arguments_and_keeps_order():
    calls = []

    def train(dim, lr, epochs):
        calls.append((dim, lr, epochs))
        return dim * lr

    results = run_sweep(train, {"dim": [1, 2], "lr": [0.1, 1.0]}, epochs=3, progress_bar=False)
    assert calls == [(1, 0.1, 3), (1, 1.0, 3), (2, 0.1, 3), (2, 1.0, 3)]
    assert results == [0.1, 1.0, 0.2, 2.0]


def test_run_sweep_shows_a_progress_bar_only_when_asked(capsys):
    run_sweep(lambda x: x, {"x": [1, 2]}, description="my sweep", progress_bar=True)
    assert "my sweep" in capsys.readouterr().err
    run_sweep(lambda x: x, {"x": [1, 2]}, description="my sweep", progress_bar=False)
    assert "my sweep" not in capsys.readouterr().err


def test_quiet_by_default_under_tests(capsys):  # the root conftest sets DOTLAB_QUIET
    run_sweep(lambda x: x, {"x": [1]}, description="quiet sweep")
    assert "quiet sweep" not in capsys.readouterr().err


@pytest.mark.parametrize("values", [[], "abc", 3])
def test_a_grid_entry_must_be_a_non_empty_list(values):
    with pytest.raises(ValueError, match="grid\\['dim'\\] must be a non-empty list"):
        expand_grid({"dim": values})


def test_a_parameter_cannot_be_swept_and_fixed():
    with pytest.raises(ValueError, match="both swept and fixed: \\['dim'\\]"):
        run_sweep(lambda dim: dim, {"dim": [1]}, dim=2)


def test_an_error_in_one_run_stops_the_sweep_and_propagates():
    calls = []

    def train(x):
        calls.append(x)
        if x == 2:
            raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        run_sweep(train, {"x": [1, 2, 3]}, progress_bar=False)
    assert calls == [1, 2]
