"""Smoke test of the MLflow UI on a store `fit` wrote: `mlflow ui` on 127.0.0.1 serves the
experiments and runs (with their metrics) through its REST API, and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import torch

from utilities.models import DotProductMLP
from utilities.synthetic import make_vector_pairs
from utilities.tracking import FINAL_KEYS, get_tracking_uri
from utilities.training import Fit, fit

EXPERIMENTS = ("01_dot_product_mlp", "02_shallow_vs_deep")
STARTUP_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def module_store(tmp_path_factory):
    """A store of this module's own: notebooks run beside these tests (pytest-xdist) log
    hundreds of runs into the session's store, under the same experiment names."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", str(tmp_path_factory.mktemp("ui-store")))
        yield


@pytest.fixture(scope="module")
def logged_runs(module_store) -> dict[str, Fit]:
    """One real training run per experiment in the module's store: experiment name -> fit."""
    runs = {}
    for seed, experiment in enumerate(EXPERIMENTS):
        pairs = make_vector_pairs(128, 2, generator=torch.Generator().manual_seed(seed))
        model = DotProductMLP(2, [8])
        runs[experiment] = fit(
            model, pairs, epochs=2, lr=0.01, batch_size=64, experiment=experiment,
            run_name=f"mlflow ui test · {experiment}", accelerator="cpu",
        )  # fmt: skip
    return runs


def wait_until_serving(server: subprocess.Popen, url: str) -> float:
    """Seconds until `url` answers; fails with the server's output if it exits or times out."""
    start = time.monotonic()
    while time.monotonic() - start < STARTUP_TIMEOUT_S:
        if server.poll() is not None:
            pytest.fail(f"mlflow ui exited with {server.returncode}:\n{server.stdout.read()}")
        try:
            if requests.get(url, timeout=2).ok:
                return time.monotonic() - start
        except requests.ConnectionError:
            time.sleep(0.25)
    pytest.fail(f"mlflow ui did not answer {url} within {STARTUP_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def ui(logged_runs, tmp_path_factory):
    """`mlflow ui` on a free port of 127.0.0.1 over the store; its base URL. Always stopped."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", get_tracking_uri(), "--workers", "1"]
    server = subprocess.Popen(
        command,
        cwd=tmp_path_factory.mktemp("ui-cwd"),  # anything it writes lands here
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: stopping it stops its workers too
    )
    try:
        base = f"http://127.0.0.1:{port}"
        startup_s = wait_until_serving(server, f"{base}/health")
        print(f"mlflow ui answered after {startup_s:.1f} s")
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        server.stdout.close()


def post(url: str, body: dict) -> dict:
    response = requests.post(url, json=body, timeout=10)
    assert response.ok, f"{url}: {response.status_code} {response.text[:500]}"
    return response.json()


def test_the_ui_serves_the_experiments_and_their_runs(ui, logged_runs):
    found = post(f"{ui}/api/2.0/mlflow/experiments/search", {"max_results": 100})["experiments"]
    ids = {e["name"]: e["experiment_id"] for e in found}
    assert set(EXPERIMENTS) <= set(ids)
    for experiment in EXPERIMENTS:
        body = {"experiment_ids": [ids[experiment]], "max_results": 100}
        runs = post(f"{ui}/api/2.0/mlflow/runs/search", body)["runs"]
        fitted = logged_runs[experiment]
        assert [run["info"]["run_id"] for run in runs] == [fitted.run_id]
        info, data = runs[0]["info"], runs[0]["data"]
        assert info["status"] == "FINISHED"
        metrics = {m["key"]: m["value"] for m in data["metrics"]}
        final = {FINAL_KEYS.get(key, key): value for key, value in fitted.metrics.items()}
        last_epoch = {key: fitted.history.item(-1, key) for key in fitted.history.columns[1:]}
        assert metrics == pytest.approx(final | last_epoch)  # the epochs' series end at the last
        assert metrics["epochs_run"] == 2
        params = {p["key"]: p["value"] for p in data["params"]}
        assert (params["lr"], params["model"]) == ("0.01", "DotProductMLP")


def test_the_ui_serves_its_web_page(ui):
    response = requests.get(ui, timeout=10)
    assert response.ok and "<html" in response.text.lower()
