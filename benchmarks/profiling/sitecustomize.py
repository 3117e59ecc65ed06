"""Times `utilities.training.fit` and `predict` in every Python process that has this folder on
its path, while `DOTLAB_PROFILE` names a file: `benchmarks/notebooks.py` puts it on the notebook
kernels' `PYTHONPATH`. One JSON line per fit (its optimiser steps, seconds in Lightning's
`trainer.fit`, seconds outside it, and `predict`'s seconds since the last line); the evaluation
seconds after the last fit get a line of their own at exit."""

from __future__ import annotations

import atexit
import functools
import importlib.abc
import importlib.machinery
import json
import os
import sys
import time

PROFILE = os.environ.get("DOTLAB_PROFILE")
TARGET = "utilities.training"
unwritten_eval_seconds = [0.0]


def write_line(line: dict[str, float]) -> None:
    """Append `line`, with the evaluation seconds not yet written, to the profile."""
    line["eval_s"], unwritten_eval_seconds[0] = unwritten_eval_seconds[0], 0.0
    with open(PROFILE, "a") as profile:
        profile.write(json.dumps(line) + "\n")


def profiled_fit(fit):
    """`fit`, writing a line per call."""

    @functools.wraps(fit)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        result = fit(*args, **kwargs)
        train_s = result.metrics["train_seconds"]
        fixed_s = time.perf_counter() - start - train_s
        write_line({"steps": result.steps, "train_s": train_s, "fixed_s": fixed_s})
        return result

    return timed


def profiled_predict(predict):
    """`predict`, its seconds counted as evaluation."""

    @functools.wraps(predict)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return predict(*args, **kwargs)
        finally:
            unwritten_eval_seconds[0] += time.perf_counter() - start

    return timed


def write_eval_at_exit() -> None:
    """The evaluation seconds after the last fit, as a line of their own."""
    if unwritten_eval_seconds[0]:
        write_line({})


class PatchTraining(importlib.abc.MetaPathFinder):
    """Finds `utilities.training` as usual and wraps its `fit` and `predict` once it has run,
    before `utilities` (or anything else) imports them."""

    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            module.fit = profiled_fit(module.fit)
            module.predict = profiled_predict(module.predict)

        spec.loader.exec_module = exec_module
        return spec


if PROFILE:
    sys.meta_path.insert(0, PatchTraining())
    atexit.register(write_eval_at_exit)
