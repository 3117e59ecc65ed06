"""Fixtures shared by the unit tests: the bundled ratings loaded once, a fresh MLflow store per
test that asks for one, and guards that keep every test away from the project's own store, the
working directory and the user's cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from utilities.data import load_torch_data

REPO_ROOT = Path(__file__).resolve().parents[1]


def tree_listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.fixture(scope="session", autouse=True)
def project_store_untouched():
    """No test may write into <repo>/mlruns (the root conftest points MLflow elsewhere)."""
    store = REPO_ROOT / "mlruns"
    before = tree_listing(store) if store.exists() else None
    yield
    after = tree_listing(store) if store.exists() else None
    assert after == before, f"tests wrote into {store}"


@pytest.fixture(scope="session", autouse=True)
def no_stray_training_output():
    """Trainers in tests write under tmp_path, not into the working directory."""
    stray = [Path.cwd() / name for name in ("lightning_logs", "checkpoints")]
    existed = [path.exists() for path in stray]
    yield
    assert [path.exists() for path in stray] == existed, "a test wrote training output into cwd"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """A download that forgets `data_dir` lands in a throwaway folder, never the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOTLAB_DATA_DIR", str(tmp_path_factory.mktemp("dotlab-cache")))
        yield


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)


@pytest.fixture(scope="session")
def bundled():
    """`load_torch_data()` on the bundled ml-latest-small: ratings, user and movie mappings."""
    return load_torch_data()


@pytest.fixture(scope="session")
def bundled_ratings(bundled):
    return bundled[0]


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A fresh MLflow store for this test alone (the session's store is shared by every test)."""
    folder = tmp_path / "mlflow-store"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(folder))
    return folder
