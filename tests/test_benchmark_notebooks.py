"""benchmarks/notebooks.py on tiny hand-made notebooks: the fits and steps it counts are the ones
the notebook's code implies, its seconds add up to the wall time, and a failure or Ctrl-C is
one line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from processes import is_running, wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "benchmarks" / "notebooks.py"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
LAST_LINE = re.compile(
    r"collection: (\d+\.\d\d) s wall on (\d+) cores; (\d+) fits; fixed cost per fit (\d+\.\d) ms"
)
# Two fits of 2 epochs on 8 rows in batches of 4: 2 fits x 2 epochs x 2 steps.
ROWS, BATCH_SIZE, EPOCHS, FITS = 8, 4, 2, 2
STEPS = FITS * EPOCHS * (ROWS // BATCH_SIZE)
TRAIN_TWICE = f"""import torch
from torch import nn
from utilities import evaluate, fit
x = torch.arange({ROWS}.0).unsqueeze(1) / {ROWS}
y = 2 * x
first = fit(nn.Linear(1, 1), (x, y), epochs={EPOCHS}, lr=0.1, batch_size={BATCH_SIZE})
second = fit(
    nn.Linear(1, 1), (x, y), epochs={EPOCHS}, lr=0.1, batch_size={BATCH_SIZE}, experiment="tiny"
)
mse = evaluate(second.model, (x, y))"""
FIGURE = "import matplotlib.pyplot as plt\nplt.plot(x[:, 0], y[:, 0])\nplt.show()"


def write_notebook(path: Path, *cells) -> Path:
    nbformat.write(new_notebook(cells=list(cells), metadata={"kernelspec": KERNELSPEC}), path)
    return path


def run_benchmark(*args, env_update: dict[str, str] | None = None) -> subprocess.Popen:
    """The script started with `args`, MLflow's store left to it (none set in its environment)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DOTLAB_PROFILE")
    }
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *map(str, args)],
        cwd=REPO_ROOT,
        env=env | (env_update or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def table_row(stdout: str, name: str) -> list[str]:
    """The cells of the Markdown table's row for `name`."""
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} in\n{stdout}")


def test_fits_steps_and_seconds_of_a_tiny_notebook(tmp_path):
    notebook = write_notebook(
        tmp_path / "tiny.ipynb",
        new_markdown_cell("# Does a line fit in two fits?"),
        new_code_cell(TRAIN_TWICE),
        new_code_cell(FIGURE),
        new_markdown_cell("**Conclusion.** It trains."),
    )
    benchmark = run_benchmark(notebook, "--jobs", 2)
    stdout, stderr = benchmark.communicate(timeout=600)
    assert benchmark.returncode == 0, stderr
    match = LAST_LINE.fullmatch(stdout.splitlines()[-1])
    assert match, stdout
    wall, cores, fits, fixed_ms = match.groups()
    assert (cores, fits) == ("1", str(FITS))  # two jobs asked, one notebook to run
    header = table_row(stdout, "notebook")
    row = dict(zip(header, table_row(stdout, "tiny"), strict=True))
    assert (row["fits"], row["steps"]) == (str(FITS), str(STEPS))
    seconds = [float(row[key]) for key in ("train_s", "fixed_s", "eval_s", "rest_s")]
    assert all(value >= 0 for value in seconds)
    assert sum(seconds) == pytest.approx(float(row["wall_s"]), abs=0.03)  # four rounded parts
    assert float(row["fixed_s"]) * 1e3 / FITS == pytest.approx(float(fixed_ms), abs=10)
    assert table_row(stdout, "total")[1:] == table_row(stdout, "tiny")[1:]
    assert float(row["wall_s"]) <= float(wall)  # both rounded to 0.01 s, so the order holds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.ipynb"]  # nothing written beside


def test_a_failing_notebook_is_named_and_the_exit_status_is_not_zero(tmp_path):
    bad = write_notebook(
        tmp_path / "bad.ipynb",
        new_markdown_cell("# Can we divide by zero?"),
        new_code_cell("1 / 0"),
    )
    temporary = tmp_path / "temporary"
    temporary.mkdir()
    benchmark = run_benchmark(bad, "--jobs", 1, env_update={"TMPDIR": str(temporary)})
    stdout, stderr = benchmark.communicate(timeout=600)
    assert benchmark.returncode == 1
    last = stderr.splitlines()[-1]
    assert last.startswith(f"error: {bad} failed: cell In [1] failed with ZeroDivisionError"), last
    assert "Traceback" not in stderr and "collection:" not in stdout
    # the page it names is kept, traceback included
    (kept,) = re.findall(r"\(see (\S+)\)$", last)
    assert Path(kept).is_relative_to(temporary)
    assert "ZeroDivisionError" in Path(kept).read_text()


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT, as Ctrl-C does in a terminal")
def test_ctrl_c_stops_in_one_line_and_leaves_no_kernel(tmp_path):
    pid_file = tmp_path / "kernel.pid"
    slow = write_notebook(
        tmp_path / "slow.ipynb",
        new_markdown_cell("# Does it ever end?"),
        new_code_cell(
            "import os, pathlib, time\n"
            f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
            "time.sleep(120)"
        ),
    )
    benchmark = run_benchmark(slow, "--jobs", 1)
    try:
        wait_for(pid_file.exists)
        time.sleep(0.5)  # the kernel is in time.sleep
        benchmark.send_signal(signal.SIGINT)
        stdout, stderr = benchmark.communicate(timeout=60)
    finally:
        benchmark.kill()
    assert benchmark.returncode == 130, stderr
    assert stderr.splitlines()[-1] == "interrupted while running slow.ipynb"
    assert "Traceback" not in stderr and stdout == ""
    kernel = int(pid_file.read_text())
    wait_for(lambda: not is_running(kernel), seconds=10)
