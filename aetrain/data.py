"""Fashion-MNIST: find the four IDX files, verify and parse them, split them, feed tf.data.

The files are looked for in a few well-known folders (an explicit ``data.dir``,
``$AETRAIN_DATA_DIR``, Debian's ``dataset-fashion-mnist`` package, the Keras download cache), so
training works offline wherever the Debian package is installed. Every problem with the data is a
:class:`DataError` whose message names the file, says what is wrong and how to fix it, because a
reshape error from deep inside numpy tells a user nothing.

TensorFlow and Keras are imported inside the functions that need them: importing this module stays
cheap, so configuration mistakes are reported before TensorFlow's start-up cost is paid.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

CLASS_NAMES: tuple[str, ...] = (
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
)
IMAGE_SHAPE = (28, 28)

IDX_UNSIGNED_BYTE = 0x08
IDX_TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}
# Part of the cache key: bump it when the cache's contents change, so old files are not reused.
CACHE_FORMAT = 1


class DataError(Exception):
    """The data cannot be used; the message names the path, the problem and the fix."""


@dataclass(frozen=True)
class FashionMNIST:
    """The three splits, pixels scaled to float32 in [0, 1], and the folder they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: Path


# --- IDX parsing ------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzip'd when its name ends in .gz) into a uint8 array of its dims.

    The header is checked against the payload before reshaping, so a truncated download or a
    wrong file fails here, with its name, instead of later as a puzzling shape error.
    """
    path = Path(path)
    raw = _read_idx_bytes(path)
    dims = _parse_idx_header(path, raw)
    header_size = 4 + 4 * len(dims)
    expected, actual = math.prod(dims), len(raw) - header_size
    if actual != expected:
        problem = "truncated" if actual < expected else "longer than its header says"
        raise DataError(
            f"{path} is {problem}: its header declares shape {dims}, i.e. {expected} bytes of "
            f"data, but it holds {actual} bytes. {_replace_hint()}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def _read_idx_bytes(path: Path) -> bytes:
    """The file's decompressed bytes; a missing, unreadable or broken file is a DataError."""
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file. {_how_to_get_data()}")
    try:
        content = path.read_bytes()
    except OSError as err:
        raise DataError(
            f"{path} cannot be read ({err.strerror}). Check its permissions, or point "
            "data.dir / $AETRAIN_DATA_DIR at a readable copy of Fashion-MNIST."
        ) from err
    if path.suffix != ".gz":
        return content
    try:
        return gzip.decompress(content)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"{path} is not a complete gzip file ({err}); the download was probably cut short "
            f"or the file is damaged. {_replace_hint()}"
        ) from err


def _parse_idx_header(path: Path, raw: bytes) -> tuple[int, ...]:
    """The dims from an IDX header: two zero bytes, type code, ndim, then ndim big-endian u32s."""
    if len(raw) < 4:
        raise DataError(f"{path} is too short ({len(raw)} bytes) to be an IDX file. {_replace_hint()}")
    zeros, type_code, ndim = struct.unpack_from(">HBB", raw)
    if zeros != 0:
        raise DataError(
            f"{path} is not an IDX file: its magic number is 0x{raw[:4].hex()}, but IDX files "
            f"start with two zero bytes. {_replace_hint()}"
        )
    if type_code != IDX_UNSIGNED_BYTE:
        type_name = IDX_TYPE_NAMES.get(type_code, "unknown")
        raise DataError(
            f"{path} holds IDX data type 0x{type_code:02x} ({type_name}); aetrain reads only "
            f"0x08 (unsigned byte), the type of Fashion-MNIST's images and labels. "
            f"{_replace_hint()}"
        )
    if len(raw) < 4 + 4 * ndim:
        raise DataError(
            f"{path} is truncated inside its header (it declares {ndim} dimensions but holds "
            f"{len(raw)} bytes). {_replace_hint()}"
        )
    return struct.unpack_from(f">{ndim}I", raw, 4)


# --- finding the files ------------------------------------------------------------------------


def candidate_dirs(explicit: str | Path | None) -> list[Path]:
    """The folders to search, in order: an explicit folder alone, else env, Debian, Keras cache."""
    if explicit is not None:
        return [Path(explicit).expanduser()]
    dirs = []
    if os.environ.get("AETRAIN_DATA_DIR"):
        dirs.append(Path(os.environ["AETRAIN_DATA_DIR"]).expanduser())
    dirs += [DEBIAN_DIR, keras_cache_dir()]
    return dirs


def keras_cache_dir() -> Path:
    """Where ``keras.datasets.fashion_mnist.load_data`` keeps its download (same file names)."""
    keras_home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(keras_home).expanduser() / "datasets" / "fashion-mnist"


def missing_files(folder: Path) -> list[str]:
    """The Fashion-MNIST file names that ``folder`` lacks (all of them when it does not exist)."""
    return [name for name in FILES.values() if not (folder / name).is_file()]


def fetch_with_keras() -> None:
    """Download Fashion-MNIST into the Keras cache, for machines without the Debian package."""
    import keras

    keras.datasets.fashion_mnist.load_data()


def find_data_dir(explicit: str | Path | None = None, download: bool = True) -> Path:
    """The first candidate folder holding all four files, downloading with Keras as a last resort.

    An explicit folder is taken at its word: if it is incomplete the user made a mistake worth
    reporting, so nothing else is searched and nothing is downloaded.
    """
    candidates = candidate_dirs(explicit)
    for folder in candidates:
        if not missing_files(folder):
            return folder
    if explicit is not None:
        raise DataError(_explicit_dir_message(candidates[0]))

    download_note = " Downloading was not attempted (download=False)."
    if download:
        try:
            fetch_with_keras()
        except Exception as err:  # any failure (no network, proxy, disk) ends in the same advice
            download_note = f" Downloading it with Keras failed: {type(err).__name__}: {err}."
        else:
            if not missing_files(keras_cache_dir()):
                return keras_cache_dir()
            download_note = " Keras's download did not leave the files in its cache folder."
    looked = "; ".join(_describe_folder(folder) for folder in candidates)
    raise DataError(f"Fashion-MNIST was not found. Looked in: {looked}.{download_note} {_how_to_get_data()}")


def _describe_folder(folder: Path) -> str:
    """One place looked, and why it did not do: absent, or which files it lacks."""
    if not folder.is_dir():
        return f"{folder} (no such folder)"
    return f"{folder} (missing {', '.join(missing_files(folder))})"


def _explicit_dir_message(folder: Path) -> str:
    problem = "does not exist" if not folder.is_dir() else f"is missing {', '.join(missing_files(folder))}"
    return (
        f"data.dir={folder} {problem}. Point data.dir at a folder holding all four files "
        f"({', '.join(FILES.values())}), or leave it unset to search $AETRAIN_DATA_DIR, "
        f"{DEBIAN_DIR} and the Keras cache ({keras_cache_dir()})."
    )


def _how_to_get_data() -> str:
    return (
        "To get the data, run `make data` (installs Debian's dataset-fashion-mnist package into "
        f"{DEBIAN_DIR}), or set data.dir=PATH or $AETRAIN_DATA_DIR to a folder holding "
        f"{', '.join(FILES.values())}."
    )


def _replace_hint() -> str:
    return (
        "Replace it with an intact copy: run `make data`, or delete the damaged file so that "
        "aetrain downloads Fashion-MNIST again."
    )


# --- loading, with a decoded-array cache ------------------------------------------------------


def load_raw(data_dir: Path) -> dict[str, np.ndarray]:
    """The four uint8 arrays keyed like FILES, checked, and cached decoded for the next run.

    Decompressing 30 MB of gzip costs about a second on every run; the .npz cache loads in a
    fraction of that. Its name hashes each source's path, size and mtime, so a replaced source
    is never answered from a stale cache.
    """
    paths = {key: Path(data_dir) / name for key, name in FILES.items()}
    cache_file = _cache_file_for(paths)
    if cache_file is not None:
        cached = _read_cache(cache_file, paths)
        if cached is not None:
            return cached
    arrays = {key: read_idx(path) for key, path in paths.items()}
    check_raw(arrays, paths)
    if cache_file is not None:
        _write_cache(cache_file, arrays)
    return arrays


def check_raw(arrays: dict[str, np.ndarray], paths: dict[str, Path]) -> None:
    """Images must be 28x28 and each split's images and labels must pair up one to one."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        images_path, labels_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise DataError(
                f"{images_path} holds an array of shape {images.shape}, but Fashion-MNIST "
                f"images are 28x28 (shape (n, 28, 28)). {_replace_hint()}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(
                f"{images_path} holds {len(images)} images but {labels_path} holds "
                f"{labels.size} labels; the two files must come from the same Fashion-MNIST "
                f"split. {_replace_hint()}"
            )


def cache_dir() -> Path:
    """The user cache folder: $AETRAIN_CACHE_DIR, else $XDG_CACHE_HOME/aetrain, else ~/.cache."""
    if os.environ.get("AETRAIN_CACHE_DIR"):
        return Path(os.environ["AETRAIN_CACHE_DIR"]).expanduser()
    xdg_cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg_cache).expanduser() / "aetrain"


def _cache_file_for(paths: dict[str, Path]) -> Path | None:
    """The cache file for these sources, or None when one cannot be stat'ed (read_idx will say)."""
    fingerprint: list[object] = [CACHE_FORMAT]
    try:
        for key in sorted(paths):
            stat = paths[key].stat()
            fingerprint.append((key, str(paths[key].resolve()), stat.st_size, stat.st_mtime_ns))
    except OSError:
        return None
    digest = hashlib.sha256(repr(fingerprint).encode()).hexdigest()[:24]
    return cache_dir() / f"fashion-mnist-{digest}.npz"


def _read_cache(cache_file: Path, paths: dict[str, Path]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the cache is absent, unreadable or not what we wrote."""
    try:
        with np.load(cache_file, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in FILES}
        check_raw(arrays, paths)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, DataError):
        return None
    if any(array.dtype != np.uint8 for array in arrays.values()):
        return None
    return arrays


def _write_cache(cache_file: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a cache; skip on failure.

    The cache is only an optimisation: a read-only or full cache folder must not stop training.
    """
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=cache_file.parent, suffix=".npz.tmp")
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            with os.fdopen(handle, "wb") as temp_file:
                np.savez(temp_file, **arrays)
            os.replace(temp_name, cache_file)
    finally:
        Path(temp_name).unlink(missing_ok=True)


# --- splits -----------------------------------------------------------------------------------


def load_fashion_mnist(
    data_dir: str | Path | None = None,
    limit: int | None = None,
    val_size: int = 5000,
    download: bool = True,
    test_limit: int | None = None,
) -> FashionMNIST:
    """Find, load and split Fashion-MNIST, pixels scaled to float32 in [0, 1].

    Of the first ``limit`` training images (all 60,000 when None) the last ``val_size`` validate
    and the rest train, the book's 55,000 / 5,000 split; ``test_limit`` keeps the first N test
    images. The split is positional, not random, so every run validates on the same images.
    """
    _check_sizes(limit, val_size, test_limit)
    source = find_data_dir(data_dir, download=download)
    raw = load_raw(source)
    kept_images = raw["train_images"][:limit]
    if val_size >= len(kept_images):
        from_limit = f" (data.limit={limit})" if limit is not None else ""
        raise DataError(
            f"data.val_size={val_size} must be smaller than the number of training images kept, "
            f"{len(kept_images)}{from_limit}, so that some are left to train on. Lower "
            "data.val_size or raise data.limit."
        )
    pixels = scale_pixels(kept_images)
    labels = raw["train_labels"][:limit].astype(np.int64)
    n_train = len(pixels) - val_size
    return FashionMNIST(
        x_train=pixels[:n_train],
        y_train=labels[:n_train],
        x_val=pixels[n_train:],
        y_val=labels[n_train:],
        x_test=scale_pixels(raw["test_images"][:test_limit]),
        y_test=raw["test_labels"][:test_limit].astype(np.int64),
        source=source,
    )


def _check_sizes(limit: int | None, val_size: int, test_limit: int | None) -> None:
    """Reject impossible split sizes before any file is touched."""
    if limit is not None and limit < 2:
        raise DataError(
            f"data.limit={limit} must be at least 2 (one image to train on, one to validate), "
            "or null to keep all 60,000 training images."
        )
    if val_size < 1:
        raise DataError(f"data.val_size={val_size} must be at least 1 validation image.")
    if test_limit is not None and test_limit < 1:
        raise DataError(
            f"data.test_limit={test_limit} must be at least 1, or null for all 10,000 test images."
        )


def scale_pixels(images: np.ndarray) -> np.ndarray:
    """uint8 pixels 0..255 as float32 in [0, 1], in one pass (no float64 intermediate)."""
    return np.divide(images, 255, dtype=np.float32)


# --- tf.data ----------------------------------------------------------------------------------


def make_dataset(
    images: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int | None = None,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Batches of (x, x) float32 pairs: an autoencoder's input is its own target.

    The pipeline shuffles and batches image *indices* and gathers each batch with one vectorised
    ``tf.gather``: cheaper than slicing, shuffling and re-stacking 55,000 separate 3 KB images every
    epoch (about 0.15 s of CPU per epoch, measured; see the README's Performance section). The
    images are held once, in memory, so ``.cache()`` would only add a second copy. Shuffling spans
    the whole set and reshuffles every epoch; a seed makes the order repeatable.
    """
    import tensorflow as tf

    pixels = tf.constant(np.asarray(images, dtype=np.float32))
    dataset = tf.data.Dataset.range(len(images))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size).map(lambda indices: _input_is_target(tf.gather(pixels, indices)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _input_is_target(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return batch, batch


def make_training_dataset(
    images: np.ndarray, batch_size: int, *, seed: int, first_epoch: int = 0
) -> tf.data.Dataset:
    """Endless (x, x) batches, one epoch after another, for ``fit(steps_per_epoch=...)``.

    Epoch ``e`` visits the images in an order drawn from ``(seed, e)`` alone (a stateless shuffle),
    not from how many epochs this process has already run: a run resumed at epoch ``e`` sees exactly
    the batches an uninterrupted run would have. Each epoch ends with its own smaller last batch.
    """
    import tensorflow as tf

    pixels = tf.constant(np.asarray(images, dtype=np.float32))
    count = len(images)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    epochs = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max)
    batches = epochs.flat_map(one_epoch).map(lambda indices: tf.gather(pixels, indices))
    return batches.map(_input_is_target).prefetch(tf.data.AUTOTUNE)
