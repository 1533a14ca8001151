"""Data sets: one spec each (aetrain.data.specs), their readers, the splits (images kept
as stored, read as float32 a batch at a time), the batches Keras trains on.

``data=NAME`` picks a declared spec (:func:`data_spec`, from aetrain.config.data_spec, where checking a
config finds it too); :func:`load_data` reads, checks and splits it; models take their shape from
:func:`spec_for` of the same config. Importing this package loads
neither TensorFlow nor Keras.
"""

from aetrain.config.data_spec import DataSpec, data_spec, spec_for
from aetrain.data.datasets import make_dataset, make_training_dataset
from aetrain.data.idx import DEBIAN_DIR, FILES, cache_dir, candidate_dirs, find_data_dir, load_raw, read_idx
from aetrain.data.raw import DataError, RawData
from aetrain.data.scaled_images import ScaledImages
from aetrain.data.splits import FashionMNIST, ImageSplits, load_data, load_fashion_mnist, scale_pixels

__all__ = [
    "DEBIAN_DIR",
    "FILES",
    "DataError",
    "DataSpec",
    "FashionMNIST",
    "ImageSplits",
    "RawData",
    "ScaledImages",
    "cache_dir",
    "candidate_dirs",
    "data_spec",
    "find_data_dir",
    "load_data",
    "load_fashion_mnist",
    "load_raw",
    "make_dataset",
    "make_training_dataset",
    "read_idx",
    "scale_pixels",
    "spec_for",
]
