"""One spec per data set: its shape, classes, split sizes and reader. Every other module reads these.

Each data set is declared once here (``declare("data", NAME, Schema, build=DataSpec(...))``): the
schema of conf/data/NAME.yaml (the settings a user may change, aetrain.config.data_settings) beside
its spec. A model is built from :func:`spec_for` of the run's data config, which needs no files: the
shape of a folder of one's own images comes from ``data.image_size`` and ``data.channels``; only its
class names wait for the folder to be read. A data set from outside aetrain is declared the same way
in a module its YAML names under ``_declared_in_``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aetrain.config.data_settings import DataConfig, DigitsData, ImageFolderData
from aetrain.config.registry import declare, option
from aetrain.data.cifar_pickle import read_cifar10
from aetrain.data.digits import read_digits
from aetrain.data.idx import FASHION_MNIST_FILES, MNIST_FILES, idx_reader
from aetrain.data.image_folder import read_image_folder
from aetrain.data.raw import RawData

Reader = Callable[[Any, "DataSpec", bool], RawData]


@dataclass(frozen=True)
class DataSpec:
    """What a data set is: image shape, classes, the images its files hold per role, how to read it.

    ``train_images`` / ``test_images`` are the counts of the original files (None where the files
    are the user's); a data set whose ``test_images`` is None has no test set of its own and
    ``data.test_size`` of its images are drawn for testing, seeded.
    """

    title: str
    height: int
    width: int
    channels: int
    class_names: tuple[str, ...]
    train_images: int | None
    test_images: int | None
    read: Reader
    where: str  # where its files are found, in one line (docs, --help)
    name: str = ""  # the name it is declared under: data_spec fills it in

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The models' input shape: (height, width) for grey images, (height, width, channels) else.

        Grey images keep no channel axis, so Fashion-MNIST models (and their checkpoints) stay as
        they always were.
        """
        if self.channels == 1:
            return (self.height, self.width)
        return (self.height, self.width, self.channels)

    @property
    def pixels(self) -> int:
        """Values per image (height x width x channels): what a per-pixel loss averages over."""
        return math.prod(self.image_shape)

    @property
    def has_test_split(self) -> bool:
        return self.test_images is not None


DIGIT_NAMES = tuple(str(digit) for digit in range(10))

declare(
    "data",
    "fashion_mnist",
    DataConfig,
    build=DataSpec(
        title="Fashion-MNIST",
        height=28,
        width=28,
        channels=1,
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        train_images=60_000,
        test_images=10_000,
        read=idx_reader(FASHION_MNIST_FILES),
        where="data.dir, else $AETRAIN_DATA_DIR, else /usr/share/datasets/fashion-mnist, the Keras "
        "cache, a Keras download",
    ),
)

declare(
    "data",
    "mnist",
    DataConfig,
    build=DataSpec(
        title="MNIST",
        height=28,
        width=28,
        channels=1,
        class_names=DIGIT_NAMES,
        train_images=60_000,
        test_images=10_000,
        read=idx_reader(MNIST_FILES),
        where="data.dir, else $AETRAIN_DATA_DIR, else the Keras cache (mnist.npz), a Keras download",
    ),
)

declare(
    "data",
    "cifar10",
    DataConfig,
    build=DataSpec(
        title="CIFAR-10",
        height=32,
        width=32,
        channels=3,
        class_names=(
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
        train_images=50_000,
        test_images=10_000,
        read=read_cifar10,
        where="data.dir, else $AETRAIN_DATA_DIR, else the Keras cache, a Keras download "
        "(cifar-10-batches-py/)",
    ),
)

declare(
    "data",
    "digits",
    DigitsData,
    build=DataSpec(
        title="scikit-learn's digits",
        height=8,
        width=8,
        channels=1,
        class_names=DIGIT_NAMES,
        train_images=1_797,
        test_images=None,
        read=read_digits,
        where="inside scikit-learn (sklearn.datasets.load_digits); no files",
    ),
)

declare(
    "data",
    "image_folder",
    ImageFolderData,
    build=DataSpec(
        title="the image folder",
        height=28,
        width=28,
        channels=1,
        class_names=(),
        train_images=None,
        test_images=None,
        read=read_image_folder,
        where="data.dir: a folder of PNG/JPEG images, class sub-folders optional",
    ),
)


def spec_for(data_cfg: Any) -> DataSpec:
    """The spec of the run's data set; its shape follows ``data.image_size`` / ``data.channels``
    where the config has them (a folder of one's own images)."""
    spec = data_spec(data_cfg.name)
    image_size = getattr(data_cfg, "image_size", None)
    if image_size is not None:
        spec = dataclasses.replace(spec, height=int(image_size[0]), width=int(image_size[1]))
    channels = getattr(data_cfg, "channels", None)
    if channels is not None:
        spec = dataclasses.replace(spec, channels=int(channels))
    return spec


def data_spec(name: str) -> DataSpec:
    """The declared spec of the data set ``name`` (KeyError if none is declared), named by its
    declaration: the name is written once, in ``declare``."""
    return dataclasses.replace(option("data", name).build, name=name)
