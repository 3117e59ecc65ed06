"""Test-session settings shared by the unit tests and the notebooks run under nbval."""

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

MLFLOW_STORE = pytest.StashKey[str]()
# The session's store, handed from pytest-xdist's controller to its workers through the
# environment, so that every notebook of the session logs to one store.
SESSION_STORE = "DOTLAB_TEST_MLFLOW_STORE"
# MLflow's generated run names ("overjoyed-slug-911") are two words and a number.
GENERATED = re.compile(r"^[a-z]+-[a-z]+-\d+$")


def pytest_configure(config: pytest.Config) -> None:
    """Send every run of the session, notebook kernels included, to a throwaway MLflow store."""
    store = os.environ.get(SESSION_STORE) if os.environ.get("PYTEST_XDIST_WORKER") else None
    if store is None:  # the controller (or a run without workers) owns the store
        store = config.stash[MLFLOW_STORE] = tempfile.mkdtemp(prefix="dotlab-mlflow-")
        os.environ[SESSION_STORE] = store
    os.environ["MLFLOW_TRACKING_URI"] = store
    os.environ["DOTLAB_QUIET"] = "1"
    # Notebooks run side by side (pytest-xdist): spinning OpenMP threads would starve each other.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Notebook kernels inherit this environment: a non-interactive backend would drop figures.
    os.environ.pop("MPLBACKEND", None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Notebooks first, the longest by its saved run first, as the report build orders them, so
    that pytest-xdist's workers end together instead of one starting notebook 08 as the other runs
    out of work (pyproject's --no-loadscope-reorder keeps this order). A stable sort: each file's
    items, and the unit tests after the notebooks, keep their order."""
    from utilities.reports import saved_seconds

    seconds = {
        path: saved_seconds(path) for path in {i.path for i in items if i.path.suffix == ".ipynb"}
    }
    items.sort(key=lambda item: -seconds.get(item.path, 0.0))


def notebook_run_names(store: str) -> list[tuple[str, str]]:
    """Every run the notebooks (experiments named `NN_...`) logged to `store`, as (experiment,
    run name): a name has to be distinct within its notebook's experiment only."""
    from mlflow import MlflowClient

    from utilities.tracking import sqlite_uri

    client = MlflowClient(sqlite_uri(Path(store)))
    experiments = {e.experiment_id: e.name for e in client.search_experiments()}
    notebooks = [key for key, name in experiments.items() if name[:2].isdigit()]
    runs = client.search_runs(notebooks, max_results=50_000) if notebooks else []
    return [(experiments[run.info.experiment_id], run.info.run_name) for run in runs]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Once every notebook has run (in any worker): their runs have distinct, descriptive names."""
    if MLFLOW_STORE not in session.config.stash or exitstatus != 0:
        return
    names = notebook_run_names(session.config.stash[MLFLOW_STORE])
    repeated = sorted({name for name in names if names.count(name) > 1})
    generated = [name for _, name in names if GENERATED.match(name)]
    if repeated or generated:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.ensure_newline()
        reporter.write_line(
            f"notebook runs need distinct, descriptive names: repeated {repeated}, "
            f"generated {generated}",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's store once every test and notebook kernel is done with it."""
    if MLFLOW_STORE in config.stash:
        shutil.rmtree(config.stash[MLFLOW_STORE], ignore_errors=True)
