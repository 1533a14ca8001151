"""Write IDX files (the format Fashion-MNIST ships in) for tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from aetrain import data


def write_idx(path: Path, array: np.ndarray, *, type_code: int = 0x08) -> Path:
    """Write ``array`` as an IDX file, gzip'd when the name ends in .gz."""
    header = struct.pack(">HBB", 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    content = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)
    return path


def write_fashion_files(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """The four Fashion-MNIST files, under their real names, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        write_idx(folder / data.FILES[key], array)
    return folder


def small_fashion_arrays(n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """The first images of the real Fashion-MNIST where the Debian package is installed, else
    deterministic synthetic garments (bright rectangles of varying size) so tests run anywhere."""
    if all((data.DEBIAN_DIR / name).is_file() for name in data.FILES.values()):
        raw = {key: data.read_idx(data.DEBIAN_DIR / name) for key, name in data.FILES.items()}
        return {
            "train_images": raw["train_images"][:n_train],
            "train_labels": raw["train_labels"][:n_train],
            "test_images": raw["test_images"][:n_test],
            "test_labels": raw["test_labels"][:n_test],
        }
    rng = np.random.default_rng(0)

    def garments(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, label in enumerate(labels):
            half_width, half_height = 3 + int(label) % 5, 4 + int(label) // 2
            images[i, 14 - half_height : 14 + half_height, 14 - half_width : 14 + half_width] = 255
        noise = rng.integers(0, 40, images.shape)
        return np.clip(images.astype(int) - noise, 0, 255).astype(np.uint8), labels

    train_images, train_labels = garments(n_train)
    test_images, test_labels = garments(n_test)
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }
