"""IDX data sets (Fashion-MNIST, MNIST): find the four files, verify and parse them, cache them decoded.

The files are looked for in a few well-known folders (an explicit ``data.dir``, else
``$AETRAIN_DATA_DIR``, else Debian's package folder and the Keras download cache), so training works
offline wherever the data is installed. A folder the user named (``data.dir`` or
``$AETRAIN_DATA_DIR``) is taken at its word: it is used or refused, never skipped for another copy.
Every problem with the data is a :class:`DataError` whose message names the file, says what is wrong
and how to fix it, because a reshape error from deep inside numpy tells a user nothing.

Keras is imported only to download: importing this module stays cheap, so configuration mistakes are
reported before TensorFlow's start-up cost is paid.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aetrain.config.data_spec import DataSpec, data_spec
from aetrain.data.raw import DataError, RawData

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "AETRAIN_DATA_DIR"

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
CACHE_FORMAT = 2
KERAS_DATA_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


@dataclass(frozen=True)
class IdxSource:
    """Where one IDX data set's files are found: its name on disk, system folders, the Keras cache.

    ``keras_npz`` names the single ``.npz`` file Keras caches instead of the IDX files (MNIST's
    ``mnist.npz``); ``known_md5`` holds the published MD5 of each original file, so a full copy of
    another data set under the same file names (MNIST and Fashion-MNIST share them) is recognised.
    """

    title: str
    folder_name: str  # the sub-folder of $AETRAIN_DATA_DIR and of the Keras cache
    debian_package: bool = False  # installed by Debian's package into DEBIAN_DIR
    keras_npz: str | None = None
    keras_npz_sha256: str | None = None
    known_md5: dict[str, str] = field(default_factory=dict)
    #: what the files hold, whatever their compression: SHA-256 of the first image of each image file
    #: (a trimmed copy starts with it too), and the class counts of the full label files.
    first_image_sha256: dict[str, str] = field(default_factory=dict)
    class_counts: dict[str, tuple[int, ...]] = field(default_factory=dict)


FASHION_MNIST_FILES = IdxSource(
    title="Fashion-MNIST",
    folder_name="fashion-mnist",
    debian_package=True,
    known_md5={
        "train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
        "test_images": "bef4ecab320f06d8554ea6380940ec79",
        "test_labels": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    first_image_sha256={
        "train_images": "5bd44e331a6d6998daf675700cd0c13dcd7af8ab954b7585124124da61459e7b",
        "test_images": "ffc7351ed0f8bae542820866086177fa4e0b366b97bf9d998dffdb8dbe138787",
    },
    class_counts={"train_labels": (6000,) * 10, "test_labels": (1000,) * 10},
)
MNIST_FILES = IdxSource(
    title="MNIST",
    folder_name="mnist",
    keras_npz="mnist.npz",
    keras_npz_sha256="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    known_md5={
        "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
        "test_images": "9fb629c4189551a2d022fa330f9573f3",
        "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    class_counts={
        "train_labels": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
        "test_labels": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
    },
)
IDX_SOURCES = (FASHION_MNIST_FILES, MNIST_FILES)


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
            f"0x08 (unsigned byte), the type of MNIST's and Fashion-MNIST's images and labels. "
            f"{_replace_hint()}"
        )
    if len(raw) < 4 + 4 * ndim:
        raise DataError(
            f"{path} is truncated inside its header (it declares {ndim} dimensions but holds "
            f"{len(raw)} bytes). {_replace_hint()}"
        )
    return struct.unpack_from(f">{ndim}I", raw, 4)


# --- finding the files ------------------------------------------------------------------------


def keras_cache_root() -> Path:
    """Keras's download cache: ``$KERAS_HOME/datasets``, else ``~/.keras/datasets``."""
    keras_home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(keras_home).expanduser() / "datasets"


def keras_cache_dir(source: IdxSource = FASHION_MNIST_FILES) -> Path:
    """Where Keras keeps its download of ``source``: a folder of the four files, or one ``.npz``."""
    if source.keras_npz:
        return keras_cache_root() / source.keras_npz
    return keras_cache_root() / source.folder_name


def named_dir(explicit: str | Path | None) -> tuple[Path, str] | None:
    """The folder the user named, and how (``data.dir`` wins over ``$AETRAIN_DATA_DIR``), or None."""
    if explicit is not None:
        return Path(explicit).expanduser(), "data.dir"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    return None


def candidate_dirs(explicit: str | Path | None, source: IdxSource = FASHION_MNIST_FILES) -> list[Path]:
    """The places searched, in order: a folder the user named alone, else system folders, Keras cache."""
    named = named_dir(explicit)
    if named is not None:
        return [named[0]]
    return [*system_dirs(source), keras_cache_dir(source)]


def system_dirs(source: IdxSource) -> list[Path]:
    """Folders a system package installs the data set into (read at call time, so tests can move it)."""
    return [DEBIAN_DIR] if source.debian_package else []


def missing_files(folder: Path) -> list[str]:
    """The IDX file names that ``folder`` lacks (all of them when it does not exist)."""
    return [name for name in FILES.values() if not (folder / name).is_file()]


def holding(place: Path, source: IdxSource) -> Path | None:
    """What in ``place`` holds the data set: the folder itself, its sub-folder named after the data
    set (``mnist/``, ``fashion-mnist/``), or Keras's ``.npz``; None when nothing does."""
    if place.suffix == ".npz":
        return place if place.is_file() else None
    if not missing_files(place):
        return place
    if not missing_files(place / source.folder_name):
        return place / source.folder_name
    if source.keras_npz and (place / source.keras_npz).is_file():
        return place / source.keras_npz
    return None


def fetch_with_keras(source: IdxSource = FASHION_MNIST_FILES) -> None:
    """Download ``source`` into the Keras cache (checked against its published hash by Keras)."""
    import keras

    if source is FASHION_MNIST_FILES:
        keras.datasets.fashion_mnist.load_data()
    else:
        keras.utils.get_file(
            source.keras_npz, origin=KERAS_DATA_ORIGIN + source.keras_npz, file_hash=source.keras_npz_sha256
        )


def find_data_dir(
    explicit: str | Path | None = None, download: bool = True, source: IdxSource = FASHION_MNIST_FILES
) -> Path:
    """The place holding the files: the folder the user named, else the first candidate, else a
    download with Keras.

    A folder the user named (data.dir or $AETRAIN_DATA_DIR) is taken at its word: if it does not hold
    the files the user made a mistake worth reporting, so nothing else is searched or downloaded.
    """
    named = named_dir(explicit)
    if named is not None:
        folder, how = named
        found = holding(folder, source)
        if found is None:
            raise DataError(_named_dir_message(folder, how, source))
        return found
    candidates = candidate_dirs(None, source)
    for place in candidates:
        found = holding(place, source)
        if found is not None:
            return found

    download_note = " Downloading was not attempted (download=False)."
    if download:
        try:
            fetch_with_keras(source)
        except Exception as err:  # any failure (no network, proxy, disk) ends in the same advice
            download_note = f" Downloading it with Keras failed: {type(err).__name__}: {err}."
        else:
            found = holding(keras_cache_dir(source), source)
            if found is not None:
                return found
            download_note = " Keras's download did not leave the files in its cache folder."
    looked = "; ".join(_describe_place(place) for place in candidates)
    raise DataError(
        f"{source.title} was not found. Looked in: {looked}.{download_note} {_how_to_get_data(source)}"
    )


def _describe_place(place: Path) -> str:
    """One place looked, and why it did not do: absent, or which files it lacks."""
    if place.suffix == ".npz" or not place.is_dir():
        return f"{place} (no such {'file' if place.suffix == '.npz' else 'folder'})"
    return f"{place} (missing {', '.join(missing_files(place))})"


def _named_dir_message(folder: Path, how: str, source: IdxSource) -> str:
    problem = "does not exist" if not folder.is_dir() else f"is missing {', '.join(missing_files(folder))}"
    also = f" (or its sub-folder {source.folder_name}/)" if folder.is_dir() else ""
    if source.keras_npz:
        also += f", nor Keras's {source.keras_npz}"
    return (
        f"{how}={folder} {problem}{also}. Point {how} at a folder holding all four {source.title} files "
        f"({', '.join(FILES.values())}), or unset it to search "
        f"{''.join(f'{folder} and ' for folder in system_dirs(source))}"
        f"the Keras cache ({keras_cache_dir(source)}). A named folder is never skipped for another copy."
    )


def _how_to_get_data(source: IdxSource = FASHION_MNIST_FILES) -> str:
    debian = (
        f"run `make data` (installs Debian's dataset-fashion-mnist package into {DEBIAN_DIR}), or "
        if source is FASHION_MNIST_FILES
        else ""
    )
    return (
        f"To get the data, {debian}set data.dir=PATH or ${ENV_VAR} to a folder holding "
        f"{', '.join(FILES.values())}."
    )


def _replace_hint() -> str:
    return (
        "Replace it with an intact copy: run `make data` (Fashion-MNIST), or delete the damaged file so "
        "that aetrain downloads the data set again."
    )


# --- loading, with a decoded-array cache ------------------------------------------------------


def load_raw(
    data_dir: Path, spec: Any = None, source: IdxSource = FASHION_MNIST_FILES
) -> dict[str, np.ndarray]:
    """The four uint8 arrays keyed like FILES, checked against ``spec``, cached decoded for next time.

    ``data_dir`` is a folder of IDX files or Keras's ``.npz``. Decompressing 30 MB of gzip costs about
    a second on every run; the .npz cache loads in a fraction of that. Its name hashes each source's
    path, size and mtime, so a replaced source is never answered from a stale cache.
    """
    spec = spec if spec is not None else _default_spec()
    if Path(data_dir).suffix == ".npz":
        arrays, paths = _read_keras_npz(Path(data_dir)), dict.fromkeys(FILES, Path(data_dir))
        check_raw(arrays, paths, spec)
        return arrays
    paths = {key: Path(data_dir) / name for key, name in FILES.items()}
    cache_file = _cache_file_for(paths, spec.name)
    if cache_file is not None:
        cached = _read_cache(cache_file, paths, spec)
        if cached is not None:
            return cached
    arrays = {key: read_idx(path) for key, path in paths.items()}
    check_raw(arrays, paths, spec)
    check_identity(paths, source)
    check_content(arrays, paths, source)
    if cache_file is not None:
        _write_cache(cache_file, arrays)
    return arrays


def _default_spec() -> DataSpec:
    return data_spec("fashion_mnist")


def _read_keras_npz(path: Path) -> dict[str, np.ndarray]:
    """Keras's ``mnist.npz`` (x_train, y_train, x_test, y_test), read without pickles."""
    keys = dict(zip(FILES, ("x_train", "y_train", "x_test", "y_test"), strict=True))
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: np.asarray(npz[name], dtype=np.uint8) for key, name in keys.items()}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(
            f"{path} is not a readable Keras data file ({type(err).__name__}: {err}). {_replace_hint()}"
        ) from err


def check_raw(arrays: dict[str, np.ndarray], paths: dict[str, Path], spec: Any = None) -> None:
    """Images must have the spec's shape, each split's images and labels must pair up one to one,
    labels must name one of the spec's classes, and no file may hold more images than its role has.

    A file holding fewer images than the spec says is a subset (the tests' tiny copies, a user's
    trimmed copy) and is accepted; the counts used are logged and recorded in metrics.json. A file
    holding more cannot be the data set's; the train and test files under each other's names are
    recognised by their counts.
    """
    spec = spec if spec is not None else _default_spec()
    shape = (spec.height, spec.width)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        images_path, labels_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != shape:
            raise DataError(
                f"{images_path} holds an array of shape {images.shape}, but {spec.title} "
                f"images are {shape[0]}x{shape[1]} (shape (n, {shape[0]}, {shape[1]})). {_replace_hint()}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(
                f"{images_path} holds {len(images)} images but {labels_path} holds "
                f"{labels.size} labels; the two files must come from the same {spec.title} "
                f"split. {_replace_hint()}"
            )
        if labels.size and int(labels.max()) >= len(spec.class_names):
            raise DataError(
                f"{labels_path} holds the label {int(labels.max())}, but {spec.title} has "
                f"{len(spec.class_names)} classes (labels 0 to {len(spec.class_names) - 1}). "
                f"{_replace_hint()}"
            )
    counts = len(arrays["train_images"]), len(arrays["test_images"])
    check_split_counts(spec, *counts, paths["train_images"], paths["test_images"])


def check_split_counts(spec: Any, n_train: int, n_test: int, train_path: Path, test_path: Path) -> None:
    """No split may hold more images than the data set has in that role; swapped files are named."""
    if n_train == spec.test_images and n_test == spec.train_images and n_train != n_test:
        raise DataError(
            f"The training and test files are swapped: {train_path} holds {n_train:,} images, the size "
            f"of {spec.title}'s test set, and {test_path} holds {n_test:,}, the size of its training set "
            f"({spec.train_images:,} train, {spec.test_images:,} test). Rename them back."
        )
    for path, count, role, allowed in (
        (train_path, n_train, "training", spec.train_images),
        (test_path, n_test, "test", spec.test_images),
    ):
        if count > allowed:
            raise DataError(
                f"{path} holds {count:,} images, but {spec.title}'s {role} set has {allowed:,}: it is not "
                f"the {role} file of {spec.title} (another data set's, or the other split's under this "
                f"name). Replace it with the right file."
            )


def check_identity(paths: dict[str, Path], source: IdxSource) -> None:
    """A file that is, byte for byte, another data set's original (or another role's) is refused.

    MNIST and Fashion-MNIST ship under the same four names, so a folder of one read as the other would
    otherwise train without complaint. Only full original files are recognised (their MD5).
    """
    known = {md5: (other, key) for other in IDX_SOURCES for key, md5 in other.known_md5.items()}
    for key, path in paths.items():
        try:
            digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
        except OSError:
            continue
        other, other_key = known.get(digest, (source, key))
        if other is not source or other_key != key:
            raise DataError(
                f"{path} is {other.title}'s original {other_key.replace('_', ' ')} file, not "
                f"{source.title}'s {key.replace('_', ' ')}. Point data.dir at a folder of {source.title}'s "
                "files, or choose the data set the files belong to."
            )


def check_content(arrays: dict[str, np.ndarray], paths: dict[str, Path], source: IdxSource) -> None:
    """Files that hold another data set are refused, however they were compressed or trimmed.

    Debian's Fashion-MNIST is recompressed (its MD5s are not upstream's), so :func:`check_identity`
    misses it; what the files decode to is the same everywhere: a file's first image, and the class
    counts of a full label file (Fashion-MNIST's are uniform, MNIST's are not).
    """
    for other in IDX_SOURCES:
        if other is source:
            continue
        for key, array in arrays.items():
            first = other.first_image_sha256.get(key)
            counts = other.class_counts.get(key)
            held = (
                first is not None
                and len(array)
                and hashlib.sha256(np.ascontiguousarray(array[0]).tobytes()).hexdigest() == first
            ) or (
                counts is not None
                and len(array) == sum(counts)
                and tuple(np.bincount(array, minlength=len(counts))) == counts
                and counts != source.class_counts.get(key)
            )
            if held:
                raise DataError(
                    f"{paths[key]} holds {other.title}'s {key.replace('_', ' ')}, not {source.title}'s "
                    f"({'its first image is' if first else 'its class counts are'} {other.title}'s). Point "
                    f"data.dir at a folder of {source.title}'s files, or choose the data set the files "
                    f"belong to (data={other.folder_name.replace('-', '_')})."
                )


def cache_dir() -> Path:
    """The user cache folder: $AETRAIN_CACHE_DIR, else $XDG_CACHE_HOME/aetrain, else ~/.cache."""
    if os.environ.get("AETRAIN_CACHE_DIR"):
        return Path(os.environ["AETRAIN_CACHE_DIR"]).expanduser()
    xdg_cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg_cache).expanduser() / "aetrain"


def _cache_file_for(paths: dict[str, Path], name: str) -> Path | None:
    """The cache file for these sources, or None when one cannot be stat'ed (read_idx will say)."""
    fingerprint: list[object] = [CACHE_FORMAT, name]
    try:
        for key in sorted(paths):
            stat = paths[key].stat()
            fingerprint.append((key, str(paths[key].resolve()), stat.st_size, stat.st_mtime_ns))
    except OSError:
        return None
    digest = hashlib.sha256(repr(fingerprint).encode()).hexdigest()[:24]
    return cache_dir() / f"{name.replace('_', '-')}-{digest}.npz"


def _read_cache(cache_file: Path, paths: dict[str, Path], spec: Any) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the cache is absent, unreadable or not what we wrote."""
    try:
        with np.load(cache_file, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in FILES}
        check_raw(arrays, paths, spec)
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


# --- the reader a spec names ------------------------------------------------------------------


def idx_reader(source: IdxSource) -> Callable[[Any, Any, bool], RawData]:
    """The reader of one IDX data set, as a :class:`~aetrain.config.data_spec.DataSpec` holds it."""

    def read(data_cfg: Any, spec: Any, download: bool) -> RawData:
        place = find_data_dir(getattr(data_cfg, "dir", None), download=download, source=source)
        arrays = load_raw(place, spec, source)
        return RawData(
            train_images=arrays["train_images"],
            train_labels=arrays["train_labels"],
            test_images=arrays["test_images"],
            test_labels=arrays["test_labels"],
            source=place,
        )

    return read
