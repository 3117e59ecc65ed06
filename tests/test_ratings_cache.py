"""The Parquet copy of a downloaded release's ratings: reused, rebuilt when stale or corrupt,
and never left half-written."""

from __future__ import annotations

import os

import polars as pl
import pytest

import utilities.data as data
from utilities.data import BUNDLED_DIR, load_ratings

ROWS = [(1, 10, 4.5, 964982703), (1, 20, 3.0, 964982224), (7, 10, 0.5, 1)]
CSV = "userId,movieId,rating,timestamp\n" + "".join(f"{u},{m},{r},{t}\n" for u, m, r, t in ROWS)


@pytest.fixture
def release_dir(tmp_path):
    """An extracted ml-25m in a cache folder, as `get_dataset_dir` leaves it."""
    folder = tmp_path / "ml-25m"
    folder.mkdir()
    (folder / "ratings.csv").write_text(CSV)
    return folder


def list_files(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def forbid_csv_parsing(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("the CSV was parsed although its Parquet copy is current")

    monkeypatch.setattr(data, "read_ratings_file", fail)


def test_first_load_writes_the_copy_and_the_second_reads_it(release_dir, monkeypatch):
    first = load_ratings("ml-25m", data_dir=release_dir.parent)
    parquet = [name for name in list_files(release_dir) if name.endswith(".parquet")]
    assert len(parquet) == 1 and parquet[0].startswith("ratings.csv.")
    forbid_csv_parsing(monkeypatch)
    second = load_ratings("ml-25m", data_dir=release_dir.parent)
    assert second.equals(first) and second.rows() == ROWS
    assert second.schema == first.schema


def test_a_changed_source_rebuilds_the_copy_and_drops_the_old_one(release_dir):
    load_ratings("ml-25m", data_dir=release_dir.parent)
    source = release_dir / "ratings.csv"
    source.write_text(CSV + "9,30,2.5,5\n")
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    ratings = load_ratings("ml-25m", data_dir=release_dir.parent)
    assert ratings.rows() == [*ROWS, (9, 30, 2.5, 5)]
    assert len([n for n in list_files(release_dir) if n.endswith(".parquet")]) == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(b"PAR1 not really parquet"),
        lambda path: path.write_bytes(path.read_bytes()[:40]),  # truncated
        lambda path: pl.DataFrame({"userId": [1]}).write_parquet(path),  # another schema
    ],
    ids=["garbage", "truncated", "other-schema"],
)
def test_an_unreadable_copy_is_rebuilt_from_the_source(release_dir, damage):
    load_ratings("ml-25m", data_dir=release_dir.parent)
    parquet = next(release_dir.glob("*.parquet"))
    damage(parquet)
    assert load_ratings("ml-25m", data_dir=release_dir.parent).rows() == ROWS
    assert pl.read_parquet(parquet).rows() == ROWS


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_leaves_nothing_behind(release_dir, monkeypatch, error):
    def write_half(self, path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"PAR1 half")
        raise error

    monkeypatch.setattr(pl.DataFrame, "write_parquet", write_half)
    if isinstance(error, OSError):  # the cache is optional: the ratings still load
        assert load_ratings("ml-25m", data_dir=release_dir.parent).rows() == ROWS
    else:
        with pytest.raises(KeyboardInterrupt):
            load_ratings("ml-25m", data_dir=release_dir.parent)
    assert list_files(release_dir) == ["ratings.csv"]


def test_bundled_release_gets_no_copy():
    before = sorted(p.name for p in (BUNDLED_DIR / "ml-latest-small").iterdir())
    load_ratings("ml-latest-small")
    assert sorted(p.name for p in (BUNDLED_DIR / "ml-latest-small").iterdir()) == before


def test_a_bad_source_is_still_reported_with_its_path(release_dir):
    (release_dir / "ratings.csv").write_text("user,item\n1,2\n")
    with pytest.raises(data.DatasetError, match="ratings.csv"):
        load_ratings("ml-25m", data_dir=release_dir.parent)
    assert list_files(release_dir) == ["ratings.csv"]
