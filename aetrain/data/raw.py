"""What every reader hands back (:class:`RawData`) and the one error a data problem raises.

Kept apart from the readers and the specs so that both can import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aetrain import exit_codes
from aetrain.errors import AetrainError


class DataError(AetrainError):
    """The data cannot be used; the message names the path, the problem and the fix."""

    exit_code = exit_codes.DATA


@dataclass(frozen=True)
class RawData:
    """A data set as its files hold it, before any split: integer pixels and integer labels.

    ``test_images`` is None for a data set without a test split of its own (scikit-learn's digits, a
    folder of images): the split is then drawn from ``train_images``. Pixels run from 0 to
    ``max_value`` (255 for 8-bit images, 16 for the digits), in the spec's image shape.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    source: Path | str
    max_value: int = 255
    class_names: tuple[str, ...] | None = None  # the folder's names, where they come from the files
