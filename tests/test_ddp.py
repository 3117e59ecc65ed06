"""`fit` on two CPU processes (DDP over gloo) trains the model one process would: each process
takes its share of every batch, the gradients are averaged, one MLflow run is recorded."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from utilities.tracking import get_client

SCRIPT = Path(__file__).with_name("ddp_fit.py")
# Two processes add up gradients and losses in another order than one does, and the last batch
# splits unevenly between them: losses measured to differ by ~1e-6 after three epochs.
TOLERANCE = 1e-4
# Adam divides by each weight's gradient size, which lets those 1e-6 grow in rarely rated
# movies' rows: measured at most 2.6e-4 (weights up to 1.0) after three epochs.
WEIGHT_TOLERANCE = 1e-3


def run_script(out: Path, devices: int) -> list[dict]:
    """What each process of `tests/ddp_fit.py --devices N` reported and its weights, by rank."""
    subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--devices", str(devices)],
        check=True,
        timeout=120,
        cwd=SCRIPT.parents[1],
    )
    return [
        json.loads((out / f"rank{rank}.json").read_text())
        | {"weights": torch.load(out / f"rank{rank}.pt")}
        for rank in range(devices)
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, list[dict]]:
    """The same fit on one process and on two, each process's report."""
    folder = tmp_path_factory.mktemp("ddp")
    return {devices: run_script(folder / str(devices), devices) for devices in (1, 2)}


def test_processes_agree(runs):
    first, second = runs[2]
    assert first["history"] == second["history"]  # the losses are summed over both processes
    for name, weights in first["weights"].items():  # averaged gradients keep the copies equal
        assert torch.equal(weights, second["weights"][name]), name
    assert first["val_mse"] == second["val_mse"]


def test_two_processes_train_as_one(runs):
    (single,), (distributed, _) = runs[1], runs[2]
    assert len(single["history"]) == len(distributed["history"]) == 3
    for one, two in zip(single["history"], distributed["history"], strict=True):
        assert one["train_loss"] == pytest.approx(two["train_loss"], abs=TOLERANCE)
        assert one["val_loss"] == pytest.approx(two["val_loss"], abs=TOLERANCE)
    assert single["val_mse"] == pytest.approx(distributed["val_mse"], abs=TOLERANCE)
    for name, weights in single["weights"].items():
        difference = (weights - distributed["weights"][name]).abs().max().item()
        assert difference < WEIGHT_TOLERANCE, (name, difference)


def test_only_the_first_process_records(runs):
    first, second = runs[2]
    assert first["run_id"] is not None and second["run_id"] is None
    client = get_client()
    run = client.get_run(first["run_id"])
    assert run.data.params["processes"] == "2"
    assert run.info.status == "FINISHED"
    names = [r.info.run_name for r in client.search_runs([run.info.experiment_id])]
    assert names.count("DotProductBias on 2 process(es)") == 1
