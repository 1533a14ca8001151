"""An image folder decoded once: uint8 arrays in aetrain's cache folder, read back memory-mapped.

The first run over a folder decodes every file on every core (worker processes for a large folder,
threads for a few files), with a progress bar, streaming the rows into an ``images-*.npy`` file
that ``index.json`` names, with each file's name, size and modification time, per ``image_size`` and
``channels``. A later run lists the folder and compares: the same files, it maps the cache in under a
second; files added, changed or removed, it decodes only those and keeps the other rows, saying why;
a cache that cannot be read or does not match its index is rebuilt, never used. The images are
written under a new name first and the index, renamed into place, commits them (a crash between leaves
the old cache whole; aetrain.data.npy_cache writes them); all under a lock: two processes building the
same cache at once build it once.

Bad input: every file that cannot be decoded is named, all of them in one DataError, after the others
are cached (the run after the fix decodes only those). A cache that cannot be written (a read-only
folder; a full disk, found before decoding starts by reserving the file's space) leaves no partial
file behind: the images are decoded into memory instead with one warning, or refused (exit 5) where
they would not fit in the memory this process may still take.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aetrain import exit_codes
from aetrain.data import npy_cache
from aetrain.data.available_memory import available_memory
from aetrain.data.idx import cache_dir
from aetrain.data.raw import DataError
from aetrain.errors import AetrainError

log = logging.getLogger("aetrain")

CACHE_FORMAT = 1
#: The folders of every cached image folder, below aetrain's cache folder.
SUBFOLDER = "image_folders"

Decode = Callable[[str], np.ndarray]
#: (names, sizes, modification times): a folder's files as the index keeps them (None: unreadable)
Listing = tuple[list[str], list, list]
#: From this many files on, decoding runs in worker processes (Pillow holds the GIL for part of its
#: work, so threads gained 1.1-1.2x on 2 cores, processes 1.4x on 4,000 files: docs/data.md); below
#: it, starting the processes costs more than they save.
PROCESS_FILES = 2048
CHUNK = 64  # files a worker decodes per task
#: From this many files on, a cached start stats them in two processes (the stats of 200,000 files:
#: 0.33 s against 0.52 s in one)
PARALLEL_STAT_FILES = 50_000
#: What the framework, the model and its batches take beside images held in memory (a dense model on
#: 64x64x3 images peaked at 0.4-0.7 GB of anonymous memory): kept free when deciding they fit.
FRAMEWORK_BYTES = 1 << 30
#: How a decoder's refusal of one file ends; a list of several says it once.
REPLACE_OR_REMOVE = "Replace or remove it."


class ImageCacheUnwritable(AetrainError):
    """The cache cannot be written and the decoded images would not fit in memory instead."""

    exit_code = exit_codes.OUTPUT


@dataclass(frozen=True)
class _Folder:
    """The files one call decodes (below ``root``), their listing (None until a cache is there to
    compare it with: the decoding workers stat each file they decode), the image shape, the decoder."""

    files: Sequence[str]
    listing: Listing | None
    root: Path
    shape: tuple[int, ...]
    decode: Decode
    workers: int

    @property
    def nbytes(self) -> int:
        return len(self.files) * math.prod(self.shape)


def cache_folder(folder: Path, height: int, width: int, channels: int, decoded_by: str = "") -> Path:
    """Where the cache of ``folder`` at this size and channel count, decoded by ``decoded_by``, lives."""
    key = json.dumps([CACHE_FORMAT, str(folder.resolve()), height, width, channels, decoded_by])
    return cache_dir() / SUBFOLDER / hashlib.sha256(key.encode()).hexdigest()[:24]


def file_listing(files: Sequence[str], folder: Path) -> Listing:
    """(names relative to ``folder``, sizes, modification times in ns) of the files, in columns (as the
    index keeps them: a cached start compares three flat lists). A large folder is stat'ed by two
    processes where they may be forked: a stat per file is most of a cached start."""
    sizes_and_times = _stats(files)
    return relative_names(files, folder), sizes_and_times[:, 0].tolist(), sizes_and_times[:, 1].tolist()


def _stats(files: Sequence[str]) -> np.ndarray:
    if len(files) < PARALLEL_STAT_FILES or (os.cpu_count() or 1) < 2 or _framework_loaded():
        return _sizes_and_times(files)
    halves = [files[: len(files) // 2], files[len(files) // 2 :]]
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork")) as pool:
        return np.concatenate(list(pool.map(_sizes_and_times, halves)))


def _sizes_and_times(files: Sequence[str]) -> np.ndarray:
    stats = np.empty((len(files), 2), dtype=np.int64)
    for row, path in enumerate(files):
        stat = os.stat(path)
        stats[row] = stat.st_size, stat.st_mtime_ns
    return stats


def relative_names(files: Sequence[str], folder: Path) -> list[str]:
    prefix = os.path.join(str(folder), "")
    return [
        path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, folder)
        for path in map(str, files)
    ]


def decoded_images(
    files: Sequence[str | Path],
    folder: Path,
    shape: tuple[int, ...],
    decode: Decode,
    workers: int | None = None,
    decoded_by: str = "",
) -> np.ndarray:
    """Every file of ``files`` (below ``folder``) decoded to a uint8 array of ``shape``, in order: from
    the cache where it holds them, decoded (and cached) where it does not. ``decoded_by`` names the
    library ``decode`` uses: a cache another one made is not used (their pixels differ a little)."""
    files = [os.fspath(path) for path in files]
    job = _Folder(files, None, folder, shape, decode, workers or os.cpu_count() or 1)
    target = cache_folder(folder, *shape[:2], shape[2] if len(shape) == 3 else 1, decoded_by)
    try:
        lock = npy_cache.locked(target)
    except OSError as error:  # a read-only cache folder may still hold a cache made before
        cached, _ = _read_cache(target, shape)
        job = _listed_if_cached(job, cached)
        if cached is not None and cached[0] == job.listing:
            return cached[1]
        return _decoded_in_memory(job, target, error, cached)
    try:
        cached, why = _read_cache(target, shape)
        job = _listed_if_cached(job, cached)
        if cached is not None and cached[0] == job.listing:
            return cached[1]
        log.info(
            f"image cache of {folder}: {why or _changes(cached[0], job.listing)}; "
            f"decoding {len(files) - len(_kept_rows(cached, job.listing)):,}"
        )
        try:
            return _decoded_into_cache(job, target, cached)
        except OSError as error:
            return _decoded_in_memory(job, target, error, cached)
    finally:
        lock.release()


def _read_cache(target: Path, shape: tuple[int, ...]) -> tuple[tuple[Listing, np.ndarray] | None, str | None]:
    """((listing, images memory-mapped), None), or (None, why there is none usable)."""
    try:
        index = npy_cache.committed_index(target)
        if index is None:
            return None, "no cache yet"
        if "entries" in index:
            return None, f"the cache in {target} was written by an earlier aetrain, rebuilt"
        listing = (index["names"], index["sizes"], index["times"])
        images = npy_cache.mapped(target, index, "images")
        if not len(listing[0]) == len(listing[1]) == len(listing[2]) == len(images):
            raise ValueError(f"its index lists {len(listing[0])} files for {len(images)} images")
        if images.dtype != np.uint8 or images.shape[1:] != shape:
            raise ValueError(f"holds {images.shape} {images.dtype}, not images of {shape}")
    except (OSError, ValueError, TypeError, KeyError) as error:
        return None, f"the cache in {target} is damaged ({type(error).__name__}: {error}), rebuilt"
    return (listing, images), None


def _listed_if_cached(job: _Folder, cached: tuple[Listing, np.ndarray] | None) -> _Folder:
    """The job with its files' listing where there is a cache to compare it with (without one, the
    decoding workers stat each file they decode)."""
    return job if cached is None else dataclasses.replace(job, listing=file_listing(job.files, job.root))


def _changes(before: Listing, now: Listing) -> str:
    old = {entry[0]: entry for entry in zip(*before, strict=True)}
    new = {entry[0]: entry for entry in zip(*now, strict=True)}
    added = len(new.keys() - old.keys())
    removed = len(old.keys() - new.keys())
    changed = sum(1 for name in new.keys() & old.keys() if new[name] != old[name])
    return f"{added:,} files added, {changed:,} changed, {removed:,} removed since it was cached"


def _kept_rows(cached: tuple[Listing, np.ndarray] | None, listing: Listing | None) -> dict[int, int]:
    """{row now: row in the old cache} for each file the old cache holds unchanged."""
    if cached is None or listing is None:
        return {}
    rows = {entry: index for index, entry in enumerate(zip(*cached[0], strict=True))}
    return {index: rows[entry] for index, entry in enumerate(zip(*listing, strict=True)) if entry in rows}


def _decoded_into_cache(job: _Folder, target: Path, cached: tuple[Listing, np.ndarray] | None) -> np.ndarray:
    """Write the rows into a new version of the cache (aetrain.data.npy_cache: its space reserved
    first, committed by its index, no partial file left by a failure), the decoding workers writing
    their own rows."""
    with npy_cache.new_version(target) as version:
        with version.reserved("images", (len(job.files), *job.shape)) as rows:
            refusals, (names, sizes, times) = _fill(job, cached, rows, rows.write)
        index = version.commit(names=names, sizes=sizes, times=times)
    if refusals:
        raise _unreadable(job, refusals, others_cached=True)
    return npy_cache.mapped(target, index, "images")


def _decoded_in_memory(
    job: _Folder, target: Path, error: OSError, cached: tuple[Listing, np.ndarray] | None
) -> np.ndarray:
    """The images decoded into an array in memory, the cache being unwritable (said once), or refused
    before decoding where they would not fit beside the framework."""
    room = available_memory()
    if room is not None and job.nbytes + FRAMEWORK_BYTES > room:
        raise ImageCacheUnwritable(
            f"The {len(job.files):,} images of {job.root} decode to {_size(job.nbytes)}, and their cache "
            f"in {target} cannot be written ({error}). Held in memory instead, they and the framework "
            f"(about {_size(FRAMEWORK_BYTES)}) would need more than the {_size(room)} this process may "
            "still take (MemAvailable, or its cgroup's memory limit). Free some space there or point "
            f"$AETRAIN_CACHE_DIR at a writable folder with {_size(job.nbytes)} free, or lower "
            "data.image_size or data.channels."
        )
    log.warning(
        f"the image cache in {target} cannot be written ({error}): the {len(job.files):,} images are "
        f"decoded into memory ({_size(job.nbytes)}), and the next run decodes them again"
    )
    images = np.zeros((len(job.files), *job.shape), dtype=np.uint8)

    def put(rows: list[tuple[int, np.ndarray]]) -> None:
        for index, pixels in rows:
            images[index] = pixels

    refusals, _ = _fill(job, cached, None, put)
    if refusals:
        raise _unreadable(job, refusals, others_cached=False)
    return images


Rows = list[tuple[int, np.ndarray]]  # (row number, uint8 pixels)
#: A decoded chunk: its rows, {row: why} of its files that cannot be decoded, (row, size, mtime) stats
Decoded = tuple[Rows, dict[int, str], list[tuple[int, int, int]]]


def _fill(
    job: _Folder, cached, into: npy_cache.RowFile | None, put: Callable[[Rows], object]
) -> tuple[dict[int, str], Listing]:
    """Every row: the old cache's where it holds the file unchanged, else decoded (left blank where
    the file cannot be), each handed to ``put``, or written by the decoding workers themselves where
    ``into`` is given. Returns {row: why} of the files that cannot be decoded, and the listing the
    index keeps: a decoded file's size and time from the worker's stat of it just before it decoded
    it; an unreadable file's None, which no file matches (decoded again next run)."""
    kept = _kept_rows(cached, job.listing)
    kept_rows = list(kept.items())
    for first in range(0, len(kept_rows), CHUNK):
        put([(index, cached[1][row]) for index, row in kept_rows[first : first + CHUNK]])
    names = job.listing[0] if job.listing is not None else relative_names(job.files, job.root)
    sizes, times = [None] * len(job.files), [None] * len(job.files)
    for index in kept:
        sizes[index], times[index] = job.listing[1][index], job.listing[2][index]
    refusals: dict[int, str] = {}
    with _decoding(job, [index for index in range(len(job.files)) if index not in kept], into) as chunks:
        for decoded, refused, stats in chunks:
            if decoded:
                put(decoded)
            refusals.update(refused)
            for index, size, modified in stats:
                sizes[index], times[index] = size, modified
    return refusals, (names, sizes, times)


def _decoded_chunk(
    decode: Decode, shape: tuple[int, ...], into: npy_cache.RowFile | None, chunk: list[tuple[int, str]]
) -> Decoded:
    """A worker's task: the chunk's files decoded, written ``into`` the cache file where given (the
    pixels never travel back), else returned; {row: why} of those that cannot be decoded (one bad
    file does not stop the others, so that all of them are named at once); and (row, size,
    modification time) of each file decoded, stat'ed just before (a file changed after it was read
    is decoded again next run)."""
    decoded: Rows = []
    refusals: dict[int, str] = {}
    stats: list[tuple[int, int, int]] = []
    for index, path in chunk:
        try:
            stat = os.stat(path)
            pixels = np.ascontiguousarray(decode(path), dtype=np.uint8)
        except OSError as error:
            refusals[index] = f"{path} cannot be read ({error}). {REPLACE_OR_REMOVE}"
            continue
        except DataError as error:
            refusals[index] = str(error)
            continue
        stats.append((index, stat.st_size, stat.st_mtime_ns))
        if pixels.shape != shape:
            raise ValueError(f"{path} decoded to {pixels.shape}, not {shape}")
        decoded.append((index, pixels))
    if into is None:
        return decoded, refusals, stats
    into.write(decoded)
    return [], refusals, stats


@contextlib.contextmanager
def _decoding(
    job: _Folder, indices: list[int], into: npy_cache.RowFile | None
) -> Iterator[Iterator[Decoded]]:
    """The files ``indices`` decoded on every core, CHUNK at a time, with progress: each chunk's
    :func:`_decoded_chunk`. Leaving early cancels the chunks not yet started."""
    if not indices:
        yield iter(())
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    started = time.perf_counter()
    chunks = [
        [(i, job.files[i]) for i in indices[first : first + CHUNK]] for first in range(0, len(indices), CHUNK)
    ]
    pool = _pool(len(indices), job.workers)
    try:
        pool.submit(int).result()  # the workers start (fork) before the progress bar's thread does
        with Progress(
            TextColumn("decoding images"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            transient=True,
        ) as progress:
            task = progress.add_task("decode", total=len(indices), rate="")
            results = pool.map(functools.partial(_decoded_chunk, job.decode, job.shape, into), chunks)

            def counted() -> Iterator[Decoded]:
                done = 0
                for chunk, result in zip(chunks, results, strict=True):
                    done += len(chunk)
                    rate = done / max(time.perf_counter() - started, 1e-9)
                    progress.update(task, completed=done, rate=f"{rate:,.0f} images/s")
                    yield result

            yield counted()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    seconds = time.perf_counter() - started
    log.info(
        f"decoded {len(indices):,} images in {seconds:.1f} s ({len(indices) / max(seconds, 1e-9):,.0f}/s)"
    )


def _pool(count: int, workers: int) -> Executor:
    """Worker processes for many files, threads for a few. The processes are forked (cheap) while no
    framework runs threads in this process (aetrain reads the data before TensorFlow loads), spawned
    (a second each to start) once one does: a fork would copy its threads' state half-way."""
    if count < PROCESS_FILES or workers < 2:
        return ThreadPoolExecutor(max_workers=workers)
    context = multiprocessing.get_context("spawn" if _framework_loaded() else "fork")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _framework_loaded() -> bool:
    """Whether a framework that runs threads of its own is loaded (then no fork)."""
    return any(name in sys.modules for name in ("tensorflow", "jax", "torch"))


def _unreadable(job: _Folder, refusals: dict[int, str], others_cached: bool) -> DataError:
    """One DataError naming every file that cannot be decoded."""
    kept = len(job.files) - len(refusals)
    note = (
        f" The {kept:,} other images are cached: the next run decodes only what changed."
        if others_cached and kept
        else ""
    )
    if len(refusals) == 1:
        return DataError(next(iter(refusals.values())) + note)
    listed = "\n".join(f"  {refusals[i].removesuffix(REPLACE_OR_REMOVE).rstrip()}" for i in sorted(refusals))
    return DataError(
        f"{len(refusals):,} of the {len(job.files):,} images of {job.root} cannot be read; replace or "
        f"remove them:\n{listed}\n{note.strip()}".rstrip()
    )


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.1f} MB"
