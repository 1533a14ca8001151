"""A user's own folder of PNG/JPEG images, decoded and resized to ``data.image_size``.

Class sub-folders are optional: ``photos/cats/*.jpg`` and ``photos/dogs/*.png`` give the classes
``cats`` and ``dogs`` (sorted by name); a folder of loose images is one class named after it. Every
file is decoded once: later runs read the decoded images from aetrain's cache
(aetrain.data.image_cache). A plain 8-bit PNG is decoded by OpenCV where it is installed (the
``fast-decode`` extra), every other file by Pillow (a well-kept decoder, with its guard against
decompression bombs), as is any PNG OpenCV cannot read: a file Pillow cannot read either is a
DataError naming the file, never skipped in silence.
"""

from __future__ import annotations

import functools
import operator
import os
from pathlib import Path
from typing import Any

import numpy as np

from aetrain.data.image_cache import REPLACE_OR_REMOVE, decoded_images
from aetrain.data.raw import DataError, RawData

EXTENSIONS = (".png", ".jpg", ".jpeg")
MODES = {1: "L", 3: "RGB"}  # Pillow's modes for data.channels


def image_files(folder: Path) -> list[str]:
    """The paths of the images directly in ``folder`` and below it, in the order of sorted Paths (a
    fixed order makes the split repeatable). Strings, not Paths: a Path costs microseconds to make,
    seconds for a folder of 200,000 images that only needs comparing with its cache.

    A name with an image's extension that is no file (a dangling symlink) is a DataError naming it:
    an image the user meant to train on is never left out in silence. Symlinked sub-folders are not
    entered. One pass of ``os.scandir`` per folder, whose entries know a plain file or folder without
    a stat call each: listing a large folder costs little beside mapping its cache.
    """
    named: list[str] = []
    _collect_images(str(folder), named)
    return named


def _collect_images(folder: str, named: list[str]) -> None:
    """Append the images of ``folder`` and its sub-folders to ``named``, depth first, each folder's
    entries by name: the order of sorted Paths, which compare part by part."""
    with os.scandir(folder) as scanned:
        entries = sorted(scanned, key=operator.attrgetter("name"))
    for entry in entries:
        if entry.is_dir():
            if not entry.is_symlink():
                _collect_images(entry.path, named)
        elif entry.name.lower().endswith(EXTENSIONS):
            if not entry.is_file():
                _refuse_no_file(Path(entry.path))
            named.append(entry.path)


def _refuse_no_file(path: Path) -> None:
    raise DataError(
        f"{path} is named as an image but is no file"
        + (f" (a symlink to {os.readlink(path)}, which does not exist)" if path.is_symlink() else "")
        + ". Restore what it points to, or remove it from data.dir."
    )


def list_images(folder: Path) -> tuple[list[str], list[int], tuple[str, ...]]:
    """(files, labels, class names): one class per sub-folder holding images, else one class."""
    if not folder.is_dir():
        raise DataError(
            f"data.dir={folder} does not exist or is not a folder. data=image_folder reads a folder of "
            "PNG/JPEG images (class sub-folders optional): set data.dir to it."
        )
    in_subfolders = {p: image_files(p) for p in sorted(folder.iterdir()) if p.is_dir()}
    classes = [p for p, found in in_subfolders.items() if found]
    if not classes:
        files = image_files(folder)
        if not files:
            raise DataError(
                f"data.dir={folder} holds no {'/'.join(EXTENSIONS)} images. Put the images there (class "
                "sub-folders optional) or point data.dir at the folder that holds them."
            )
        return files, [0] * len(files), (folder.name or "images",)
    loose = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS]
    if loose:
        raise DataError(
            f"data.dir={folder} has class sub-folders ({', '.join(p.name for p in classes)}) and also images "
            f"outside them, e.g. {loose[0]}: which class is that? Move the loose images into a class "
            "sub-folder, or remove them."
        )
    files, labels = [], []
    for label, class_folder in enumerate(classes):
        files += in_subfolders[class_folder]
        labels += [label] * len(in_subfolders[class_folder])
    return files, labels, tuple(p.name for p in classes)


def read_image(path: str | Path, height: int, width: int, channels: int) -> np.ndarray:
    """One image converted to grey or RGB and resized to (height, width): uint8. A PNG goes to OpenCV
    first where it is installed; anything it does not return as plain 8-bit pixels goes to Pillow."""
    if os.path.splitext(path)[1].lower() == ".png":
        pixels = read_png_with_opencv(path, height, width, channels)
        if pixels is not None:
            return pixels
    return read_image_with_pillow(path, height, width, channels)


def decoder() -> str:
    """Which library decodes this machine's PNGs (part of the cache's key: their pixels differ a little)."""
    return "opencv" if _opencv() is not None else "pillow"


@functools.cache
def _opencv() -> Any:
    """OpenCV, quiet and one thread per decoding process, with Pillow's decompression-bomb limit; None
    where it is not installed."""
    from PIL import Image

    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(2 * Image.MAX_IMAGE_PIXELS))
    try:
        import cv2
    except ImportError:
        return None
    cv2.setNumThreads(1)  # the decoding processes share the cores already
    return cv2


#: OpenCV's pixel layouts (channels per pixel, in its blue-first order) -> the conversion to what
#: aetrain stores for data.channels (None: already so)
_CONVERSIONS = {
    1: {1: None, 3: "COLOR_BGR2GRAY", 4: "COLOR_BGRA2GRAY"},
    3: {1: "COLOR_GRAY2RGB", 3: "COLOR_BGR2RGB", 4: "COLOR_BGRA2RGB"},
}


def read_png_with_opencv(path: str | Path, height: int, width: int, channels: int) -> np.ndarray | None:
    """An 8-bit PNG decoded by OpenCV, or None (not installed, unreadable, 16-bit, too large): Pillow
    then decodes it, or says what is wrong with it. Shrunk by pixel area (as Pillow's filters widen
    when they shrink), enlarged bilinearly."""
    cv2 = _opencv()
    if cv2 is None:
        return None
    try:
        image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except (OSError, cv2.error):
        return None
    if image is None or image.dtype != np.uint8 or image.ndim not in (2, 3):
        return None
    layout = 1 if image.ndim == 2 else image.shape[2]
    if layout not in _CONVERSIONS[channels]:
        return None
    conversion = _CONVERSIONS[channels][layout]
    if conversion is not None:
        image = cv2.cvtColor(image, getattr(cv2, conversion))
    if image.shape[:2] != (height, width):
        shrinking = image.shape[0] * image.shape[1] > height * width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        image = cv2.resize(image, (width, height), interpolation=interpolation)
    return np.ascontiguousarray(image, dtype=np.uint8)


def read_image_with_pillow(path: str | Path, height: int, width: int, channels: int) -> np.ndarray:
    """One image decoded by Pillow, converted to grey or RGB, resized to (height, width): uint8."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            converted = _eight_bit(image).convert(MODES[channels])
            if converted.size != (width, height):
                converted = converted.resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(converted, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as err:
        raise DataError(
            f"{path} cannot be read as an image ({type(err).__name__}: {err}). {REPLACE_OR_REMOVE}"
        ) from None
    return pixels if channels == 3 else pixels.reshape(height, width)


def _eight_bit(image: Any) -> Any:
    """A 16-bit greyscale image (Pillow's modes I;16*, or I for a 16-bit PNG) scaled to 8 bits.

    Pillow's own convert to L clips such values at 255, so every pixel of a 16-bit PNG came out white.
    """
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        wide = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)
        return Image.fromarray(np.round(wide * (255.0 / 65535.0)).astype(np.uint8), "L")
    return image


def read_image_folder(data_cfg: Any, spec: Any, download: bool) -> RawData:
    """Every image of ``data.dir`` as one pool (the train/validation/test split is drawn from it)."""
    if data_cfg.dir is None:
        raise DataError(
            "data=image_folder needs data.dir: the folder of your PNG/JPEG images, e.g. "
            "`aetrain data=image_folder data.dir=~/photos`."
        )
    folder = Path(data_cfg.dir).expanduser()
    files, labels, class_names = list_images(folder)
    decode = functools.partial(read_image, height=spec.height, width=spec.width, channels=spec.channels)
    images = decoded_images(files, folder, spec.image_shape, decode, decoded_by=decoder())
    return RawData(
        train_images=images,
        train_labels=np.asarray(labels, dtype=np.int64),
        test_images=None,
        test_labels=None,
        source=folder,
        class_names=class_names,
    )
