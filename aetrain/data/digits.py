"""scikit-learn's 8x8 handwritten digits (1,797 images, 0..16 grey levels): a real data set that ships
inside scikit-learn, so it trains anywhere, offline, in seconds."""

from __future__ import annotations

from typing import Any

import numpy as np

from aetrain.data.raw import DataError, RawData

MAX_VALUE = 16  # the digits' grey levels run 0..16 (4x4 blocks of a 32x32 bitmap, counted)


def read_digits(data_cfg: Any, spec: Any, download: bool) -> RawData:
    """All 1,797 digits as one pool (the split is drawn from it); they have no test set of their own."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise DataError(
            f"data=digits needs scikit-learn, which is not installed ({err}). Install it with "
            "`pip install scikit-learn` (a dependency of aetrain)."
        ) from None
    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.uint8)
    if images.shape[1:] != (spec.height, spec.width):
        raise DataError(f"scikit-learn's digits came as {images.shape}, not (n, 8, 8); reinstall it.")
    return RawData(
        train_images=images,
        train_labels=np.asarray(digits.target, dtype=np.int64),
        test_images=None,
        test_labels=None,
        source="scikit-learn (sklearn.datasets.load_digits)",
        max_value=MAX_VALUE,
    )
