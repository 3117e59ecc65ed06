"""MovieLens data: the bundled release, each release's file format, and the id mappings."""

from __future__ import annotations

import csv
import hashlib
import os
import random
import re
import shutil
from collections import Counter

import polars as pl
import pytest

import utilities.data as data
from utilities.data import (
    BUNDLED_DIR,
    RELEASES,
    DatasetError,
    get_dataset_dir,
    keep_top_movies,
    load_movies,
    load_ratings,
    load_torch_data,
    make_id_mapping,
    read_ratings_file,
)

EXPECTED_SCHEMA = {
    "userId": pl.Int64,
    "movieId": pl.Int64,
    "rating": pl.Float64,
    "timestamp": pl.Int64,
    "userIdMapped": pl.UInt32,
    "movieIdMapped": pl.UInt32,
}


# ---------------------------------------------------------------- the bundled ml-latest-small


def test_bundled_files_match_their_sha256sums():
    lines = (BUNDLED_DIR / "SHA256SUMS").read_text().splitlines()
    listed = dict(reversed(line.split(maxsplit=1)) for line in lines if line.strip())
    assert {"ml-latest-small/ratings.csv", "ml-latest-small/movies.csv"} <= set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((BUNDLED_DIR / name).read_bytes()).hexdigest() == digest, name


def test_bundled_release_is_used_without_download(tmp_path):
    folder = get_dataset_dir("ml-latest-small", data_dir=tmp_path)
    assert folder == BUNDLED_DIR / "ml-latest-small"
    assert list(tmp_path.iterdir()) == []


def test_bundled_counts(bundled):
    ratings, users, movies = bundled
    assert ratings.height == 100_836
    assert users.height == ratings.get_column("userId").n_unique() == 610
    assert movies.height == ratings.get_column("movieId").n_unique() == 9_724
    assert load_movies().height == 9_742


def test_bundled_ratings_agree_with_the_csv_module(bundled_ratings):
    with open(BUNDLED_DIR / "ml-latest-small" / "ratings.csv", newline="") as file:
        header, *rows = list(csv.reader(file))
    assert header == ["userId", "movieId", "rating", "timestamp"]
    expected = [(int(u), int(m), float(r), int(t)) for u, m, r, t in rows]
    loaded = bundled_ratings.select("userId", "movieId", "rating", "timestamp").rows()
    assert loaded == expected  # same values, same order as the file
    assert load_ratings().rows() == expected


def test_bundled_movies_agree_with_the_csv_module():
    with open(BUNDLED_DIR / "ml-latest-small" / "movies.csv", newline="", encoding="utf-8") as file:
        header, *rows = list(csv.reader(file))
    assert header[:2] == ["movieId", "title"]
    movies = load_movies()
    assert movies.columns == ["movieId", "title"]
    assert movies.schema["movieId"] == pl.Int64
    assert movies.rows() == [(int(row[0]), row[1]) for row in rows]
    assert any("," in title for _, title in movies.rows())  # quoted titles parsed whole
    assert movies.row(0) == (1, "Toy Story (1995)")


def test_every_rated_movie_is_in_the_movie_table(bundled):
    rated = set(bundled[2].get_column("movieId"))
    listed = set(load_movies().get_column("movieId"))
    assert rated <= listed
    assert len(listed - rated) == 9_742 - 9_724


def test_dtypes_are_exact(bundled):
    ratings, users, movies = bundled
    assert dict(ratings.schema) == EXPECTED_SCHEMA
    assert dict(users.schema) == {"userId": pl.Int64, "userIdMapped": pl.UInt32}
    assert dict(movies.schema) == {"movieId": pl.Int64, "movieIdMapped": pl.UInt32}


@pytest.mark.parametrize("column", ["userId", "movieId"])
def test_mapping_is_contiguous_sorted_and_round_trips(bundled, column):
    ratings, users, movies = bundled
    mapping = users if column == "userId" else movies
    mapped = f"{column}Mapped"
    # contiguous from 0, in the order of the sorted original ids
    assert mapping.get_column(mapped).to_list() == list(range(mapping.height))
    assert mapping.get_column(column).to_list() == sorted(set(ratings.get_column(column)))
    # the mapped id is the dense rank of the original id, computed a second way
    rank = ratings.get_column(column).rank("dense").cast(pl.Int64) - 1
    assert (ratings.get_column(mapped).cast(pl.Int64) == rank).all()
    # joining the mapping back on the mapped id recovers the original id, row by row
    back = ratings.select(mapped).join(
        mapping.rename({column: "recovered"}), on=mapped, how="left", maintain_order="left"
    )
    assert back.get_column("recovered").to_list() == ratings.get_column(column).to_list()
    assert ratings.get_column(mapped).null_count() == 0


def test_make_id_mapping_on_a_tiny_frame():
    frame = pl.DataFrame({"userId": [30, 10, 30, 20, 10]})
    mapping = make_id_mapping(frame, "userId")
    assert mapping.rows() == [(10, 0), (20, 1), (30, 2)]
    assert mapping.schema["userIdMapped"] == pl.UInt32


# ---------------------------------------------------------------- top-n movies


def test_top_n_movies_keeps_the_most_rated(bundled_ratings):
    counts = Counter(bundled_ratings.get_column("movieId").to_list())
    ranked = sorted(counts, key=lambda movie: (-counts[movie], movie))
    expected = set(ranked[:50])

    ratings, users, movies = load_torch_data(top_n_movies=50)
    assert movies.height == 50
    assert set(ratings.get_column("movieId")) == set(movies.get_column("movieId")) == expected
    assert ratings.height == sum(counts[movie] for movie in expected)
    # nothing left out was rated more often than anything kept
    assert min(counts[m] for m in expected) >= max(counts[m] for m in ranked[50:])
    # the mappings are rebuilt on the kept rows: contiguous again
    assert sorted(set(ratings.get_column("movieIdMapped"))) == list(range(50))
    assert sorted(set(ratings.get_column("userIdMapped"))) == list(range(users.height))
    assert users.height == ratings.get_column("userId").n_unique()
    # the kept rows are the original rows, in the original order
    original = bundled_ratings.filter(pl.col("movieId").is_in(list(expected)))
    assert ratings.select(original.columns[:4]).equals(original.select(original.columns[:4]))
    assert dict(ratings.schema) == EXPECTED_SCHEMA


def test_keep_top_movies_breaks_ties_by_smaller_movie_id():
    ratings = pl.DataFrame({"userId": [1, 2, 1, 2, 1, 1], "movieId": [7, 7, 5, 5, 9, 3]})
    assert set(keep_top_movies(ratings, 1).get_column("movieId")) == {5}
    assert set(keep_top_movies(ratings, 2).get_column("movieId")) == {5, 7}
    assert set(keep_top_movies(ratings, 3).get_column("movieId")) == {3, 5, 7}
    with pytest.warns(UserWarning, match="kept all 4"):
        assert keep_top_movies(ratings, 100).equals(ratings)


@pytest.mark.parametrize("top_n", [0, -5, 2.5, 50.0, "50", True])
def test_top_n_movies_must_be_a_positive_whole_number(top_n):
    with pytest.raises(DatasetError, match=f"top_n_movies.*got {re.escape(repr(top_n))}"):
        load_torch_data(top_n_movies=top_n)


def test_top_n_movies_beyond_the_movies_rated_warns_once_and_keeps_all(bundled):
    movies = bundled[2].height
    with pytest.warns(UserWarning) as caught:
        ratings, _, kept = load_torch_data(top_n_movies=10**9)
    assert [str(w.message) for w in caught] == [
        f"top_n_movies=1000000000 is more than the {movies} movies rated; kept all {movies}."
    ]
    assert caught[0].filename == __file__  # points at the caller
    assert kept.height == movies and ratings.height == bundled[0].height


# ---------------------------------------------------------------- the registry


def test_unknown_dataset_names_itself_and_the_known_ones():
    with pytest.raises(DatasetError) as caught:
        load_torch_data("ml-5m")
    message = str(caught.value)
    assert "'ml-5m'" in message
    for name in RELEASES:
        assert name in message


def test_registry_formats():
    formats = {name: (r.ratings_file, r.ratings_format) for name, r in RELEASES.items()}
    assert formats["ml-latest-small"] == ("ratings.csv", "csv")
    assert formats["ml-100k"] == ("u.data", "tab")
    assert formats["ml-1m"] == ("ratings.dat", "double-colon")
    assert formats["ml-25m"] == ("ratings.csv", "csv")
    assert [name for name, r in RELEASES.items() if r.bundled] == ["ml-latest-small"]


# ---------------------------------------------------------------- each format, by hand

ROWS = [(1, 10, 4.5, 964982703), (1, 20, 3.0, 964982224), (7, 10, 0.5, 1)]


def write_rows(ratings_format: str, rows, newline: str = "\n") -> bytes:
    """The rows written the way the release that uses this format writes them."""
    if ratings_format == "csv":
        lines = ["userId,movieId,rating,timestamp"] + [f"{u},{m},{r},{t}" for u, m, r, t in rows]
    elif ratings_format == "tab":
        lines = [f"{u}\t{m}\t{r:g}\t{t}" for u, m, r, t in rows]
    else:
        lines = [f"{u}::{m}::{r:g}::{t}" for u, m, r, t in rows]
    return "".join(line + newline for line in lines).encode()


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize(
    ("dataset", "ratings_format"),
    [("ml-25m", "csv"), ("ml-100k", "tab"), ("ml-1m", "double-colon")],
)
def test_each_release_reads_its_own_format(tmp_path, dataset, ratings_format, newline):
    release = RELEASES[dataset]
    folder = tmp_path / dataset
    folder.mkdir()
    (folder / release.ratings_file).write_bytes(write_rows(ratings_format, ROWS, newline))
    ratings = load_ratings(dataset, data_dir=tmp_path)  # found in the cache: no download
    assert ratings.rows() == ROWS
    assert dict(ratings.schema) == {k: EXPECTED_SCHEMA[k] for k in list(EXPECTED_SCHEMA)[:4]}


def test_three_formats_agree_on_random_ratings(tmp_path):
    rng = random.Random(0)
    rows = [
        (
            rng.randrange(1, 10**6),
            rng.randrange(1, 10**6),
            rng.randrange(1, 11) / 2,
            rng.randrange(0, 2**40),
        )
        for _ in range(2_000)
    ]
    frames = []
    for ratings_format in ("csv", "tab", "double-colon"):
        for newline in ("\n", "\r\n"):
            path = tmp_path / f"{ratings_format}{len(newline)}"
            path.write_bytes(write_rows(ratings_format, rows, newline))
            frames.append(read_ratings_file(path, ratings_format))
    assert frames[0].rows() == rows
    for frame in frames[1:]:
        assert frame.equals(frames[0])


def test_u_item_and_movies_dat_titles(tmp_path):
    for dataset, text in [
        ("ml-100k", "1|Toy Story (1995)|01-Jan-1995||http://x|0|1\n2|Misérables, Les (1995)|x\n"),
        ("ml-1m", "1::Toy Story (1995)::Animation\r\n2::Misérables, Les (1995)::Drama\r\n"),
    ]:
        release = RELEASES[dataset]
        folder = tmp_path / dataset
        folder.mkdir()
        (folder / release.ratings_file).write_bytes(write_rows(release.ratings_format, ROWS))
        (folder / release.movies_file).write_bytes(text.encode("latin-1"))
        movies = load_movies(dataset, data_dir=tmp_path)
        assert movies.rows() == [(1, "Toy Story (1995)"), (2, "Misérables, Les (1995)")]
        assert movies.schema["movieId"] == pl.Int64


# ---------------------------------------------------------------- malformed files

EXPECTED_LAYOUT = {
    "csv": "userId,movieId,rating,timestamp",
    "tab": "tab-separated",
    "double-colon": "UserID::MovieID::Rating::Timestamp",
}

MALFORMED = [
    # (format, content, what the message must say)
    ("csv", "user,item,rating,ts\n1,10,4.5,100\n", "['user', 'item', 'rating', 'ts']"),
    ("csv", "1,10,4.5,100\n2,20,3,200\n", "columns are"),  # no header
    ("csv", "userId,movieId,rating\n1,10,4.5\n", "columns are"),
    ("csv", "userId,movieId,rating,timestamp,x\n1,10,4.5,100,1\n", "columns are"),
    ("csv", "userId,movieId,rating,timestamp\n1,abc,4.5,100\n", "abc"),
    ("csv", "userId,movieId,rating,timestamp\n1,10,4.5,100,7\n", "more fields"),
    ("csv", "userId\tmovieId\trating\ttimestamp\n1\t10\t4.5\t100\n", "columns are"),
    ("csv", "", "empty"),
    ("tab", "1\t10\t4\n2\t20\t3\n", "not found"),
    ("tab", "1\t10\t4\t100\t5\n", "not specified"),
    ("tab", "1\t10\t4\t100\n2\t20\t3\t200\t9\n", "more fields"),
    ("tab", "1\tx\t4\t100\n", "`x`"),
    ("tab", "1.5\t10\t4\t100\n", "1.5"),
    ("tab", "1,10,4,100\n", "not found"),
    ("tab", "user\titem\trating\tts\n1\t10\t4\t100\n", "user"),
    ("double-colon", "1\t10\t4\t100\n", "expected 7"),
    ("double-colon", "1::10::4::100\n2::20::3::200::5\n", "more fields"),
    ("double-colon", "1::x::4::100\n", '"x"'),
    ("double-colon", "1:10:4:100:5:6:7\n", "single ':'"),
    ("double-colon", "", "empty"),
]


@pytest.mark.parametrize(("ratings_format", "content", "detail"), MALFORMED)
def test_malformed_file_names_path_and_expected_layout(tmp_path, ratings_format, content, detail):
    path = tmp_path / "ratings-file"
    path.write_text(content)
    with pytest.raises(DatasetError) as caught:
        read_ratings_file(path, ratings_format)
    message = str(caught.value)
    assert str(path) in message
    assert EXPECTED_LAYOUT[ratings_format] in message
    assert detail in message


@pytest.mark.parametrize(
    ("ratings_format", "content", "detail"),
    [
        ("csv", "userId,movieId,rating,timestamp\n", "holds no ratings"),
        ("tab", "", "holds no ratings"),
        ("csv", "userId,movieId,rating,timestamp\n1,10,,100\n2,20,3,200\n", "1 missing values"),
        ("csv", "userId,movieId,rating,timestamp\n1,10,4\n", "1 missing values"),  # ragged, short
        ("tab", "1\t\t4\t100\n2\t20\t3\n", "2 missing values"),
        ("double-colon", "1::::4::100\n", "1 missing values"),
        ("double-colon", "1::10::4::100\n2::20::3\n", "1 missing values"),
    ],
)
def test_empty_or_incomplete_file(tmp_path, ratings_format, content, detail):
    path = tmp_path / "ratings-file"
    path.write_text(content)
    with pytest.raises(DatasetError) as caught:
        read_ratings_file(path, ratings_format)
    assert str(path) in str(caught.value)
    assert detail in str(caught.value)


def test_missing_ratings_file(tmp_path):
    path = tmp_path / "nowhere" / "u.data"
    with pytest.raises(DatasetError, match="does not exist") as caught:
        read_ratings_file(path, "tab")
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("inside", [False, True])
def test_a_data_dir_setting_naming_a_file_is_one_line(tmp_path, monkeypatch, inside):
    """A file where the cache folder should be: one line naming it, not a FileExistsError."""
    (tmp_path / "file").write_text("not a folder")
    setting = tmp_path / "file" / "sub" if inside else tmp_path / "file"
    monkeypatch.setenv("DOTLAB_DATA_DIR", str(setting))
    with pytest.raises(DatasetError) as caught:
        get_dataset_dir("ml-100k", base_url="http://0.0.0.0/")
    assert str(caught.value) == (
        f"DOTLAB_DATA_DIR={setting} is not a folder: set it to a folder where datasets can be "
        "cached."
    )
    assert (tmp_path / "file").read_text() == "not a folder"


def test_dataset_error_is_a_value_error():
    # Callers that catch ValueError for bad input keep working.
    assert issubclass(DatasetError, ValueError)
    assert data.DownloadError is not DatasetError


ML_100K_COPY = os.environ.get("DOTLAB_ML100K_COPY")


@pytest.mark.skipif(
    not ML_100K_COPY,
    reason="ml-100k is not bundled (its licence forbids redistribution); set DOTLAB_ML100K_COPY "
    "to a folder holding GroupLens' ml-100k files to test the real u.data and u.item",
)
def test_real_ml_100k_placed_by_hand(tmp_path):
    """GroupLens' own u.data and u.item, placed in the cache as a user without internet would."""
    shutil.copytree(ML_100K_COPY, tmp_path / "ml-100k")
    ratings, users, movies = load_torch_data(
        "ml-100k", data_dir=tmp_path, base_url="http://0.0.0.0/"
    )
    assert (ratings.height, users.height, movies.height) == (100_000, 943, 1_682)
    assert ratings.get_column("rating").unique().sort().to_list() == [1.0, 2.0, 3.0, 4.0, 5.0]
    titles = load_movies("ml-100k", data_dir=tmp_path, base_url="http://0.0.0.0/")
    assert titles.height == 1_682
    assert titles.row(0) == (1, "Toy Story (1995)")
