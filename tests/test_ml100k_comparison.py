"""Notebooks 06 and 07 on ml-100k through the reports CLI: every claim they assert (weight decay's
effect in 06; in 07 the project's best model against Surprise's SVD measured in the same run, and
cold start) holds there too. Published numbers from other protocols are printed, not asserted:
fastbook's 0.905 comes from an 80/20 split, where fastai itself reaches 0.928 today
(benchmarks/fastbook_anchor.py). Runs where a copy of GroupLens' ml-100k is at hand (CI has one);
07, which takes about 25 minutes on a slow core, only with DOTLAB_SLOW_TESTS=1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = {  # each notebook, and lines it must print there
    "06_weight_decay_from_scratch": ["L2 on the batch's rows minus L2 in the gradient, test RMSE"],
    "07_rating_models_against_the_libraries": [
        "published on ml-100k: fastbook test RMSE 0.905 (its own protocol)",
        "best project model on validation:",
        "MF from scratch minus DotProductBias (04)",
    ],
}
ML100K_COPY = os.environ.get("DOTLAB_ML100K_COPY")
# Notebook 07's tuning on ml-100k ran past 15 minutes on a slow two-core machine beside notebook 08
# (2026-12-04), a fifth of CI's time for claims CI checks on ml-latest-small: run it on request.
SLOW = {"07_rating_models_against_the_libraries"}
RUN_SLOW = os.environ.get("DOTLAB_SLOW_TESTS") == "1"


def printed_lines(executed: Path) -> list[str]:
    """Every line the executed notebook's cells printed."""
    cells = json.loads(executed.read_text())["cells"]
    streams = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    return "".join("".join(o.get("text", "")) for o in streams).splitlines()


@pytest.mark.skipif(
    not ML100K_COPY,
    reason="ml-100k is not bundled (its licence forbids redistribution); set DOTLAB_ML100K_COPY "
    "to a folder with GroupLens' ml-100k files",
)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_rating_notebooks_on_ml100k_hold_their_claims(tmp_path, name):
    if name in SLOW and not RUN_SLOW:
        pytest.skip(f"{name} on ml-100k takes about 25 minutes: set DOTLAB_SLOW_TESTS=1 to run it")
    notebook = REPO / "notebooks" / f"{name}.ipynb"
    cache = tmp_path / "cache"
    shutil.copytree(ML100K_COPY, cache / "ml-100k")
    env = os.environ | {
        "DOTLAB_DATA_DIR": str(cache),
        "MLFLOW_TRACKING_URI": str(tmp_path / "runs"),
        # The default thread count: this test checks the claims on another dataset; nbval checks
        # two threads on the notebooks themselves (two threads here: 545 s in a full pytest run).
        "DOTLAB_THREADS": "1",
    }
    command = [sys.executable, "-m", "utilities.reports", str(notebook), "-p", "DATASET", "ml-100k"]
    # The reports' cell timeout (3600 s) guards against a hang: 07's tuning cell on ml-100k ran
    # past 900 s on a slow two-core machine beside notebook 08 (2026-12-04).
    command += ["--output-dir", str(tmp_path / "site")]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr  # the notebook's asserts held
    lines = printed_lines(tmp_path / "site" / notebook.name)
    for start in NOTEBOOKS[name]:
        assert any(line.startswith(start) for line in lines), start
