"""Where the collection's time goes: the notebooks executed as the reports command executes them,
with per notebook the wall time, the fits and optimiser steps, and the seconds in training
steps, in each fit's fixed costs, in evaluation, and the rest.

    python benchmarks/notebooks.py [NOTEBOOK ...] [--jobs N] [-p NAME VALUE ...]

Each notebook runs in its own `python -m utilities.reports NOTEBOOK --jobs 1` (papermill, a fresh
kernel), `--jobs` of them side by side (default: one per CPU core), its kernel timing `fit` and
`predict` into a file of its own (`DOTLAB_PROFILE`, see benchmarks/profiling/). MLflow runs go to
a temporary store created before the clock starts; pages and executed notebooks are discarded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import polars as pl

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILING = REPO_ROOT / "benchmarks" / "profiling"  # its sitecustomize times fit and predict
sys.path.insert(0, str(REPO_ROOT))

from utilities.reports import saved_seconds  # noqa: E402
from utilities.tracking import create_store_once, sqlite_uri  # noqa: E402

STOP = threading.Event()  # set on Ctrl-C: no new notebook starts
RUNNING: dict[Path, subprocess.Popen] = {}  # the reports commands now running, by notebook
RUNNING_LOCK = threading.Lock()


class NotebookFailed(RuntimeError):
    """A notebook whose reports command exited non-zero, said in one line."""


@dataclass(frozen=True)
class Timing:
    """One notebook's wall time and what its profile file says."""

    notebook: str
    wall_s: float
    fits: int
    steps: int
    train_s: float
    fixed_s: float
    eval_s: float


def read_profile(path: Path) -> dict[str, float]:
    """Fits, steps and seconds summed over the JSON lines `fit` and `predict` wrote (none: 0)."""
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    fits = [line for line in lines if "steps" in line]
    return {
        "fits": len(fits),
        "steps": sum(line["steps"] for line in fits),
        "train_s": sum(line["train_s"] for line in fits),
        "fixed_s": sum(line["fixed_s"] for line in fits),
        "eval_s": sum(line["eval_s"] for line in lines),
    }


def reports_command(notebook: Path, output_dir: Path, parameters: Sequence[Sequence[str]]):
    """The reports command building `notebook` alone, with `-p NAME VALUE` passed through."""
    passed = [part for name, value in parameters for part in ("-p", name, value)]
    command = [sys.executable, "-m", "utilities.reports", str(notebook), *passed]
    return [*command, "--jobs", "1", "--output-dir", str(output_dir)]


def run_notebook(notebook: Path, work: Path, store: Path, parameters) -> Timing | None:
    """Execute `notebook` through the reports command, profiled; None when stopped by Ctrl-C."""
    profile = work / "profile.jsonl"
    env = os.environ | {"DOTLAB_PROFILE": str(profile), "MLFLOW_TRACKING_URI": str(store)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROFILING), env.get("PYTHONPATH")]))
    command = reports_command(notebook, work / "site", parameters)
    # In a session of its own: Ctrl-C reaches it once, from `interrupt_all`, not from the terminal.
    with RUNNING_LOCK:
        if STOP.is_set():
            return None
        print(f"running {notebook.name}", file=sys.stderr)
        start = time.perf_counter()
        process = RUNNING[notebook] = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            text=True,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    _, stderr = process.communicate()
    wall = time.perf_counter() - start
    with RUNNING_LOCK:
        del RUNNING[notebook]
    if STOP.is_set():
        return None
    if process.returncode != 0:
        reason = describe_failure(stderr, process.returncode).replace(f"{notebook}: ", "")
        raise NotebookFailed(f"{notebook} failed: {reason}")
    print(f"ran {notebook.name} in {wall:.1f} s", file=sys.stderr)
    return Timing(notebook.stem, wall, **read_profile(profile))


def describe_failure(stderr: str, returncode: int) -> str:
    """The reports command's own error lines, else its last line and exit status."""
    lines = stderr.splitlines()
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    last = ([line for line in lines if line.strip()] or ["no output"])[-1]
    return "; ".join(errors) or f"{last} (exit status {returncode})"


def interrupt_all(seconds: float = 30) -> None:
    """Ctrl-C to every running reports command (which kills its kernel); killed if not done."""
    with RUNNING_LOCK:
        processes = list(RUNNING.values())
    for process in processes:
        process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + seconds
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


def run_all(notebooks: list[Path], jobs: int, parameters) -> tuple[list[Timing], float]:
    """Every notebook's timing, `jobs` at a time, in the order given; and the collection's wall
    seconds. Raises `KeyboardInterrupt` naming the notebooks stopped; `NotebookFailed` for all
    that failed, their executed copies kept in the temporary folder the errors name."""
    folder = Path(tempfile.mkdtemp(prefix="dotlab-benchmark-"))
    try:
        done, wall = run_in(folder, notebooks, jobs, parameters)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    failures = [job.exception() for job in done if job.exception()]
    if failures:
        raise NotebookFailed("\n".join(map(str, failures)))
    shutil.rmtree(folder, ignore_errors=True)
    return [job.result() for job in done], wall


def run_in(folder: Path, notebooks: list[Path], jobs: int, parameters):
    """The finished jobs running the notebooks, with their pages, profiles and MLflow store
    under `folder`; and the collection's wall seconds."""
    store, works = folder / "mlruns", make_work_dirs(folder, notebooks)
    create_store_once(sqlite_uri(store))  # as the project's store exists: not timed
    STOP.clear()
    start = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        # As the reports command does: the longest (by its saved run) first, not last.
        longest_first = sorted(notebooks, key=saved_seconds, reverse=True)
        jobs_by = {
            p: pool.submit(run_notebook, p, works[p], store, parameters) for p in longest_first
        }
        done = [jobs_by[p] for p in notebooks]
        wait_interruptibly(notebooks, done, pool)
    return done, time.perf_counter() - start


def make_work_dirs(folder: Path, notebooks: list[Path]) -> dict[Path, Path]:
    """A folder per notebook for its profile and pages (numbered: two may share a name)."""
    works = {path: folder / f"{number:02d}-{path.stem}" for number, path in enumerate(notebooks)}
    for work in works.values():
        work.mkdir()
    return works


def wait_interruptibly(notebooks: list[Path], jobs: list[Future], pool) -> None:
    """Wait for every job, waking so that Ctrl-C is handled; on Ctrl-C stop them all and raise
    `KeyboardInterrupt` naming the notebooks that had not finished."""
    try:
        while wait(jobs, timeout=0.2).not_done:
            pass
    except KeyboardInterrupt:
        STOP.set()
        pool.shutdown(wait=False, cancel_futures=True)
        interrupt_all()
        stopped = [path.name for path, job in zip(notebooks, jobs, strict=True) if not job.done()]
        stopped = stopped or [path.name for path in notebooks]
        raise KeyboardInterrupt(f"interrupted while running {', '.join(stopped)}") from None


def tabulate(timings: list[Timing]) -> pl.DataFrame:
    """One row per notebook and a total row (seconds summed over notebooks): the rest is the
    wall time outside training, fixed costs and evaluation."""
    frame = pl.DataFrame(timings)
    total = frame.drop("notebook").sum().with_columns(notebook=pl.lit("total"))
    frame = pl.concat([frame, total.select(frame.columns)])
    return frame.with_columns(
        rest_s=pl.col("wall_s") - pl.col("train_s") - pl.col("fixed_s") - pl.col("eval_s"),
        fixed_ms_per_fit=pl.when(pl.col("fits") > 0).then(pl.col("fixed_s") / pl.col("fits") * 1e3),
    )


def print_report(frame: pl.DataFrame, wall: float, cores: int) -> None:
    """The table, the shares of the total, and the one-line summary (last)."""
    with pl.Config(
        tbl_formatting="MARKDOWN",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=200,
        fmt_str_lengths=100,
        float_precision=2,
    ):
        print(frame)
    total = frame.row(-1, named=True)
    shares = ", ".join(
        f"{name} {total[column] / total['wall_s']:.0%}"
        for name, column in [
            ("training", "train_s"),
            ("fixed costs", "fixed_s"),
            ("evaluation", "eval_s"),
            ("rest", "rest_s"),
        ]
    )
    print(f"where the notebook-seconds go: {shares}")
    per_fit = total["fixed_ms_per_fit"]
    per_fit_text = "n/a" if per_fit is None else f"{per_fit:.1f}"
    print(
        f"collection: {wall:.2f} s wall on {cores} cores; {total['fits']} fits; "
        f"fixed cost per fit {per_fit_text} ms"
    )


def positive_int(text: str) -> int:
    if not text.isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        default=sorted((REPO_ROOT / "notebooks").glob("*.ipynb")),
        help="notebooks to execute (default: notebooks/*.ipynb)",
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="notebooks executed side by side (default: the CPU cores, %(default)s)",
    )
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="passed to the reports command: inject NAME = VALUE into every notebook",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    notebooks = [path.resolve() for path in args.notebooks]
    missing = [str(path) for path in notebooks if not path.is_file()]
    if missing or not notebooks:
        print(f"error: no such notebook: {', '.join(missing) or '(none given)'}", file=sys.stderr)
        raise SystemExit(2)
    try:
        timings, wall = run_all(notebooks, args.jobs, args.parameter)
    except NotebookFailed as failed:
        for line in str(failed).splitlines():
            print(f"error: {line}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt as interrupt:
        print(str(interrupt) or "interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    print_report(tabulate(timings), wall, min(args.jobs, len(notebooks)))


if __name__ == "__main__":
    main()
