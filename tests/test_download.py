"""Downloading releases from a local HTTP server standing in for GroupLens."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import shutil
import socket
import zipfile

import pytest
from werkzeug import Response

import utilities.data as data
from utilities.data import DatasetError, DownloadError, load_movies, load_ratings, load_torch_data

RATINGS = [(3, 20, 4.0, 881250949), (1, 10, 5.0, 881250950), (3, 10, 1.0, 881250951)]
MOVIES = [(10, "Misérables, Les (1995)"), (20, "Toy Story (1995)")]


def release_files(dataset: str) -> dict[str, bytes]:
    """The ratings and movies files of a tiny release, in that release's own formats."""
    if dataset == "ml-100k":
        ratings = "".join(f"{u}\t{m}\t{r:g}\t{t}\n" for u, m, r, t in RATINGS).encode()
        movies = "".join(f"{m}|{title}|01-Jan-1995||http://x|0|1\n" for m, title in MOVIES)
        return {"u.data": ratings, "u.item": movies.encode("latin-1")}
    if dataset == "ml-1m":
        ratings = "".join(f"{u}::{m}::{r:g}::{t}\r\n" for u, m, r, t in RATINGS).encode()
        movies = "".join(f"{m}::{title}::Drama\r\n" for m, title in MOVIES)
        return {"ratings.dat": ratings, "movies.dat": movies.encode("latin-1")}
    ratings = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{m},{r},{t}\n" for u, m, r, t in RATINGS
    )
    movies = "movieId,title,genres\n" + "".join(f'{m},"{title}",Drama\n' for m, title in MOVIES)
    return {"ratings.csv": ratings.encode(), "movies.csv": movies.encode()}


def make_archive(dataset: str, files: dict[str, bytes] | None = None) -> bytes:
    """A zip laid out as GroupLens ships it: every file inside a `<dataset>/` folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{dataset}/README.txt", "tiny test release\n")
        for name, content in (release_files(dataset) if files is None else files).items():
            archive.writestr(f"{dataset}/{name}", content)
    return buffer.getvalue()


def md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


def pin_md5(monkeypatch, dataset: str, content: bytes) -> None:
    """Give a release with a published MD5 the MD5 of our tiny archive instead."""
    release = data.RELEASES[dataset]
    assert release.md5 is not None
    monkeypatch.setitem(data.RELEASES, dataset, dataclasses.replace(release, md5=md5(content)))


def serve(httpserver, dataset: str, archive: bytes, *, published_md5: str | None = None) -> None:
    """Serve the archive; releases without a fixed MD5 also get `<archive>.md5` beside it."""
    httpserver.expect_request(f"/{dataset}.zip").respond_with_data(
        archive, content_type="application/zip"
    )
    if data.RELEASES[dataset].md5 is None:
        checksum = published_md5 or md5(archive)
        httpserver.expect_request(f"/{dataset}.zip.md5").respond_with_data(
            f"{checksum}  {dataset}.zip\n"
        )


def requested(httpserver) -> list[str]:
    return [request.path for request, _ in httpserver.log]


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def base_url(httpserver):
    return httpserver.url_for("/")


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


# ---------------------------------------------------------------- success


@pytest.mark.parametrize("dataset", ["ml-100k", "ml-1m", "ml-20m", "ml-25m"])
def test_download_parses_and_is_cached(httpserver, base_url, cache, monkeypatch, dataset):
    archive = make_archive(dataset)
    if data.RELEASES[dataset].md5 is not None:
        pin_md5(monkeypatch, dataset, archive)
    serve(httpserver, dataset, archive)
    assert base_url.startswith("http://127.0.0.1:")

    ratings, users, movies = load_torch_data(dataset, data_dir=cache, base_url=base_url)
    assert ratings.select("userId", "movieId", "rating", "timestamp").rows() == RATINGS
    assert ratings.select("userIdMapped", "movieIdMapped").rows() == [(1, 1), (0, 0), (1, 0)]
    assert users.rows() == [(1, 0), (3, 1)]
    assert movies.rows() == [(10, 0), (20, 1)]
    assert load_movies(dataset, data_dir=cache, base_url=base_url).rows() == MOVIES

    release = data.RELEASES[dataset]
    expected_requests = [f"/{dataset}.zip"]
    if release.md5 is None:
        expected_requests.insert(0, f"/{dataset}.zip.md5")
    assert requested(httpserver) == expected_requests
    # the verified archive (with the MD5 it matched, where none is published), the two
    # extracted files and the ratings' Parquet copy; no temporary leftovers
    parquet = data.get_parquet_path(cache / dataset / release.ratings_file)
    expected_files = [
        f"{dataset}.zip",
        dataset,
        f"{dataset}/{release.ratings_file}",
        f"{dataset}/{release.movies_file}",
        str(parquet.relative_to(cache)),
    ]
    if release.md5 is None:
        expected_files.append(f"{dataset}.zip.md5")
    assert files_under(cache) == sorted(expected_files)
    assert (cache / f"{dataset}.zip").read_bytes() == archive
    for name, content in release_files(dataset).items():
        assert (cache / dataset / name).read_bytes() == content

    # a second load reads the cache and never asks the server
    again = load_torch_data(dataset, data_dir=cache, base_url=base_url)
    assert again[0].equals(ratings)
    assert requested(httpserver) == expected_requests
    # nor does re-extracting from the cached archive, even without a published MD5
    shutil.rmtree(cache / dataset)
    assert load_torch_data(dataset, data_dir=cache, base_url=base_url)[0].equals(ratings)
    assert requested(httpserver) == expected_requests
    httpserver.check_assertions()


def test_extracted_files_are_rebuilt_from_the_cached_archive(
    httpserver, base_url, cache, monkeypatch
):
    archive = make_archive("ml-100k")
    pin_md5(monkeypatch, "ml-100k", archive)
    serve(httpserver, "ml-100k", archive)
    first = load_ratings("ml-100k", data_dir=cache, base_url=base_url)
    (cache / "ml-100k" / "u.data").unlink()
    assert load_ratings("ml-100k", data_dir=cache, base_url=base_url).equals(first)
    assert requested(httpserver) == ["/ml-100k.zip"]  # verified locally, not fetched again


@pytest.mark.parametrize("dataset", ["ml-100k", "ml-20m"])  # a published MD5, and one beside it
def test_a_corrupt_cached_archive_is_named_moved_aside_then_downloaded_afresh(
    httpserver, base_url, cache, monkeypatch, dataset
):
    archive = make_archive(dataset)
    expected = md5(archive)
    if data.RELEASES[dataset].md5 is not None:
        pin_md5(monkeypatch, dataset, archive)
    cache.mkdir()
    (cache / f"{dataset}.zip").write_bytes(b"garbage")
    (cache / f"{dataset}.zip.md5").write_text(f"{expected}  {dataset}.zip\n")
    with pytest.raises(DownloadError) as caught:  # the server serves nothing yet
        load_ratings(dataset, data_dir=cache, base_url=base_url)
    message = str(caught.value)
    assert message.startswith(f"{cache / f'{dataset}.zip'} fails its checksum")
    assert f"expected MD5 {expected}, got {md5(b'garbage')}" in message
    assert "\n" not in message and requested(httpserver) == []
    [aside] = cache.glob(f"{dataset}.zip.corrupt-*")
    assert aside.name in message and aside.read_bytes() == b"garbage"
    assert not (cache / f"{dataset}.zip").exists()

    serve(httpserver, dataset, archive)
    assert load_ratings(dataset, data_dir=cache, base_url=base_url).rows() == RATINGS
    assert (cache / f"{dataset}.zip").read_bytes() == archive
    assert requested(httpserver)[-1] == f"/{dataset}.zip"


def test_cache_dir_defaults_to_dotlab_data_dir(httpserver, base_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DOTLAB_DATA_DIR", str(tmp_path / "env-cache"))
    archive = make_archive("ml-100k")
    pin_md5(monkeypatch, "ml-100k", archive)
    serve(httpserver, "ml-100k", archive)
    assert load_ratings("ml-100k", base_url=base_url).rows() == RATINGS
    assert (tmp_path / "env-cache" / "ml-100k" / "u.data").is_file()


def test_download_true_fetches_the_bundled_release_afresh(httpserver, base_url, cache):
    archive = make_archive("ml-latest-small")
    serve(httpserver, "ml-latest-small", archive)
    ratings = load_ratings("ml-latest-small", download=True, data_dir=cache, base_url=base_url)
    assert ratings.rows() == RATINGS  # the served release, not the bundled 100,836 ratings
    assert requested(httpserver) == ["/ml-latest-small.zip.md5", "/ml-latest-small.zip"]
    assert (cache / "ml-latest-small" / "ratings.csv").is_file()
    # without download=True the bundled copy is used and the server is not asked
    assert load_ratings("ml-latest-small", data_dir=cache, base_url=base_url).height == 100_836
    assert len(httpserver.log) == 2


# ---------------------------------------------------------------- failures


def test_checksum_mismatch_keeps_nothing(httpserver, base_url, cache, monkeypatch):
    pin_md5(monkeypatch, "ml-100k", b"some other archive")
    serve(httpserver, "ml-100k", make_archive("ml-100k"))
    with pytest.raises(DownloadError) as caught:
        load_torch_data("ml-100k", data_dir=cache, base_url=base_url)
    assert f"{base_url}ml-100k.zip" in str(caught.value)
    assert files_under(cache) == []


def test_published_md5_mismatch_keeps_nothing(httpserver, base_url, cache):
    serve(httpserver, "ml-20m", make_archive("ml-20m"), published_md5=md5(b"another"))
    with pytest.raises(DownloadError, match="ml-20m.zip"):
        load_ratings("ml-20m", data_dir=cache, base_url=base_url)
    assert files_under(cache) == []


def test_md5_file_without_a_checksum(httpserver, base_url, cache):
    httpserver.expect_request("/ml-32m.zip.md5").respond_with_data("<html>moved</html>")
    with pytest.raises(DownloadError, match="holds no MD5 checksum"):
        load_ratings("ml-32m", data_dir=cache, base_url=base_url)
    assert requested(httpserver) == ["/ml-32m.zip.md5"]  # the archive itself is never fetched


def test_truncated_body_keeps_nothing_and_a_retry_succeeds(
    httpserver, base_url, cache, monkeypatch
):
    archive = make_archive("ml-25m")
    pin_md5(monkeypatch, "ml-25m", archive)
    httpserver.expect_oneshot_request("/ml-25m.zip").respond_with_data(archive[: len(archive) // 2])
    with pytest.raises(DownloadError, match="ml-25m.zip"):
        load_ratings("ml-25m", data_dir=cache, base_url=base_url)
    assert files_under(cache) == []

    serve(httpserver, "ml-25m", archive)
    assert load_ratings("ml-25m", data_dir=cache, base_url=base_url).rows() == RATINGS
    assert requested(httpserver) == ["/ml-25m.zip", "/ml-25m.zip"]


def test_connection_closed_before_content_length(httpserver, base_url, cache, monkeypatch):
    archive = make_archive("ml-100k")
    pin_md5(monkeypatch, "ml-100k", archive)

    def short_response(request):
        # An iterable body keeps werkzeug from correcting the Content-Length we claim.
        response = Response(iter([archive[:200]]), content_type="application/zip")
        response.headers["Content-Length"] = str(len(archive))
        return response

    httpserver.expect_oneshot_request("/ml-100k.zip").respond_with_handler(short_response)
    with pytest.raises(DownloadError, match="ml-100k.zip") as caught:
        load_ratings("ml-100k", data_dir=cache, base_url=base_url)
    assert "IncompleteRead" in str(caught.value) or "Connection broken" in str(caught.value)
    assert files_under(cache) == []

    serve(httpserver, "ml-100k", archive)
    assert load_ratings("ml-100k", data_dir=cache, base_url=base_url).rows() == RATINGS


@pytest.mark.parametrize("dataset", ["ml-100k", "ml-20m"])
def test_server_error(httpserver, base_url, cache, dataset):
    httpserver.expect_request(f"/{dataset}.zip").respond_with_data("boom", status=500)
    httpserver.expect_request(f"/{dataset}.zip.md5").respond_with_data("boom", status=500)
    with pytest.raises(DownloadError) as caught:
        load_ratings(dataset, data_dir=cache, base_url=base_url)
    assert f"{base_url}{dataset}.zip" in str(caught.value)
    assert "500" in str(caught.value)
    assert files_under(cache) == []


@pytest.mark.parametrize("dataset", ["ml-1m", "ml-32m"])
def test_connection_refused_names_the_url(cache, dataset):
    base_url = f"http://127.0.0.1:{closed_port()}/"
    with pytest.raises(DownloadError) as caught:
        load_ratings(dataset, data_dir=cache, base_url=base_url)
    assert f"{base_url}{dataset}.zip" in str(caught.value)
    assert files_under(cache) == []


def test_archive_that_is_not_a_zip(httpserver, base_url, cache, monkeypatch):
    body = b"<html>Service temporarily unavailable</html>"
    pin_md5(monkeypatch, "ml-1m", body)
    serve(httpserver, "ml-1m", body)
    with pytest.raises(DatasetError) as caught:
        load_ratings("ml-1m", data_dir=cache, base_url=base_url)
    assert str(cache / "ml-1m.zip") in str(caught.value)
    assert files_under(cache / "ml-1m") == []


@pytest.mark.parametrize("missing", ["ratings.csv", "movies.csv"])
def test_archive_without_a_member_never_looks_extracted(httpserver, base_url, cache, missing):
    files = release_files("ml-20m")
    del files[missing]
    serve(httpserver, "ml-20m", make_archive("ml-20m", files))
    for _ in range(2):  # the second attempt must fail the same way, not use half an extraction
        with pytest.raises(DatasetError, match=f"ml-20m/{missing}"):
            load_ratings("ml-20m", data_dir=cache, base_url=base_url)
    assert not (cache / "ml-20m" / "ratings.csv").exists()


def test_download_true_replaces_the_extracted_files(httpserver, base_url, cache, monkeypatch):
    archive = make_archive("ml-100k")
    pin_md5(monkeypatch, "ml-100k", archive)
    serve(httpserver, "ml-100k", archive)
    load_ratings("ml-100k", data_dir=cache, base_url=base_url)
    (cache / "ml-100k" / "u.data").write_text("1\t2\t3\t4\n")  # edited by hand
    assert load_ratings("ml-100k", data_dir=cache, base_url=base_url).rows() == [(1, 2, 3.0, 4)]
    fresh = load_ratings("ml-100k", download=True, data_dir=cache, base_url=base_url)
    assert fresh.rows() == RATINGS


def test_interrupted_extraction_leaves_no_partial_file(httpserver, base_url, cache, monkeypatch):
    archive = make_archive("ml-100k")
    pin_md5(monkeypatch, "ml-100k", archive)
    serve(httpserver, "ml-100k", archive)
    copy = data.shutil.copyfileobj

    def copy_then_fail(source, destination, length=0):
        content = source.read()
        if b"\t" in content:  # u.data: write half of it, then fail as a full disk would
            destination.write(content[: len(content) // 2])
            raise OSError(28, "No space left on device")
        destination.write(content)

    monkeypatch.setattr(data.shutil, "copyfileobj", copy_then_fail)
    with pytest.raises(OSError, match="No space left"):
        load_ratings("ml-100k", data_dir=cache, base_url=base_url)
    assert files_under(cache / "ml-100k") == ["u.item"]  # no u.data, no temporary file

    monkeypatch.setattr(data.shutil, "copyfileobj", copy)
    assert load_ratings("ml-100k", data_dir=cache, base_url=base_url).rows() == RATINGS
    assert requested(httpserver) == ["/ml-100k.zip"]


# ---------------------------------------------------------------- every failure, then a retry


def fail_once(httpserver, dataset: str, archive: bytes, failure: str) -> str:
    """Make the first download of `dataset` fail as `failure`; returns the base URL to use."""
    if failure == "refused":
        return f"http://127.0.0.1:{closed_port()}/"
    if data.RELEASES[dataset].md5 is None:
        httpserver.expect_oneshot_request(f"/{dataset}.zip.md5").respond_with_data(md5(archive))
    first = httpserver.expect_oneshot_request(f"/{dataset}.zip")
    if failure == "server error":
        first.respond_with_data("unavailable", status=503)
    elif failure == "wrong checksum":
        first.respond_with_data(make_archive(dataset, {"u.data": b"1\t2\t3\t4\n"}))
    else:  # truncated
        first.respond_with_data(archive[:-100])
    return httpserver.url_for("/")


@pytest.mark.parametrize("failure", ["refused", "server error", "wrong checksum", "truncated"])
@pytest.mark.parametrize("dataset", ["ml-100k", "ml-20m"])  # a published MD5, and a served one
def test_a_failed_download_says_what_to_do_keeps_nothing_and_a_retry_succeeds(
    httpserver, cache, monkeypatch, dataset, failure
):
    archive = make_archive(dataset)
    if data.RELEASES[dataset].md5 is not None:
        pin_md5(monkeypatch, dataset, archive)
    failing_url = fail_once(httpserver, dataset, archive, failure)
    with pytest.raises(DownloadError) as caught:
        load_ratings(dataset, data_dir=cache, base_url=failing_url)
    message = str(caught.value)
    assert message.startswith(f"Could not download {failing_url}{dataset}.zip (")
    assert "\n" not in message and isinstance(caught.value.__cause__, Exception)
    assert f"place it at {cache / f'{dataset}.zip'}" in message
    assert (f"with its {dataset}.zip.md5 beside it" in message) == (dataset == "ml-20m")
    assert files_under(cache) == []

    serve(httpserver, dataset, archive)
    assert load_ratings(dataset, data_dir=cache, base_url=httpserver.url_for("/")).rows() == RATINGS


@pytest.mark.parametrize("dataset", ["ml-100k", "ml-20m"])
def test_an_archive_placed_by_hand_is_used_offline(cache, monkeypatch, dataset):
    """What the error message tells the user to do works without any server."""
    archive = make_archive(dataset)
    cache.mkdir()
    (cache / f"{dataset}.zip").write_bytes(archive)
    if data.RELEASES[dataset].md5 is not None:
        pin_md5(monkeypatch, dataset, archive)
    else:
        (cache / f"{dataset}.zip.md5").write_text(f"{md5(archive)}  {dataset}.zip\n")
    offline = f"http://127.0.0.1:{closed_port()}/"
    assert load_ratings(dataset, data_dir=cache, base_url=offline).rows() == RATINGS
