"""A data set's train / validation / test splits, read through its spec and checked against it.

Data sets with a test set of their own (Fashion-MNIST, MNIST, CIFAR-10) split positionally: of the
first ``data.limit`` training images the last ``data.val_size`` validate, the book's 55,000 / 5,000
(a ``val_size`` below 1 is a fraction of the images kept).
Data sets without one (scikit-learn's digits, a folder of images) are shuffled once with
``data.split_seed`` and cut into test, validation and training images.

``data.limit`` and ``data.test_limit`` are caps: one above what the files hold keeps them all, and
says so (:attr:`ImageSplits.clipped`, logged by the run and recorded in metrics.json), so a preset
such as ``trainer=smoke`` works on a data set of any size and no run claims images it did not have.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from aetrain.config.data_spec import DataSpec, spec_for
from aetrain.data.raw import DataError, RawData
from aetrain.data.scaled_images import ScaledImages


@dataclass(frozen=True)
class ImageSplits:
    """The three splits (images kept as stored, read as float32 in [0, 1]: ScaledImages), where they
    came from, and the spec (with the class names the files gave, for a folder of images)."""

    x_train: ScaledImages
    y_train: np.ndarray
    x_val: ScaledImages
    y_val: np.ndarray
    x_test: ScaledImages
    y_test: np.ndarray
    source: Path | str
    spec: DataSpec | None = None
    clipped: dict[str, dict[str, int]] = field(default_factory=dict)  # key: {"asked": N, "used": M}

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names if self.spec is not None else ()

    def counts(self) -> dict[str, int]:
        """Images per split, as recorded in metrics.json."""
        return {"train": len(self.x_train), "validation": len(self.x_val), "test": len(self.x_test)}

    def clipped_notes(self) -> list[str]:
        """One line per cap above what exists: ``data.limit=100000 asked, 60,000 exist: all used``."""
        return [
            f"{key}={value['asked']} asks for more images than exist; all {value['used']:,} are used"
            for key, value in self.clipped.items()
        ]


FashionMNIST = ImageSplits  # the name this class had while aetrain knew one data set


def load_data(data_cfg: Any, *, download: bool = True, test_limit: Any = "config") -> ImageSplits:
    """Read the data set ``data_cfg`` names, check it against its spec and split it.

    ``test_limit`` overrides ``data.test_limit`` (the companion commands' ``--limit``).
    """
    spec = spec_for(data_cfg)
    test_limit = getattr(data_cfg, "test_limit", None) if test_limit == "config" else test_limit
    _check_sizes(data_cfg.limit, data_cfg.val_size, test_limit)
    raw = spec.read(data_cfg, spec, download)
    if raw.class_names is not None:
        spec = replace(spec, class_names=raw.class_names)
    if raw.test_images is not None:
        return _split_given_test_set(raw, spec, data_cfg.limit, data_cfg.val_size, test_limit)
    return _split_pool(raw, spec, data_cfg, test_limit)


def load_fashion_mnist(
    data_dir: str | Path | None = None,
    limit: int | None = None,
    val_size: int = 5000,
    download: bool = True,
    test_limit: int | None = None,
) -> ImageSplits:
    """Fashion-MNIST split as ``data.dir`` / ``data.limit`` / ``data.val_size`` say (see load_data)."""
    from aetrain.config import DataConfig

    data_cfg = DataConfig(dir=None if data_dir is None else str(data_dir), limit=limit, val_size=val_size)
    return load_data(data_cfg, download=download, test_limit=test_limit)


def _split_given_test_set(
    raw: RawData, spec: DataSpec, limit: int | None, val_size: float, test_limit: int | None
) -> ImageSplits:
    clipped: dict[str, dict[str, int]] = {}
    limit = _clip("data.limit", limit, len(raw.train_images), clipped)
    test_limit = _clip("data.test_limit", test_limit, len(raw.test_images), clipped)
    kept = len(raw.train_images[:limit])
    n_val = resolve_size(val_size, kept)
    _check_val_size(val_size, n_val, kept, limit)
    train = ScaledImages.of(raw.train_images, raw.max_value)
    labels = raw.train_labels[:limit].astype(np.int64)
    n_train = kept - n_val
    return ImageSplits(
        x_train=train.subset(slice(0, n_train)),
        y_train=labels[:n_train],
        x_val=train.subset(slice(n_train, kept)),
        y_val=labels[n_train:],
        x_test=ScaledImages.of(raw.test_images, raw.max_value).subset(slice(0, test_limit)),
        y_test=raw.test_labels[:test_limit].astype(np.int64),
        source=raw.source,
        spec=spec,
        clipped=clipped,
    )


def _split_pool(raw: RawData, spec: DataSpec, data_cfg: Any, test_limit: int | None) -> ImageSplits:
    """Shuffle the pool with ``data.split_seed``; the first ``test_size`` test, the rest as above."""
    total = len(raw.train_images)
    n_test = resolve_size(data_cfg.test_size, total)
    n_val = resolve_size(data_cfg.val_size, total - n_test)
    if n_test + n_val >= total:
        raise DataError(
            f"{raw.source} holds {total} images, too few for data.test_size={data_cfg.test_size} "
            f"({n_test} images) and data.val_size={data_cfg.val_size} ({n_val}) with any left to train "
            "on. Lower them, or add images."
        )
    order = np.random.default_rng(data_cfg.split_seed).permutation(total)
    test_order, rest = order[:n_test], order[n_test:]
    clipped: dict[str, dict[str, int]] = {}
    limit = _clip("data.limit", data_cfg.limit, len(rest), clipped)
    test_limit = _clip("data.test_limit", test_limit, n_test, clipped)
    kept = rest[:limit]
    n_val = resolve_size(data_cfg.val_size, len(kept))
    _check_val_size(data_cfg.val_size, n_val, len(kept), limit)
    n_train = len(kept) - n_val
    test_order = test_order[:test_limit]

    def take(indices: np.ndarray) -> tuple[ScaledImages, np.ndarray]:
        labels = raw.train_labels[indices].astype(np.int64)
        return ScaledImages(raw.train_images, indices, raw.max_value), labels

    x_train, y_train = take(kept[:n_train])
    x_val, y_val = take(kept[n_train:])
    x_test, y_test = take(test_order)
    return ImageSplits(
        x_train, y_train, x_val, y_val, x_test, y_test, source=raw.source, spec=spec, clipped=clipped
    )


def resolve_size(size: float, total: int) -> int:
    """A split size as a count: a number below 1 is a fraction of ``total`` (at least one image).
    ``data.test_size`` is a fraction of the whole pool, ``data.val_size`` of the images kept for
    training and validation (after ``data.limit``): so ``trainer=smoke``'s 0.2 fits a data set of
    any size."""
    if 0 < size < 1:
        return max(1, round(size * total))
    return int(size)


def _clip(key: str, value: int | None, available: int, clipped: dict[str, dict[str, int]]) -> int | None:
    """``value`` as a cap on ``available`` images; one above it is noted in ``clipped``."""
    if value is not None and value > available:
        clipped[key] = {"asked": value, "used": available}
        return available
    return value


def _check_val_size(val_size: float, n_val: int, kept: int, limit: int | None) -> None:
    if n_val >= kept:
        from_limit = f" (data.limit={limit})" if limit is not None else ""
        raise DataError(
            f"data.val_size={val_size} must be smaller than the number of training images kept, "
            f"{kept}{from_limit}, so that some are left to train on. Lower data.val_size (a fraction "
            "such as 0.1 fits any size) or raise data.limit."
        )


def _check_sizes(limit: int | None, val_size: float, test_limit: int | None) -> None:
    """Reject impossible split sizes before any file is touched."""
    if val_size <= 0:
        raise DataError(f"data.val_size={val_size} must be at least 1 validation image.")
    if limit is not None and limit < 2:
        raise DataError(
            f"data.limit={limit} must be at least 2 (one image to train on, one to validate), "
            "or null to keep all the training images."
        )
    if test_limit is not None and test_limit < 1:
        raise DataError(f"data.test_limit={test_limit} must be at least 1, or null for all the test images.")


def scale_pixels(images: np.ndarray, max_value: int = 255) -> np.ndarray:
    """Integer pixels 0..max_value as float32 in [0, 1], in one pass (no float64 intermediate)."""
    return np.divide(images, max_value, dtype=np.float32)
