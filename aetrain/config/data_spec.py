"""What a data set is (:class:`DataSpec`: shape, classes, sizes, reader), and the spec of a run's data.

A data set is declared with its spec as its builder (``declare("data", NAME, Schema,
build=DataSpec(...))``, aetrain.data.specs declares aetrain's own). The spec lives here, beside the
registry, because checking a config needs it: a conv encoder must fit the images, ``data.limit`` must
leave training images. It needs no files and imports no reader: a spec names its reader.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aetrain.config.checks import ConfigError
from aetrain.config.registry import Option, option

# (the data config, the spec, whether to verify the files) -> aetrain.data.raw.RawData
Reader = Callable[[Any, "DataSpec", bool], Any]


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


def check_declared_spec(found: Option, key: str) -> None:
    """A data set declared outside aetrain must be declared with a DataSpec that names its reader."""
    if not (isinstance(found.build, DataSpec) and callable(found.build.read)):
        raise ConfigError(
            key,
            found.declared_in,
            "a module that declares the data set with `build=DataSpec(..., read=...)`",
            f"The data set {found.name!r} is declared with {found.build!r}.",
        )
