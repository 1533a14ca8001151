"""The settings of a data set (conf/data/NAME.yaml) and their checks. Each data set is declared in
aetrain.data.specs with one of these schemas beside its spec (aetrain.config.data_spec: shape,
classes, reader); a data set from outside aetrain uses one of them, or subclasses :class:`Data`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aetrain.config.checks import MAX_COUNT, MAX_SEED, are_layer_sizes, is_count, require
from aetrain.config.data_spec import spec_for

if TYPE_CHECKING:
    from aetrain.config.schema import RunConfig


@dataclass
class Data:
    """Base of every data set's schema; ``check`` refuses bad values naming their key."""

    name: str = "?"

    def check(self, run: RunConfig) -> None:
        test_limit = getattr(self, "test_limit", None)
        if test_limit is not None:
            require(
                is_count(test_limit),
                "data.test_limit",
                test_limit,
                f"null or an integer from 1 to {MAX_COUNT}",
            )


@dataclass
class DataConfig(Data):
    """A data set with a test set of its own (fashion_mnist, mnist, cifar10): aetrain.data.specs."""

    name: str = "fashion_mnist"
    dir: str | None = None
    limit: int | None = None
    val_size: float = 5000  # images, or below 1 a fraction of the training images kept
    test_limit: int | None = None

    def check(self, run: RunConfig) -> None:
        require(
            is_split_size(self.val_size),
            "data.val_size",
            self.val_size,
            f"a fraction of the training images kept (between 0 and 1) or an integer from 1 to {MAX_COUNT}",
        )
        if self.limit is not None and self.val_size >= 1:
            require(
                self.val_size < self.limit <= MAX_COUNT,
                "data.limit",
                self.limit,
                f"null (all {spec_for(self).train_images:,}) or an integer > data.val_size "
                f"({int(self.val_size)}) and <= {MAX_COUNT}",
                "The last data.val_size of the kept images are the validation set.",
            )
        super().check(run)


def is_split_size(size: object) -> bool:
    """A fraction strictly between 0 and 1, or a whole number of images from 1 to MAX_COUNT."""
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not math.isfinite(size):
        return False
    return 0 < size < 1 or (size >= 1 and size == int(size) and size <= MAX_COUNT)


def check_drawn_splits(data: Data) -> None:
    """``val_size``, ``test_size``, ``split_seed`` and ``limit`` of a data set whose validation and
    test images are drawn from one pool (no test set of its own)."""
    for key in ("val_size", "test_size"):
        size = getattr(data, key)
        require(
            is_split_size(size),
            f"data.{key}",
            size,
            "a fraction of the images (between 0 and 1) or a whole number of images >= 1",
        )
    require(
        is_count(data.split_seed, 0, MAX_SEED),
        "data.split_seed",
        data.split_seed,
        f"an integer from 0 to {MAX_SEED}",
    )
    if data.limit is not None:
        require(
            is_count(data.limit, 2),
            "data.limit",
            data.limit,
            f"null (all) or an integer from 2 to {MAX_COUNT}",
        )


@dataclass
class DigitsData(Data):
    """scikit-learn's digits: no files, no test set of its own; sizes below 1 are fractions."""

    name: str = "digits"
    limit: int | None = None
    val_size: float = 180
    test_size: float = 360
    split_seed: int = 0
    test_limit: int | None = None

    def check(self, run: RunConfig) -> None:
        check_drawn_splits(self)
        super().check(run)


@dataclass
class ImageFolderData(Data):
    """A folder of one's own PNG/JPEG images (class sub-folders optional), resized to image_size."""

    name: str = "image_folder"
    dir: str | None = None
    image_size: list[int] = field(default_factory=lambda: [28, 28])
    channels: int = 1
    limit: int | None = None
    val_size: float = 0.1
    test_size: float = 0.1
    split_seed: int = 0
    test_limit: int | None = None

    def check(self, run: RunConfig) -> None:
        check_drawn_splits(self)
        super().check(run)
        require(
            self.dir is not None and self.dir.strip() != "",
            "data.dir",
            self.dir,
            "the folder of your PNG/JPEG images",
            "data=image_folder reads a folder of your own images (class sub-folders optional).",
        )
        check_image_shape(self)


def check_image_shape(data: Data) -> None:
    """``image_size`` and ``channels`` of a data set whose images are resized and converted to them."""
    require(
        len(data.image_size) == 2 and are_layer_sizes(data.image_size) and max(data.image_size) <= 4096,
        "data.image_size",
        data.image_size,
        "[height, width], two integers from 1 to 4096",
        "Every image is resized to it.",
    )
    require(data.channels in (1, 3), "data.channels", data.channels, "1 (grey) or 3 (RGB colour)")


#: A TFDS name as ``tfds.builder`` parses it: ``name[/config][:version]``; TFDS itself says whether
#: it knows the set (at read time, exit 3).
TFDS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/+-]*")
#: The keys of data=tfds that name a split or a feature, and what null means where it is allowed.
TFDS_NAMED_KEYS = {
    "split_train": None,
    "image_key": None,
    "split_test": "the test images are drawn from split_train",
    "label_key": "no labels: one class",
}


@dataclass
class TfdsData(Data):
    """A TensorFlow Datasets image data set by name, read offline from a prepared TFDS folder and
    resized to image_size (aetrain.data.tfds). With ``split_test`` null the test images are drawn
    from the training split, as for a folder of images."""

    name: str = "tfds"
    dataset: str = "mnist"
    dir: str | None = None
    split_train: str = "train"
    split_test: str | None = "test"
    image_key: str = "image"
    label_key: str | None = "label"
    image_size: list[int] = field(default_factory=lambda: [28, 28])
    channels: int = 1
    limit: int | None = None
    val_size: float = 0.1
    test_size: float = 0.1  # used only when split_test is null
    split_seed: int = 0
    test_limit: int | None = None

    def check(self, run: RunConfig) -> None:
        check_drawn_splits(self)
        super().check(run)
        require(
            bool(TFDS_NAME.fullmatch(self.dataset)) and ".." not in self.dataset,
            "data.dataset",
            self.dataset,
            "a TensorFlow Datasets name: name[/config][:version], e.g. celeb_a, mnist:3.0.1",
        )
        require(
            self.dir is None or self.dir.strip() != "",
            "data.dir",
            self.dir,
            "null (TFDS's folder: $TFDS_DATA_DIR, else ~/tensorflow_datasets) or your TFDS folder",
        )
        for key, null_means in TFDS_NAMED_KEYS.items():
            value = getattr(self, key)
            require(
                (value is None and null_means is not None) or (value is not None and value.strip() != ""),
                f"data.{key}",
                value,
                "a name the data set's TFDS info lists" + (f", or null ({null_means})" if null_means else ""),
            )
        check_image_shape(self)
