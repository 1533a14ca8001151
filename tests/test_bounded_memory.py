"""Bounded memory (issue 23): a folder whose decoded images are larger than the memory the training may
take beside the framework still trains, read a batch at a time from the memory-mapped cache.

The folder is decoded into the cache first (no limit). Then ``aetrain trainer=smoke`` trains twice on
it: on 650 images, which measures what the framework, the model and its batches take, and on every
image, under a memory cgroup limit of the first run's anonymous memory plus half the training split's
uint8 size (where this machine lets a cgroup be made: root, a writable cgroup folder), so that the
split cannot be held in memory even as uint8, let alone as float32 (the page cache of the mapped
file is the kernel's to take back). Everywhere, the peaks are asserted: the
anonymous memory (what a copy of the data would add to) grows by less than half the split's uint8
size, the resident set (page cache of the mapped file included) by at most 1.5 times it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from aetrain.data import ScaledImages
from bench.peak_memory import run_measured

IMAGES = 10_000
SIDE = 64
SPLIT = ["data.test_size=0.02", "data.val_size=0.02", "data.test_limit=100"]
#: 637 training and 13 validation images: as with every image, each ends in a smaller batch (which
#: compiles its own step), so the two runs differ in the number of images alone
FEW_IMAGES = "data.limit=650"
AETRAIN = Path(sys.executable).with_name("aetrain")


def write_folder(folder: Path, count: int) -> Path:
    """``count`` 64x64 colour PNGs, each its own 16x16 pattern scaled up (quick to write and read)."""
    from PIL import Image

    folder.mkdir(parents=True)
    patterns = np.random.default_rng(0).integers(0, 256, (count, 16, 16, 3), dtype=np.uint8)
    for index, pattern in enumerate(patterns):
        pixels = np.kron(pattern, np.ones((SIDE // 16, SIDE // 16, 1), dtype=np.uint8))
        Image.fromarray(pixels).save(folder / f"{index:05d}.png", compress_level=1)
    return folder


def forget_pages(path: Path) -> None:
    """Drop the file's pages from the page cache, so that a run reads (and is charged for) them itself."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


@pytest.mark.slow
def test_a_folder_larger_than_the_memory_left_beside_the_framework_trains(tmp_path, monkeypatch):
    from aetrain.config import ImageFolderData
    from aetrain.data import load_data

    folder = write_folder(tmp_path / "images" / "all", IMAGES).parent
    env = {**os.environ, "AETRAIN_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "120"}
    monkeypatch.setenv("AETRAIN_CACHE_DIR", env["AETRAIN_CACHE_DIR"])
    splits = load_data(
        ImageFolderData(dir=str(folder), image_size=[SIDE, SIDE], channels=3, test_size=0.02, val_size=0.02)
    )
    assert isinstance(splits.x_train.stored, np.memmap)
    train_bytes = len(splits.x_train) * SIDE * SIDE * 3  # the training split as uint8
    forget_pages(Path(splits.x_train.stored.filename))

    def train(name: str, *overrides: str, limit: int | None = None):
        command = [
            str(AETRAIN), "data=image_folder", f"data.dir={folder}", f"data.image_size=[{SIDE},{SIDE}]",
            "data.channels=3", "trainer=smoke", *SPLIT, "trainer.progress=false", "logger=[]",
            f"hydra.run.dir={tmp_path / name}", *overrides,
        ]  # fmt: skip
        run = run_measured(command, env=env, cwd=tmp_path, limit=limit)
        assert run.returncode == 0, f"{name}: exit {run.returncode}\n{run.output[-3000:]}"
        return run, json.loads((tmp_path / name / "metrics.json").read_text())

    framework, small = train("framework", FEW_IMAGES)
    assert small["data"]["images"]["train"] == 637
    # what the framework holds, plus half the split as uint8: where a cgroup can be made here
    limit = None if framework.cgroup_peak is None else framework.peak_anonymous + train_bytes // 2
    whole, metrics = train("whole", "data.limit=null", limit=limit)
    assert metrics["data"]["images"]["train"] == len(splits.x_train) > 9_000
    assert metrics["data_seconds"] < 5  # mapped from the cache, not decoded again
    mb = 1 << 20
    print(
        f"training split {train_bytes / mb:.0f} MB as uint8; limit "
        + (f"{limit / mb:.0f} MB" if whole.limited else "none (no memory cgroup can be made here)")
        + f"; peak anonymous {framework.peak_anonymous / mb:.0f} -> {whole.peak_anonymous / mb:.0f} MB, "
        f"resident {framework.peak_resident / mb:.0f} -> {whole.peak_resident / mb:.0f} MB"
        + (f", charged to the cgroup {whole.cgroup_peak / mb:.0f} MB" if whole.cgroup_peak else "")
    )
    assert whole.limited == (limit is not None)
    assert whole.peak_anonymous <= framework.peak_anonymous + train_bytes // 2
    assert whole.peak_resident <= framework.peak_resident + 1.5 * train_bytes


def test_the_probes_codings_of_a_split_are_read_a_few_batches_at_a_time(monkeypatch):
    """aetrain-evaluate's probe encodes the training split: never read whole as float32, and the same
    codings as one predict over it."""
    import keras

    from aetrain.analysis import evaluation
    from aetrain.models.build import coding_vectors

    reads: list[int] = []

    class CountedImages(ScaledImages):
        def read(self, rows: np.ndarray) -> np.ndarray:
            reads.append(len(rows))
            return super().read(rows)

    stored = np.random.default_rng(0).integers(0, 256, (1300, 8, 8), dtype=np.uint8)
    images = CountedImages(stored, np.arange(len(stored))[::-1].copy())
    inputs = keras.Input((8, 8))
    encoder = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(5)], name="encoder")
    model = keras.Model(inputs, encoder(inputs))
    monkeypatch.setattr(evaluation, "SPLIT_READ_BYTES", 4 * 64 * evaluation.BATCH)  # one batch a read
    codings = evaluation.split_coding_vectors(model, images)
    assert reads == [512, 512, 276]
    np.testing.assert_array_equal(codings, coding_vectors(model, np.asarray(images)))
