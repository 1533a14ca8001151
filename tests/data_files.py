"""Write small data sets in their original formats for tests: CIFAR-10 python batches, image folders."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from aetrain.data import cifar_pickle

CIFAR_LABEL = {"train": "training batch {i} of 5", "test": "testing batch 1 of 1"}


def cifar_batch(count: int, role: str, i: int = 1, seed: int = 0) -> dict[bytes, object]:
    """A batch dict as the original files hold it: bytes keys, channel-first uint8 rows, int labels."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": CIFAR_LABEL[role].format(i=i).encode(),
        b"labels": [int(label) for label in rng.integers(0, 10, count)],
        b"data": rng.integers(0, 256, (count, 3 * 32 * 32), dtype=np.uint8),
        b"filenames": [f"image_{n}.png".encode() for n in range(count)],
    }


def write_cifar_folder(folder: Path, per_batch: int = 20, test: int = 20) -> Path:
    """``cifar-10-batches-py/`` with five training batches and the test batch, pickled at protocol 2
    (the originals' protocol)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(cifar_pickle.TRAIN_BATCHES, start=1):
        (folder / name).write_bytes(pickle.dumps(cifar_batch(per_batch, "train", i, seed=i), protocol=2))
    (folder / cifar_pickle.TEST_BATCH).write_bytes(
        pickle.dumps(cifar_batch(test, "test", seed=9), protocol=2)
    )
    return folder


class RunsACommand:
    """Unpickling this calls os.system(command): what a hostile 'data_batch_1' would do."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def hostile_pickle(command: str) -> bytes:
    return pickle.dumps({b"data": RunsACommand(command), b"labels": []}, protocol=2)


def write_png_folder(folder: Path, images: np.ndarray, labels: np.ndarray, names: list[str]) -> Path:
    """One PNG per image under a sub-folder per class (written by Pillow, read back the same way)."""
    from PIL import Image

    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        class_folder = folder / names[int(label)]
        class_folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(class_folder / f"{index:05d}.png")
    return folder
