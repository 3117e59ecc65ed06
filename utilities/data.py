"""MovieLens: which releases exist, where their files live, and how each one's format is read."""

from __future__ import annotations

import numbers
import os
import re
import shutil
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pooch
import requests

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/"
BUNDLED_DIR = Path(__file__).parent / "datasets"
RATINGS_SCHEMA = {
    "userId": pl.Int64,
    "movieId": pl.Int64,
    "rating": pl.Float64,
    "timestamp": pl.Int64,
}


class DatasetError(ValueError):
    """A dataset name, file or archive that cannot be used as asked."""


class DownloadError(RuntimeError):
    """A MovieLens archive that could not be downloaded or verified."""


@dataclass(frozen=True)
class MovieLensRelease:
    """One MovieLens release: its archive, its ratings file and that file's format."""

    name: str
    ratings_file: str
    ratings_format: str  # "csv" (header), "tab" (u.data) or "double-colon" (ratings.dat)
    movies_file: str
    md5: str | None = None  # published archive MD5; None: read the .md5 served beside it
    bundled: bool = False

    @property
    def archive_name(self) -> str:
        return f"{self.name}.zip"


RELEASES = {
    release.name: release
    for release in [
        MovieLensRelease("ml-latest-small", "ratings.csv", "csv", "movies.csv", bundled=True),
        MovieLensRelease(
            "ml-100k", "u.data", "tab", "u.item", md5="0e33842e24a9c977be4e0107933c0723"
        ),
        MovieLensRelease(
            "ml-1m",
            "ratings.dat",
            "double-colon",
            "movies.dat",
            md5="c4d9eecfca2ab87c1945afe126590906",
        ),
        MovieLensRelease("ml-20m", "ratings.csv", "csv", "movies.csv"),
        MovieLensRelease(
            "ml-25m", "ratings.csv", "csv", "movies.csv", md5="6b51fb2759a8657d3bfcbfc42b592ada"
        ),
        MovieLensRelease("ml-32m", "ratings.csv", "csv", "movies.csv"),
    ]
}


def get_release(dataset: str) -> MovieLensRelease:
    """Look a release up by name, with an error that lists the known names."""
    try:
        return RELEASES[dataset]
    except KeyError:
        known = ", ".join(RELEASES)
        raise DatasetError(
            f"Unknown MovieLens dataset {dataset!r}; expected one of: {known}."
        ) from None


def get_cache_dir() -> Path:
    """Where downloaded releases are kept: `DOTLAB_DATA_DIR`, else the user's cache directory."""
    setting = os.environ.get("DOTLAB_DATA_DIR")
    if setting:
        check_data_dir_setting(setting)
    return Path(setting or pooch.os_cache("dotlab"))


def check_data_dir_setting(setting: str) -> None:
    """Raise, in one line, where `DOTLAB_DATA_DIR` names a file (or a path inside one)."""
    path = Path(setting)
    if any(part.exists() and not part.is_dir() for part in (path, *path.parents)):
        raise DatasetError(
            f"DOTLAB_DATA_DIR={setting} is not a folder: set it to a folder where datasets can "
            "be cached."
        )


def get_dataset_dir(
    dataset: str = "ml-latest-small",
    *,
    download: bool = False,
    data_dir: str | os.PathLike | None = None,
    base_url: str = GROUPLENS_URL,
) -> Path:
    """Folder holding a release's files: the bundled copy, else the cache (downloading once).

    `download=True` fetches a fresh copy from GroupLens even where one is bundled.
    """
    release = get_release(dataset)
    if release.bundled and not download:
        return BUNDLED_DIR / release.name
    cache_dir = Path(data_dir) if data_dir is not None else get_cache_dir()
    target = cache_dir / release.name
    if not download and (target / release.ratings_file).is_file():
        return target
    archive = fetch_archive(release, cache_dir, base_url, refresh=download)
    extract_members(archive, release, cache_dir)
    return target


def fetch_archive(
    release: MovieLensRelease, cache_dir: Path, base_url: str, *, refresh: bool = False
) -> Path:
    """Download and verify a release's zip archive into `cache_dir` (kept; reused when it matches).

    `refresh=True` asks the server for the current MD5 of a release that has no published one.
    """
    url = base_url.rstrip("/") + "/" + release.archive_name
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / release.archive_name
    saved_md5 = cache_dir / f"{release.archive_name}.md5"
    if refresh:
        saved_md5.unlink(missing_ok=True)
    try:
        md5 = release.md5 or get_published_md5(url, saved_md5)
        if archive.is_file():
            check_cached_archive(archive, md5)
        else:
            pooch.retrieve(url, f"md5:{md5}", release.archive_name, cache_dir, progressbar=True)
    except (requests.RequestException, ValueError, OSError) as error:
        by_hand = f"{archive}" + ("" if release.md5 else f" with its {saved_md5.name} beside it")
        raise DownloadError(
            f"Could not download {url} ({describe_error(error)}); check the connection and run "
            f"again (a partial download is never kept), or download the archive yourself and "
            f"place it at {by_hand}."
        ) from error
    if not release.md5:
        saved_md5.write_text(md5 + "\n")  # only once the archive matched it
    return archive


def check_cached_archive(archive: Path, md5: str) -> None:
    """Raise when `archive` does not match `md5`, moving it aside so the next call downloads
    the archive afresh (the bad copy is kept for a look, never deleted silently)."""
    actual = pooch.file_hash(str(archive), alg="md5")
    if actual != md5:
        aside = archive.with_name(f"{archive.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(archive, aside)
        raise DownloadError(
            f"{archive} fails its checksum: expected MD5 {md5}, got {actual}. Moved it aside "
            f"to {aside.name}; run again to download the archive afresh."
        )


def describe_error(error: BaseException) -> str:
    """What went wrong, in one line: the HTTP status, else the innermost error's message."""
    response = getattr(error, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} {response.reason}"
    while error.__cause__ or error.__context__:
        error = error.__cause__ or error.__context__
    return (str(error) or type(error).__name__).splitlines()[0]


def get_published_md5(url: str, saved: Path) -> str:
    """The MD5 GroupLens serves beside an archive (`<archive>.md5`), or the one saved with the
    cached archive, so that a cached release loads without going online."""
    if saved.is_file() and saved.with_suffix("").is_file():
        return parse_md5(saved.read_text(), str(saved))
    response = requests.get(url + ".md5", timeout=30)
    response.raise_for_status()
    return parse_md5(response.text, url + ".md5")


def parse_md5(text: str, source: str) -> str:
    """The first 32-hex-digit checksum in `text`, lower-cased; `source` names it in errors."""
    match = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if match is None:
        raise ValueError(f"{source} holds no MD5 checksum: {text[:80]!r}")
    return match.group(0).lower()


def extract_members(archive: Path, release: MovieLensRelease, cache_dir: Path) -> None:
    """Extract the ratings and movies files, each written whole or not at all."""
    target = cache_dir / release.name
    target.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zipped:
            # The ratings file goes last: `get_dataset_dir` takes its presence to mean "extracted".
            for member in (release.movies_file, release.ratings_file):
                extract_atomically(zipped, f"{release.name}/{member}", target / member)
    except (zipfile.BadZipFile, KeyError) as error:
        raise DatasetError(
            f"{archive} is not a {release.name} archive as GroupLens ships it ({error}); "
            "delete it and run again to download it afresh."
        ) from error


def extract_atomically(zipped: zipfile.ZipFile, member: str, destination: Path) -> None:
    """Copy one archive member to `destination` through a temporary file and a rename."""
    with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False) as temporary:
        try:
            with zipped.open(member) as source:
                shutil.copyfileobj(source, temporary, length=1 << 20)
        except BaseException:
            temporary.close()
            os.unlink(temporary.name)
            raise
    os.replace(temporary.name, destination)


def read_ratings_file(path: str | os.PathLike, ratings_format: str) -> pl.DataFrame:
    """Read a MovieLens ratings file into `userId`, `movieId`, `rating`, `timestamp`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"Ratings file {path} does not exist.")
    readers = {"csv": read_csv_ratings, "tab": read_tab_ratings, "double-colon": read_dat_ratings}
    try:
        ratings = readers[ratings_format](path)
    except (pl.exceptions.PolarsError, ValueError) as error:
        raise DatasetError(
            f"{path} is not a MovieLens ratings file in the {ratings_format!r} format "
            f"(expected {FORMAT_DESCRIPTIONS[ratings_format]}): {error}"
        ) from error
    check_ratings(ratings, path)
    return ratings


FORMAT_DESCRIPTIONS = {
    "csv": "a header userId,movieId,rating,timestamp and comma-separated rows",
    "tab": "tab-separated rows user, item, rating, timestamp without a header",
    "double-colon": "rows UserID::MovieID::Rating::Timestamp",
}


def read_csv_ratings(path: Path) -> pl.DataFrame:
    """A `ratings.csv` (with a header), as `read_ratings_file` returns it."""
    ratings = pl.read_csv(path, schema_overrides=RATINGS_SCHEMA)
    if ratings.columns != list(RATINGS_SCHEMA):
        raise ValueError(f"columns are {ratings.columns}")
    return ratings


def read_tab_ratings(path: Path) -> pl.DataFrame:
    """ml-100k's tab-separated `u.data` (no header)."""
    return pl.read_csv(
        path, separator="\t", has_header=False, schema=RATINGS_SCHEMA, truncate_ragged_lines=False
    )


def read_dat_ratings(path: Path) -> pl.DataFrame:
    """ml-1m's `ratings.dat`, fields separated by `::`."""
    # "::" is two one-character separators with an empty field between them.
    raw = pl.read_csv(path, separator=":", has_header=False, infer_schema=False)
    if raw.width != 7:
        raise ValueError(f"rows have {raw.width} ':'-separated fields, expected 7")
    if raw.select(pl.any_horizontal(pl.col(raw.columns[1::2]).is_not_null().any())).item():
        raise ValueError("fields are separated by single ':', expected '::'")
    fields = raw.select(raw.columns[0::2])
    names = dict(zip(fields.columns, RATINGS_SCHEMA, strict=True))
    return fields.rename(names).cast(RATINGS_SCHEMA)


def check_ratings(ratings: pl.DataFrame, path: Path) -> None:
    """Reject empty files and rows with missing values."""
    if ratings.height == 0:
        raise DatasetError(f"Ratings file {path} holds no ratings.")
    missing = ratings.null_count().sum_horizontal().item()
    if missing:
        raise DatasetError(f"Ratings file {path} has {missing} missing values; expected none.")


def load_ratings(dataset: str = "ml-latest-small", **location) -> pl.DataFrame:
    """All ratings of a release, in its file's order. `location`: see `get_dataset_dir`.

    Downloaded releases are parsed once into a Parquet copy beside their files.
    """
    release = get_release(dataset)
    folder = get_dataset_dir(dataset, **location)
    path = folder / release.ratings_file
    if folder == BUNDLED_DIR / release.name:
        return read_ratings_file(path, release.ratings_format)
    return read_ratings_cached(path, release.ratings_format)


def read_ratings_cached(path: Path, ratings_format: str) -> pl.DataFrame:
    """`read_ratings_file` through a Parquet copy, rebuilt when the source file changes or the
    copy cannot be read."""
    if not path.is_file():
        raise DatasetError(f"Ratings file {path} does not exist.")
    cache = get_parquet_path(path)
    ratings = read_parquet_ratings(cache) if cache.is_file() else None
    if ratings is None:
        ratings = read_ratings_file(path, ratings_format)
        write_parquet_atomically(ratings, cache)
    return ratings


def get_parquet_path(path: Path) -> Path:
    """The Parquet copy of `path`, named after the source's size and modification time."""
    stat = path.stat()
    return path.with_name(f"{path.name}.{stat.st_size}-{stat.st_mtime_ns}.parquet")


def read_parquet_ratings(cache: Path) -> pl.DataFrame | None:
    """The cached ratings, or None when the file is unreadable or has another schema."""
    try:
        ratings = pl.read_parquet(cache)
    except (OSError, pl.exceptions.PolarsError):
        return None
    return ratings if ratings.schema == pl.Schema(RATINGS_SCHEMA) else None


def write_parquet_atomically(ratings: pl.DataFrame, cache: Path) -> None:
    """Write `cache` through a temporary file and a rename, then drop stale copies; a folder
    that cannot be written to leaves the cache out."""
    try:
        with tempfile.NamedTemporaryFile(dir=cache.parent, suffix=".tmp", delete=False) as file:
            temporary = Path(file.name)
        try:
            ratings.write_parquet(temporary)
            os.replace(temporary, cache)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError:
        return
    source = cache.name.rsplit(".", 2)[0]
    for stale in cache.parent.glob(f"{source}.*.parquet"):
        if stale != cache:
            stale.unlink(missing_ok=True)


def load_movies(dataset: str = "ml-latest-small", **location) -> pl.DataFrame:
    """The release's movie table: `movieId` and `title`."""
    release = get_release(dataset)
    path = get_dataset_dir(dataset, **location) / release.movies_file
    if not path.is_file():
        raise DatasetError(f"Movies file {path} does not exist.")
    if release.ratings_format == "csv":
        return pl.read_csv(
            path, columns=["movieId", "title"], schema_overrides={"movieId": pl.Int64}
        )
    # u.item (`|`) and movies.dat (`::`) are Latin-1 text: take id and title of each line.
    separator = "|" if release.ratings_format == "tab" else "::"
    lines = [line for line in path.read_text(encoding="latin-1").splitlines() if line]
    rows = [line.split(separator, 2)[:2] for line in lines]
    return pl.DataFrame(rows, schema={"movieId": pl.Int64, "title": pl.String}, orient="row")


def keep_top_movies(ratings: pl.DataFrame, top_n_movies: int) -> pl.DataFrame:
    """Keep the ratings of the `top_n_movies` most-rated movies (ties: smaller movieId first)."""
    whole = isinstance(top_n_movies, numbers.Integral) and not isinstance(top_n_movies, bool)
    if not whole or top_n_movies < 1:
        raise DatasetError(
            f"top_n_movies must be a positive whole number of movies, got {top_n_movies!r}."
        )
    counts = ratings.group_by("movieId").len().sort(["len", "movieId"], descending=[True, False])
    if top_n_movies > counts.height:
        warnings.warn(
            f"top_n_movies={top_n_movies} is more than the {counts.height} movies rated; "
            f"kept all {counts.height}.",
            stacklevel=3,
        )
    top = counts.head(top_n_movies).get_column("movieId")
    return ratings.filter(pl.col("movieId").is_in(top.implode()))


def make_id_mapping(ratings: pl.DataFrame, column: str) -> pl.DataFrame:
    """Map each distinct id in `column`, sorted, to a contiguous index `<column>Mapped` from 0."""
    ids = ratings.get_column(column).unique().sort()
    return pl.DataFrame({column: ids, f"{column}Mapped": pl.arange(0, ids.len(), eager=True)}).cast(
        {f"{column}Mapped": pl.UInt32}
    )


def load_torch_data(
    dataset: str = "ml-latest-small",
    *,
    top_n_movies: int | None = None,
    **location,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Ratings with contiguous `userIdMapped`/`movieIdMapped` columns, and the two id mappings.

    `location` (`download`, `data_dir`, `base_url`) says where the release comes from.
    """
    ratings = load_ratings(dataset, **location)
    if top_n_movies is not None:
        ratings = keep_top_movies(ratings, top_n_movies)
    return map_ids(ratings)


def map_ids(ratings: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """`ratings` with contiguous `userIdMapped`/`movieIdMapped` columns, and the two mappings."""
    user_id_mapping = make_id_mapping(ratings, "userId")
    movie_id_mapping = make_id_mapping(ratings, "movieId")
    ratings = ratings.join(user_id_mapping, on="userId", how="left", maintain_order="left").join(
        movie_id_mapping, on="movieId", how="left", maintain_order="left"
    )
    return ratings, user_id_mapping, movie_id_mapping
