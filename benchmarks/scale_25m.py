"""MovieLens 25M end to end without internet: a synthetic `ml-25m.zip` of the real format and
size (25M rows of `userId,movieId,rating,timestamp` plus movies.csv) served from 127.0.0.1,
downloaded and verified through `load_torch_data`, loaded a second time from the Parquet
cache, and one epoch of the project's best rating model (train_speed.py's `RegularisedMF`, at its
settings) trained through `fit` on the top 50 movies and on all 25M ratings, with peak memory.

    python benchmarks/scale_25m.py [--rows 25000095] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import http.server
import resource
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from benchmarks.ratings_data import ML25M_SHAPE, make_ratings  # noqa: E402


def get_peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def write_archive(folder: Path, n_rows: int) -> Path:
    """`folder/ml-25m.zip` holding `ml-25m/ratings.csv` and `ml-25m/movies.csv`."""
    shape = {**ML25M_SHAPE, "n_ratings": n_rows}
    ratings = make_ratings(**shape)
    movies = ratings.select("movieId").unique().sort("movieId")
    staging = folder / "staging"
    staging.mkdir()
    ratings.write_csv(staging / "ratings.csv")
    titles = movies.with_columns(
        title="Movie " + movies["movieId"].cast(str), genres=pl.lit("Drama")
    )
    titles.write_csv(staging / "movies.csv")
    archive = folder / "ml-25m.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zipped:
        for name in ("movies.csv", "ratings.csv"):
            zipped.write(staging / name, f"ml-25m/{name}")
            (staging / name).unlink()
    return archive


def get_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as file:
        while chunk := file.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def serve(folder: Path) -> http.server.ThreadingHTTPServer:
    """A quiet HTTP server on 127.0.0.1 (a free port) serving `folder`, in a daemon thread."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def load_and_train(base_url: str, md5: str, cache: Path, epochs_on: str) -> None:
    """In a fresh process: download, load twice, train one epoch; prints times and peak RSS."""
    import utilities.data as data
    from benchmarks.train_speed import PROJECT, RegularisedMF, regularised_mse
    from utilities.splits import ratings_to_tensors, split_train_test
    from utilities.training import fit, get_thread_count

    # The synthetic archive is verified against its own MD5 instead of GroupLens' published one.
    data.RELEASES["ml-25m"] = dataclasses.replace(data.RELEASES["ml-25m"], md5=md5)
    for label, download in (("first load (download, verify, parse)", True), ("second load", False)):
        start = time.perf_counter()
        ratings, users, movies = data.load_torch_data(
            "ml-25m", download=download, data_dir=cache, base_url=base_url
        )
        print(
            f"{label}: {time.perf_counter() - start:.1f} s, {ratings.height:,} ratings, "
            f"peak RSS {get_peak_rss_gb():.2f} GB",
            flush=True,
        )
    top = data.load_torch_data("ml-25m", top_n_movies=50, data_dir=cache)[0]
    print(f"top_n_movies=50: {top.height:,} ratings by {top['userId'].n_unique():,} users")
    for name, frame in (("top 50 movies", top), ("all ratings", ratings))[
        : 2 if epochs_on == "all" else 1
    ]:
        train = split_train_test(frame, seed=42)[0]
        tensors = ratings_to_tensors(train)
        sizes = (frame["userIdMapped"].max() + 1, frame["movieIdMapped"].max() + 1)
        mean = tensors[2].mean().item()
        model = RegularisedMF(*sizes, PROJECT["n_factors"], mean, PROJECT["reg"])
        settings = {"lr": PROJECT["lr"], "batch_size": PROJECT["batch_size"]}
        result = fit(model, tensors, epochs=1, loss=regularised_mse(model), **settings)
        seconds = result.metrics["train_seconds"]
        print(
            f"one epoch on {name}: {len(tensors[0]):,} ratings in {seconds:.1f} s "
            f"({len(tensors[0]) / seconds:,.0f} ratings/s, {get_thread_count()} torch thread(s)), "
            f"peak RSS {get_peak_rss_gb():.2f} GB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ML25M_SHAPE["n_ratings"])
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--epochs-on", choices=["top50", "all"], default="all")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        base_url, md5, cache = args.child
        return load_and_train(base_url, md5, Path(cache), args.epochs_on)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dotlab-25m-"))
    served, cache = workdir / "served", workdir / "cache"
    served.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    archive = served / "ml-25m.zip"
    if not archive.is_file():
        archive = write_archive(served, args.rows)
    md5 = get_md5(archive)
    print(
        f"synthetic archive: {archive.stat().st_size / 1e6:.0f} MB, "
        f"{time.perf_counter() - start:.0f} s to build",
        flush=True,
    )
    server = serve(served)
    base_url = f"http://127.0.0.1:{server.server_port}/"
    child = [sys.executable, __file__, "--epochs-on", args.epochs_on, "--child", base_url, md5]
    subprocess.run([*child, str(cache)], check=True)
    server.shutdown()
    print(f"cache: {sorted(p.name for p in (cache / 'ml-25m').iterdir())}")


if __name__ == "__main__":
    main()
