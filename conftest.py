"""Test-session settings shared by the unit tests and the notebooks run under nbval."""

import os
import tempfile


def pytest_configure(config) -> None:
    """Send every run of the session, notebook kernels included, to a throwaway MLflow store."""
    store = tempfile.mkdtemp(prefix="dotlab-mlflow-")
    os.environ["MLFLOW_TRACKING_URI"] = store
    os.environ["DOTLAB_QUIET"] = "1"
    # Notebook kernels inherit this environment: a non-interactive backend would drop figures.
    os.environ.pop("MPLBACKEND", None)
