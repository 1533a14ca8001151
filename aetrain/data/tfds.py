"""Any TensorFlow Datasets image data set by name (``data=tfds``), read offline from a prepared TFDS
folder, each split decoded and resized once into aetrain's cache.

Preparing a TFDS data set (``tfds build NAME --data_dir DIR``) downloads it, sometimes by hand and for
hours: aetrain only reads what is prepared, and refuses a set that is not with the command that
prepares it. A set whose builder code TFDS does not ship (one made with the user's own builder) is
read from its files alone, by TFDS's read-only builder.

Each split is converted to ``data.channels``, resized to ``data.image_size`` and written as one uint8
``.npy`` array (and its labels) under aetrain's cache folder, keyed by the set's name and version, the
split, the features read and the shape; its ``index.json``, renamed into place last, commits it with
the prepared files' sizes and modification times. A later run whose prepared files are unchanged maps
the array from disk; a cache of the first N images serves any run that keeps at most N (``data.limit``).
A cache that cannot be written (a read-only or full disk) is skipped with a warning: the images are
then decoded into memory. tensorflow_datasets and TensorFlow are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from aetrain.data import npy_cache
from aetrain.data.idx import cache_dir
from aetrain.data.raw import DataError, RawData
from aetrain.quiet_imports import hidden, stderr_silenced

log = logging.getLogger("aetrain")

CACHE_FORMAT = 1
SUBFOLDER = "tfds"  # below aetrain's cache folder
BATCH = 256  # images converted and written at a time
INSTALL = "pip install 'aetrain[tfds]'"
CATALOGUE = "https://www.tensorflow.org/datasets/catalog/overview"


def read_tfds(data_cfg: Any, spec: Any, download: bool) -> RawData:
    """``data.split_train`` (and ``data.split_test``) of ``data.dataset`` as uint8 images of the spec's
    shape. Never downloads (``download`` is for the sets aetrain fetches itself)."""
    with _tfds_quiet():
        return _read(data_cfg, spec)


def _read(data_cfg: Any, spec: Any) -> RawData:
    tfds = _import_tfds()
    root = (
        Path(data_cfg.dir).expanduser() if data_cfg.dir else Path(tfds.core.constants.get_default_data_dir())
    )
    builder = prepared_builder(tfds, data_cfg.dataset, root)
    features = flat_features(builder.info.features)
    _check_image_feature(features, data_cfg.image_key, builder)
    class_names = label_names(features, data_cfg.label_key, builder)
    keep = data_cfg.limit if data_cfg.split_test is not None else None  # a drawn test set needs them all
    train = cached_split(builder, data_cfg, "split_train", keep, spec.image_shape)
    test = (
        cached_split(builder, data_cfg, "split_test", None, spec.image_shape) if data_cfg.split_test else None
    )
    _check_labels(builder, data_cfg, "split_train", train[1], class_names)
    if test is not None:
        _check_labels(builder, data_cfg, "split_test", test[1], class_names)
    return RawData(
        train_images=train[0],
        train_labels=train[1],
        test_images=None if test is None else test[0],
        test_labels=None if test is None else test[1],
        source=Path(builder.data_dir) / "dataset_info.json",  # names the set and version; cheap to hash
        class_names=class_names,
    )


@contextlib.contextmanager
def _tfds_quiet() -> Iterator[None]:
    """TFDS's INFO lines ("Load dataset info from ...") kept out of the run's log while it reads."""
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        absl.setLevel(level)


def _import_tensorflow() -> Any:
    """TensorFlow for TFDS's decoding, imported as the run's own import would leave things: Keras not
    loaded (TensorFlow loads it, and Keras fixes its backend at its first import, while a run chooses
    ``trainer.backend`` after reading its data), and none of the lines TensorFlow's C++ side writes to
    stderr before it honours TF_CPP_MIN_LOG_LEVEL. Not aetrain.training.runtime's own import: that one
    loads Keras."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow's eager load of Keras's optimizers gives up on a hidden Keras
    with hidden("keras"), stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()  # CUDA probing logs here, once
    return tf


def _import_tfds() -> Any:
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError(
            f"data=tfds needs the tensorflow-datasets package, which cannot be imported ({error}). "
            f"Install it: `{INSTALL}`."
        ) from None
    return tfds


# --- the prepared data set ----------------------------------------------------------------------------


def prepare_command(name: str, root: Path) -> str:
    """The command that prepares ``name`` in ``root``, in Python (TFDS's own ``tfds build`` also needs
    apache-beam installed, tensorflow/datasets#5463), then the ``tfds build`` form."""
    builder = f"tfds.builder({json.dumps(name)}, data_dir={json.dumps(str(root))})"  # no ' to quote
    python = f"import tensorflow_datasets as tfds; {builder}.download_and_prepare()"
    return (
        f"`python -c {shlex.quote(python)}` (or `tfds build {shlex.quote(name)} --data_dir "
        f"{shlex.quote(str(root))}`, which also needs `pip install apache-beam`)"
    )


def prepared_builder(tfds: Any, name: str, root: Path) -> Any:
    """TFDS's builder of ``name`` in ``root``, prepared there, or a DataError saying how to prepare it."""
    if not root.is_dir():
        raise DataError(
            f"{root} (data.dir) does not exist or is not a folder, so no TFDS data set is prepared there. "
            f"Prepare {name} with {prepare_command(name, root)}, or point data.dir at your TFDS folder."
        )
    try:
        builder = tfds.builder(name, data_dir=str(root))
    except tfds.core.DatasetNotFoundError:
        raise DataError(_unknown_set(tfds, name, root)) from None
    except (ValueError, AssertionError) as error:  # a config or version TFDS does not have
        first_line = str(error).strip().splitlines()[0].rstrip(":. ")
        raise DataError(
            f"data.dataset={name!r}: TFDS cannot open it in {root} ({first_line}). "
            f"Prepared there: {', '.join(prepared_in(root)) or 'none'}."
        ) from None
    if not builder.is_prepared():
        found = [full for full in prepared_in(root) if full.split(":")[0] == name.split(":")[0]]
        also = (
            f" (prepared there: {', '.join(found)}; ask for one with data.dataset=NAME:VERSION)"
            if found
            else ""
        )
        raise DataError(
            f"{builder.info.full_name} is not prepared in {root}{also}. aetrain reads TFDS data sets "
            f"offline and never downloads one: prepare it once with {prepare_command(name, root)}, or "
            "point data.dir at the TFDS folder where it is prepared."
        )
    return builder


def _unknown_set(tfds: Any, name: str, root: Path) -> str:
    prepared = prepared_in(root)
    base = name.split(":")[0]
    known = {*tfds.list_builders(with_community_datasets=False), *(full.split(":")[0] for full in prepared)}
    close = difflib.get_close_matches(base, sorted(known - {base}), n=3)
    return (
        f"data.dataset={name!r}: TFDS knows no such data set, and none of that name and version is "
        f"prepared in {root}."
        + (f" Did you mean {' or '.join(close)}?" if close else "")
        + f" Prepared there: {', '.join(prepared) or 'none'}. TFDS's catalogue: {CATALOGUE}."
    )


def prepared_in(root: Path) -> list[str]:
    """``name[/config]:version`` of every data set prepared in ``root`` (TFDS's folder layout)."""
    found = []
    for info in sorted([*root.glob("*/*/dataset_info.json"), *root.glob("*/*/*/dataset_info.json")]):
        parts = info.relative_to(root).parts[:-1]
        if not any(part.startswith(("incomplete.", "downloads")) for part in parts):
            found.append("/".join(parts[:-1]) + ":" + parts[-1])
    return found


# --- its features -------------------------------------------------------------------------------------


def flat_features(features: Any, prefix: str = "") -> dict[str, Any]:
    """Every feature by its key, nested ones as ``outer/inner`` (how data.image_key names them), sorted."""
    import tensorflow_datasets as tfds

    found = {}
    for key, feature in features.items():
        if isinstance(feature, tfds.features.FeaturesDict):
            found.update(flat_features(feature, f"{prefix}{key}/"))
        else:
            found[f"{prefix}{key}"] = feature
    return dict(sorted(found.items()))


def _is_image(feature: Any) -> bool:
    shape, dtype = getattr(feature, "shape", None), getattr(feature, "np_dtype", None)
    return (
        isinstance(shape, tuple)
        and len(shape) == 3
        and shape[-1] in (1, 2, 3, 4)  # grey, grey + alpha, RGB, RGBA
        and dtype is not None
        and np.dtype(dtype).kind in "uif"
    )


def _is_label(feature: Any) -> bool:
    import tensorflow_datasets as tfds

    dtype = getattr(feature, "np_dtype", None)
    return isinstance(feature, tfds.features.ClassLabel) or (
        getattr(feature, "shape", None) == () and dtype is not None and np.dtype(dtype).kind == "b"
    )


def _described(features: dict[str, Any]) -> str:
    """``image (Image (218, 178, 3) uint8), label (ClassLabel, 10 classes), ...``: for a message."""
    import tensorflow_datasets as tfds

    def one(feature: Any) -> str:
        if isinstance(feature, tfds.features.ClassLabel):
            return f"ClassLabel, {feature.num_classes} classes"
        return f"{type(feature).__name__} {getattr(feature, 'shape', '')} {getattr(feature, 'np_dtype', '')}"

    return ", ".join(f"{key} ({one(feature).strip()})" for key, feature in features.items())


def _check_image_feature(features: dict[str, Any], key: str, builder: Any) -> None:
    if key in features and _is_image(features[key]):
        return
    images = [name for name, feature in features.items() if _is_image(feature)]
    problem = (
        "is not a feature of"
        if key not in features
        else "is not an image feature (height, width, channels) of"
    )
    raise DataError(
        f"data.image_key={key!r} {problem} {builder.info.full_name}. Its features: {_described(features)}. "
        + (f"Set data.image_key to {' or '.join(images)}." if images else "It has no image to train on.")
    )


def label_names(features: dict[str, Any], key: str | None, builder: Any) -> tuple[str, ...]:
    """The class names: a ClassLabel's names, ``not X`` / ``X`` for a bool feature X, or for no
    labels one class named after the data set."""
    if key is None:
        return (builder.info.name,)
    feature = features.get(key)
    if feature is not None and _is_label(feature):
        names = getattr(feature, "names", None)
        short = key.rsplit("/", 1)[-1]
        return tuple(names) if names is not None else (f"not {short}", short)
    labels = [name for name, found in features.items() if _is_label(found)]
    problem = "is not a feature of" if feature is None else "is neither a ClassLabel nor a bool feature of"
    raise DataError(
        f"data.label_key={key!r} {problem} {builder.info.full_name}. Its features: {_described(features)}. "
        f"Set data.label_key to {' or '.join([*labels, 'null (no labels: one class)'])}."
    )


def _check_labels(builder: Any, data_cfg: Any, key: str, labels: np.ndarray, class_names: tuple) -> None:
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise DataError(
            f"data.{key}={getattr(data_cfg, key)!r} of {builder.info.full_name} holds labels from "
            f"{int(labels.min())} to {int(labels.max())}, outside its {len(class_names)} classes (-1 marks "
            "an unlabelled example in TFDS). Set data.label_key=null to train without labels, or name a "
            "labelled split."
        )


# --- a split, decoded once -------------------------------------------------------------------------------


def split_size(builder: Any, data_cfg: Any, key: str) -> int:
    """The images of the split ``data.<key>`` names (TFDS's slices such as ``train[:10%]`` work)."""
    split = getattr(data_cfg, key)
    try:
        count = builder.info.splits[split].num_examples
    except (ValueError, KeyError, AssertionError) as error:
        splits = ", ".join(
            f"{name} ({info.num_examples:,} images)" for name, info in builder.info.splits.items()
        )
        why = "" if str(error).startswith("Unknown split") else f" ({str(error).strip().rstrip('.')})"
        raise DataError(
            f"data.{key}={split!r} is not a split of {builder.info.full_name}{why}. Its splits: {splits}; "
            "TFDS's slices work too, e.g. train[:10%] or train[:1000]."
        ) from None
    if count == 0:
        raise DataError(
            f"data.{key}={split!r} of {builder.info.full_name} holds no images. Name another split."
        )
    return count


def cache_folder(builder: Any, data_cfg: Any, split: str, shape: tuple[int, ...]) -> Path:
    """Where the split ``split`` of this prepared set, read with these keys at ``shape``, is cached."""
    key = json.dumps(
        [
            CACHE_FORMAT,
            builder.info.full_name,
            str(Path(builder.data_dir).resolve()),
            split,
            data_cfg.image_key,
            data_cfg.label_key,
            list(shape),
        ]
    )
    return cache_dir() / SUBFOLDER / hashlib.sha256(key.encode()).hexdigest()[:24]


def prepared_files(builder: Any) -> list[list]:
    """[name, size, modification time in ns] of each file of the prepared set: preparing it again
    changes them, and the cache is rebuilt."""
    folder = Path(builder.data_dir)
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(folder.iterdir()) if p.is_file()]


def cached_split(
    builder: Any, data_cfg: Any, key: str, keep: int | None, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of the first ``keep`` (None: all) images of the split ``data.<key>``: from the
    cache where it holds them, else decoded and cached."""
    total = split_size(builder, data_cfg, key)
    count = total if keep is None else min(keep, total)
    split = getattr(data_cfg, key)
    target = cache_folder(builder, data_cfg, split, shape)
    files = prepared_files(builder)
    try:
        lock = npy_cache.locked(target)
    except OSError as error:
        log.warning(f"the TFDS cache in {target} cannot be used ({error}); decoding {split} into memory")
        return _decoded_in_memory(builder, data_cfg, split, count, shape)
    try:
        cached, why = _read_cache(target, files, count, shape)
        if cached is not None:
            return cached
        log.info(f"TFDS cache of {builder.info.full_name} {split}: {why}; decoding {count:,} images")
        try:
            return _decoded_into_cache(target, builder, data_cfg, split, count, shape, files)
        except OSError as error:
            log.warning(f"the TFDS cache in {target} could not be written ({error}); decoding into memory")
            return _decoded_in_memory(builder, data_cfg, split, count, shape)
    finally:
        lock.release()


def _read_cache(
    target: Path, files: list[list], count: int, shape: tuple[int, ...]
) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
    """((images, labels) memory-mapped, first ``count`` rows), or (None, why there are none usable)."""
    try:
        index = npy_cache.committed_index(target)
        if index is None:
            return None, "no cache yet"
        if index["files"] != files:
            return None, "the prepared files changed since it was cached, rebuilt"
        if index["rows"] < count:
            return None, f"it holds the first {index['rows']:,} images, {count:,} are asked for, rebuilt"
        images = npy_cache.mapped(target, index, "images")
        labels = npy_cache.mapped(target, index, "labels")
        if (
            images.dtype != np.uint8
            or images.shape != (index["rows"], *shape)
            or labels.shape != (index["rows"],)
        ):
            raise ValueError(
                f"holds {images.shape} {images.dtype} and {labels.shape} labels, not {index['rows']}"
            )
    except (OSError, ValueError, TypeError, KeyError) as error:
        return None, f"the cache is damaged ({type(error).__name__}: {error}), rebuilt"
    return (images[:count], labels[:count]), ""


def _decoded_into_cache(
    target: Path,
    builder: Any,
    data_cfg: Any,
    split: str,
    count: int,
    shape: tuple[int, ...],
    files: list[list],
) -> tuple[np.ndarray, np.ndarray]:
    """Stream the converted images into a new version of the cache (never all in memory; see
    aetrain.data.npy_cache: its space reserved first, committed by its index, no partial file left)."""
    labels = np.empty(count, dtype=np.int64)
    with npy_cache.new_version(target) as version:
        with version.reserved("images", (count, *shape)) as rows:
            for start, images, batch_labels in _converted_batches(builder, data_cfg, split, count, shape):
                rows.write(enumerate(images, start=start))
                labels[start : start + len(batch_labels)] = batch_labels
        version.saved("labels", labels)
        index = version.commit(rows=count, files=files)
    return npy_cache.mapped(target, index, "images"), npy_cache.mapped(target, index, "labels")


def _decoded_in_memory(
    builder: Any, data_cfg: Any, split: str, count: int, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    images = np.empty((count, *shape), dtype=np.uint8)
    labels = np.empty(count, dtype=np.int64)
    for start, batch, batch_labels in _converted_batches(builder, data_cfg, split, count, shape):
        images[start : start + len(batch)] = batch
        labels[start : start + len(batch)] = batch_labels
    return images, labels


def _converted_batches(
    builder: Any, data_cfg: Any, split: str, count: int, shape: tuple[int, ...]
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(first row, images, labels) of the first ``count`` examples of ``split`` in TFDS's fixed order,
    converted on every core, with a progress bar; exactly ``count`` rows in all, or a DataError."""
    import tensorflow_datasets as tfds
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    tf = _import_tensorflow()
    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1

    def convert(example: dict) -> tuple[Any, Any]:
        image = _feature(example, data_cfg.image_key)
        label = _feature(example, data_cfg.label_key) if data_cfg.label_key else tf.constant(0)
        return converted_image(image, height, width, channels), tf.cast(label, tf.int64)

    read = tfds.ReadConfig(try_autocache=False)
    dataset = builder.as_dataset(split=split, shuffle_files=False, read_config=read).take(count)
    dataset = dataset.map(convert, num_parallel_calls=os.cpu_count() or 1).batch(BATCH).prefetch(2)
    started, done = time.perf_counter(), 0
    columns = (
        TextColumn(f"decoding {split}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
    )
    try:
        with Progress(*columns, TimeRemainingColumn(), transient=True) as progress:
            task = progress.add_task("decode", total=count, rate="")
            for images, labels in dataset.as_numpy_iterator():
                yield done, images.reshape(len(images), *shape), labels
                done += len(images)
                rate = done / max(time.perf_counter() - started, 1e-9)
                progress.update(task, completed=done, rate=f"{rate:,.0f} images/s")
    except tf.errors.OpError as error:
        raise DataError(
            f"reading {split} of {builder.info.full_name} in {builder.data_dir} failed "
            f"({type(error).__name__}: {error.message.splitlines()[0]}): its prepared files are damaged. "
            f"Delete {builder.data_dir} and prepare it again: {_prepare_again(builder)}."
        ) from None
    if done != count:
        raise DataError(
            f"{split} of {builder.info.full_name} in {builder.data_dir} holds {done:,} images, but its "
            f"dataset_info.json says {count:,}: the prepared files are incomplete. Delete "
            f"{builder.data_dir} and prepare it again: {_prepare_again(builder)}."
        )
    seconds = time.perf_counter() - started
    log.info(f"decoded {done:,} images of {split} in {seconds:.1f} s ({done / max(seconds, 1e-9):,.0f}/s)")


def _prepare_again(builder: Any) -> str:
    """prepare_command for this builder's set, config and version, in the TFDS folder that holds it."""
    root = Path(builder.data_dir).parents[len(Path(builder.info.full_name).parts) - 1]
    return prepare_command(
        builder.info.full_name.replace(f"/{builder.info.version}", f":{builder.info.version}"), root
    )


def _feature(example: dict, key: str) -> Any:
    """The value of ``key`` (``outer/inner`` for a nested feature) in one decoded example."""
    for part in key.split("/"):
        example = example[part]
    return example


def converted_image(image: Any, height: int, width: int, channels: int) -> Any:
    """One image tensor (height, width, 1..4 channels, any pixel type) as uint8 (height, width,
    channels): alpha dropped, grey <-> RGB converted (ITU-R 601 weights, as Pillow's ``L``), resized
    with antialiasing (as Pillow's bilinear when shrinking). An image already right passes unchanged."""
    import tensorflow as tf

    if image.dtype == tf.uint8 and tuple(image.shape) == (height, width, channels):
        return image
    pixels = tf.image.convert_image_dtype(image, tf.float32)  # integers scaled to [0, 1]
    if image.shape[-1] in (2, 4):
        pixels = pixels[..., :-1]
    if channels == 1 and pixels.shape[-1] == 3:
        pixels = tf.image.rgb_to_grayscale(pixels)
    elif channels == 3 and pixels.shape[-1] == 1:
        pixels = tf.image.grayscale_to_rgb(pixels)
    if tuple(image.shape[:2]) != (height, width):
        pixels = tf.image.resize(pixels, (height, width), method="bilinear", antialias=True)
    return tf.cast(tf.round(tf.clip_by_value(pixels * 255.0, 0.0, 255.0)), tf.uint8)
