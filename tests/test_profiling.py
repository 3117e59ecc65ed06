"""benchmarks/profiling/sitecustomize.py: the timings benchmarks/notebooks.py reads, written by
a process that has that folder on its path, against the fits' own numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from scale_case import ONE, fit_scale
from utilities import evaluate, predict
first = fit_scale(epochs=3)
evaluate(first.model, (ONE, 2 * ONE))
second = fit_scale(epochs=2)
predict(second.model, ONE)
print(json.dumps([first.metrics["train_seconds"], second.metrics["train_seconds"]]))
"""


def run_profiled(profile: Path | None) -> tuple[list[float], list[dict[str, float]]]:
    """Run SCRIPT with the profiling folder on its path: its fits' seconds and the profile."""
    env = os.environ | {"PYTHONPATH": str(ROOT / "benchmarks" / "profiling")}
    env.pop("DOTLAB_PROFILE", None)
    if profile is not None:
        env["DOTLAB_PROFILE"] = str(profile)
    script = SCRIPT.format(tests=str(ROOT / "tests"))
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    exists = profile is not None and profile.exists()
    lines = [json.loads(line) for line in profile.read_text().splitlines()] if exists else []
    return json.loads(out.stdout.splitlines()[-1]), lines


def test_a_profile_has_a_line_per_fit_and_the_evaluation_between_and_after(tmp_path):
    """One row, batch 1: one optimiser step an epoch, so 3 and 2 steps for 3 and 2 epochs."""
    seconds, lines = run_profiled(tmp_path / "profile.jsonl")
    assert [line.get("steps") for line in lines] == [3, 2, None]
    assert [line["train_s"] for line in lines[:2]] == seconds
    assert all(line["fixed_s"] > 0 for line in lines[:2])
    assert lines[0]["eval_s"] == 0 and lines[1]["eval_s"] > 0  # the evaluate between the fits
    assert list(lines[2]) == ["eval_s"] and lines[2]["eval_s"] > 0  # the predict after the last


def test_without_a_profile_nothing_is_written(tmp_path):
    _, lines = run_profiled(None)
    assert lines == [] and list(tmp_path.iterdir()) == []
