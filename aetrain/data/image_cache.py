"""An image folder decoded once: uint8 arrays in aetrain's cache folder, read back memory-mapped.

The first run over a folder decodes every file on every core (worker processes for a large folder,
threads for a few files), with a progress bar, into an ``images-*.npy`` file
that ``index.json`` names, with each file's name, size and modification time, per ``image_size`` and
``channels``. A later run lists the folder and compares: the same files, it maps the cache in under a
second; files added, changed or removed, it decodes only those and keeps the other rows, saying why;
a cache that cannot be read or does not match its index is rebuilt, never used. The images are
written under a new name first and the index, renamed into place, commits them (a crash between leaves
the old cache whole); all under a lock: two processes building the same cache at once build it once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from filelock import FileLock

from aetrain.data.idx import cache_dir

log = logging.getLogger("aetrain")

CACHE_FORMAT = 1
INDEX = "index.json"
#: The folders of every cached image folder, below aetrain's cache folder.
SUBFOLDER = "image_folders"

Decode = Callable[[Path], np.ndarray]
#: From this many files on, decoding runs in worker processes (Pillow holds the GIL for part of its
#: work, so threads gained 1.1-1.2x on 2 cores, processes 1.4x on 4,000 files: docs/data.md); below
#: it, starting the processes costs more than they save.
PROCESS_FILES = 2048
CHUNK = 64  # files a worker process decodes per task


def cache_folder(folder: Path, height: int, width: int, channels: int) -> Path:
    """Where the cache of ``folder`` at this size and channel count lives."""
    key = json.dumps([CACHE_FORMAT, str(folder.resolve()), height, width, channels])
    return cache_dir() / SUBFOLDER / hashlib.sha256(key.encode()).hexdigest()[:24]


def file_entries(files: Sequence[Path], folder: Path) -> list[list]:
    """[name relative to ``folder``, size, modification time in ns] per file: what keys a cached row."""
    entries = []
    for path in files:
        stat = path.stat()
        entries.append([str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns])
    return entries


def decoded_images(
    files: Sequence[Path], folder: Path, shape: tuple[int, ...], decode: Decode, workers: int | None = None
) -> np.ndarray:
    """Every file of ``files`` (below ``folder``) decoded to a uint8 array of ``shape``, in order: from
    the cache where it holds them, decoded (and cached) where it does not."""
    target = cache_folder(folder, *shape[:2], shape[2] if len(shape) == 3 else 1)
    entries = file_entries(files, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        cached, why = _read_cache(target, shape)
        if cached is not None and cached[0] == entries:
            return cached[1]
        rows = {tuple(entry): index for index, entry in enumerate(cached[0])} if cached else {}
        missing = [index for index, entry in enumerate(entries) if tuple(entry) not in rows]
        log.info(f"image cache of {folder}: {why or _changes(cached[0], entries)}; decoding {len(missing):,}")
        images = np.empty((len(files), *shape), dtype=np.uint8)
        for index, entry in enumerate(entries):
            if tuple(entry) in rows:
                images[index] = cached[1][rows[tuple(entry)]]
        _decode_into(images, missing, files, decode, workers)
        written = _write_cache(target, images, entries)
    return np.load(written, mmap_mode="r") if written is not None else images


def _read_cache(target: Path, shape: tuple[int, ...]) -> tuple[tuple[list, np.ndarray] | None, str | None]:
    """((entries, images memory-mapped), None), or (None, why there is none usable)."""
    if not (target / INDEX).is_file():
        return None, "no cache yet"
    try:
        index = json.loads((target / INDEX).read_text())
        entries = index["entries"]
        images = np.load(target / Path(index["images"]).name, mmap_mode="r", allow_pickle=False)
        if images.dtype != np.uint8 or images.shape != (len(entries), *shape):
            raise ValueError(f"holds {images.shape} {images.dtype}, not {len(entries)} images of {shape}")
    except (OSError, ValueError, TypeError, KeyError) as error:
        return None, f"the cache in {target} is damaged ({type(error).__name__}: {error}), rebuilt"
    return (entries, images), None


def _changes(before: list, now: list) -> str:
    old = {entry[0]: entry for entry in before}
    new = {entry[0]: entry for entry in now}
    added = len(new.keys() - old.keys())
    removed = len(old.keys() - new.keys())
    changed = sum(1 for name in new.keys() & old.keys() if new[name] != old[name])
    return f"{added:,} files added, {changed:,} changed, {removed:,} removed since it was cached"


def _decode_into(
    images: np.ndarray, indices: list[int], files: Sequence[Path], decode: Decode, workers
) -> None:
    """Decode ``files[i]`` into ``images[i]`` for each i of ``indices``, on every core, with progress."""
    if not indices:
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    started = time.perf_counter()
    with (
        _pool(len(indices), workers or os.cpu_count() or 1) as pool,
        Progress(
            TextColumn("decoding images"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("decode", total=len(indices), rate="")
        for done, (index, pixels) in enumerate(
            zip(indices, pool.map(decode, [files[i] for i in indices], chunksize=CHUNK), strict=True), start=1
        ):
            images[index] = pixels
            if done % 256 == 0 or done == len(indices):
                rate = done / max(time.perf_counter() - started, 1e-9)
                progress.update(task, completed=done, rate=f"{rate:,.0f} images/s")
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
    threaded = any(name in sys.modules for name in ("tensorflow", "jax", "torch"))
    context = multiprocessing.get_context("spawn" if threaded else "fork")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _write_cache(target: Path, images: np.ndarray, entries: list) -> Path | None:
    """The images under a new name, then index.json naming them, renamed into place (the commit); the
    older images files go. Returns the images file, or None when the cache cannot be written (said
    once: the next run decodes again)."""
    try:
        target.mkdir(parents=True, exist_ok=True)
        images_file = target / f"images-{time.time_ns()}-{os.getpid()}.npy"
        _write_synced(images_file, lambda handle: np.save(handle, images, allow_pickle=False))
        index = {"images": images_file.name, "entries": entries}
        partial = target / f".{INDEX}.{os.getpid()}.partial"
        _write_synced(partial, lambda handle: handle.write(json.dumps(index).encode()))
        os.replace(partial, target / INDEX)
    except OSError as error:
        log.warning(f"the image cache in {target} could not be written ({error}); the next run decodes again")
        return None
    for older in target.glob("images-*.npy"):
        if older != images_file:
            older.unlink(missing_ok=True)
    return images_file


def _write_synced(path: Path, write) -> None:
    with open(path, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
