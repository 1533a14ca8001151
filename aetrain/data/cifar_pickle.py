"""CIFAR-10 from its original python batches, read by an unpickler that admits only what they hold.

``cifar-10-batches-py/`` holds ``data_batch_1`` .. ``data_batch_5`` (10,000 training images each)
and ``test_batch`` (10,000): Python pickles of a dict with ``b"data"`` (uint8, one row of
3 x 32 x 32 channel-first pixels per image), ``b"labels"`` (ints), ``b"batch_label"`` and
``b"filenames"`` (bytes). A pickle can name any importable callable and have it called, so a file
from elsewhere could run a command; :class:`BatchUnpickler` resolves only the few globals these
files need and refuses every other, before anything is called.
"""

from __future__ import annotations

import _codecs
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aetrain.data.idx import ENV_VAR, keras_cache_root, named_dir
from aetrain.data.raw import DataError, RawData

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
BATCH_IMAGES = 10_000
CLASSES = 10
ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
KERAS_FOLDER = "cifar-10-batches-py-target"  # where Keras 3 extracts the archive (its cifar10.py)


def _numpy_reconstruct() -> Callable[..., Any]:
    try:  # NumPy 2 moved the array internals to numpy._core (numpy.core is a shim that warns)
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


# Every global a CIFAR-10 batch can name. The originals were written by Python 2's cPickle:
# an ndarray is rebuilt by multiarray._reconstruct(ndarray, shape, dtype-code) plus its state, a
# dtype by numpy.dtype(code) plus its state. Python 3 writes bytes at protocol 2 as
# _codecs.encode(text, "latin1"). None of these runs anything but building an array, a dtype or bytes.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _codecs.encode,
}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a callable a CIFAR-10 batch never holds."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name
        super().__init__(f"{module}.{name}")


class BatchUnpickler(pickle.Unpickler):
    """Resolves only :data:`ALLOWED_GLOBALS`; any other global is refused before it is called."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(module, name) from None


def load_batch(path: Path) -> dict[bytes, Any]:
    """One batch file as its dict, through :class:`BatchUnpickler`; refusals are DataErrors."""
    try:
        with open(path, "rb") as handle:
            batch = BatchUnpickler(handle, encoding="bytes").load()
    except RefusedGlobal as err:
        raise DataError(
            f"{path} is not a CIFAR-10 batch: it asks to call {err.module}.{err.name}, which the "
            "original batches never hold, so it was refused unread (a pickle can run code). Replace it "
            f"with the original file from {ORIGIN}."
        ) from None
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror}). Check its permissions.") from err
    except Exception as err:  # a truncated or garbled pickle fails in many ways; all mean the same
        raise DataError(
            f"{path} is not a readable CIFAR-10 batch ({type(err).__name__}: {err}); it is damaged or "
            f"not the original. Replace it with the original file from {ORIGIN}."
        ) from None
    return _checked_batch(path, batch)


def _checked_batch(path: Path, batch: Any) -> dict[bytes, Any]:
    """The dict must hold b'data' (uint8, n x 3072) and b'labels' (n ints 0..9)."""
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(
            f"{path} is not a CIFAR-10 batch: it holds no dict with b'data' and b'labels'. Replace it "
            f"with the original file from {ORIGIN}."
        )
    images, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2:
        raise DataError(f"{path}: b'data' is not a 2-D uint8 array; the file is not a CIFAR-10 batch.")
    if images.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{path}: b'data' rows hold {images.shape[1]} values, but a CIFAR-10 image is 3x32x32 = 3072."
        )
    if not isinstance(labels, list) or len(labels) != len(images):
        count = len(labels) if isinstance(labels, list) else "no list of"
        raise DataError(
            f"{path} holds {len(images)} images but {count} labels; the file is damaged or not the original."
        )
    for position, label in enumerate(labels):
        if type(label) is not int or not 0 <= label < CLASSES:  # bool, float, str and numpy kinds too
            raise DataError(
                f"{path}: label {position} is {label!r} ({type(label).__name__}), but CIFAR-10's labels "
                f"are the integers 0 to {CLASSES - 1}; the file is damaged or not the original. Replace "
                f"it with the original file from {ORIGIN}."
            )
    return batch


def batch_role(batch: dict[bytes, Any]) -> str | None:
    """'train' or 'test' from the batch's own label (b'training batch 1 of 5'), None when absent."""
    label = batch.get(b"batch_label", b"")
    label = label.decode("latin1") if isinstance(label, bytes) else str(label)
    if label.startswith("training"):
        return "train"
    if label.startswith("testing"):
        return "test"
    return None


def holding(place: Path) -> Path | None:
    """``place`` when it holds the six batch files, or its ``cifar-10-batches-py`` sub-folder."""
    for folder in (place, place / FOLDER):
        if not missing_batches(folder):
            return folder
    return None


def missing_batches(folder: Path) -> list[str]:
    return [name for name in (*TRAIN_BATCHES, TEST_BATCH) if not (folder / name).is_file()]


def keras_cache_places() -> list[Path]:
    """Keras 3 extracts into ``cifar-10-batches-py-target/``; older Keras into the cache root."""
    return [keras_cache_root() / KERAS_FOLDER, keras_cache_root()]


def fetch_with_keras() -> None:
    """Download and extract the archive with Keras (hash-checked); read it with our unpickler."""
    import keras

    keras.utils.get_file(fname=KERAS_FOLDER, origin=ORIGIN, extract=True, file_hash=ARCHIVE_SHA256)


def find_batches(explicit: str | Path | None, download: bool) -> Path:
    """The folder holding the batches: the one the user named, else the Keras cache, else a download."""
    named = named_dir(explicit)
    if named is not None:
        folder, how = named
        found = holding(folder)
        if found is None:
            missing = ", ".join(missing_batches(folder))
            problem = "does not exist" if not folder.is_dir() else f"is missing {missing}"
            raise DataError(
                f"{how}={folder} {problem} (nor does its sub-folder {FOLDER}/ hold the batches). Point "
                f"{how} at the {FOLDER} folder of CIFAR-10's python version ({', '.join(TRAIN_BATCHES)}, "
                f"{TEST_BATCH}), or unset it to use the Keras cache ({keras_cache_places()[0]}). A named "
                "folder is never skipped for another copy."
            )
        return found
    for place in keras_cache_places():
        found = holding(place)
        if found is not None:
            return found
    note = " Downloading was not attempted (download=False)."
    if download:
        try:
            fetch_with_keras()
        except Exception as err:  # no network, proxy, disk: the same advice
            note = f" Downloading it with Keras failed: {type(err).__name__}: {err}."
        else:
            for place in keras_cache_places():
                found = holding(place)
                if found is not None:
                    return found
            note = " Keras's download did not leave the batches in its cache folder."
    looked = ", ".join(str(place) for place in keras_cache_places())
    raise DataError(
        f"CIFAR-10 was not found. Looked in: {looked}.{note} Download {ORIGIN}, unpack it, and set "
        f"data.dir (or ${ENV_VAR}) to its {FOLDER} folder."
    )


def read_cifar10(data_cfg: Any, spec: Any, download: bool) -> RawData:
    """The five training batches and the test batch, as (n, 32, 32, 3) uint8 images and int labels."""
    from aetrain.data.idx import check_split_counts

    folder = find_batches(getattr(data_cfg, "dir", None), download)
    parts: dict[str, list[dict[bytes, Any]]] = {"train": [], "test": []}
    for role, names in (("train", TRAIN_BATCHES), ("test", (TEST_BATCH,))):
        for name in names:
            batch = load_batch(folder / name)
            declared = batch_role(batch)
            if declared is not None and declared != role:
                raise DataError(
                    f"{folder / name} says it is a {declared} batch ({batch[b'batch_label']!r}) but is "
                    f"named as a {role} batch: the files were renamed or swapped. Put each batch under its "
                    "original name."
                )
            if len(batch[b"data"]) > BATCH_IMAGES:
                raise DataError(
                    f"{folder / name} holds {len(batch[b'data']):,} images, but a CIFAR-10 batch holds "
                    f"{BATCH_IMAGES:,}. Replace it with the original file."
                )
            parts[role].append(batch)
    train_images, train_labels = _stack(parts["train"])
    test_images, test_labels = _stack(parts["test"])
    train_path = folder / "data_batch_*"
    check_split_counts(spec, len(train_images), len(test_images), train_path, folder / TEST_BATCH)
    for labels, path in ((train_labels, folder / "data_batch_*"), (test_labels, folder / TEST_BATCH)):
        if labels.size and (labels.min() < 0 or labels.max() >= len(spec.class_names)):
            raise DataError(
                f"{path} holds labels outside 0..{len(spec.class_names) - 1} ({int(labels.min())} to "
                f"{int(labels.max())}); the file is damaged or not CIFAR-10's."
            )
    return RawData(train_images, train_labels, test_images, test_labels, source=folder)


def _stack(batches: list[dict[bytes, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Channel-first rows -> (n, 32, 32, 3) channel-last images, and the labels as int64."""
    rows = np.concatenate([batch[b"data"] for batch in batches])
    images = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.concatenate([np.asarray(batch[b"labels"], dtype=np.int64) for batch in batches])
    return np.ascontiguousarray(images), labels
