"""Test-session settings shared by the unit tests and the notebooks run under nbval."""

import os
import shutil
import tempfile

import pytest

MLFLOW_STORE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Send every run of the session, notebook kernels included, to a throwaway MLflow store."""
    store = config.stash[MLFLOW_STORE] = tempfile.mkdtemp(prefix="dotlab-mlflow-")
    os.environ["MLFLOW_TRACKING_URI"] = store
    os.environ["DOTLAB_QUIET"] = "1"
    # Notebooks run side by side (pytest-xdist): spinning OpenMP threads would starve each other.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Notebook kernels inherit this environment: a non-interactive backend would drop figures.
    os.environ.pop("MPLBACKEND", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's store once every test and notebook kernel is done with it."""
    if MLFLOW_STORE in config.stash:
        shutil.rmtree(config.stash[MLFLOW_STORE], ignore_errors=True)
