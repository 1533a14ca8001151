"""Checkpoints that never exist half-written, and that say what they are.

A ``.keras`` file is a zip; aetrain adds ``aetrain.json`` (the run config, epoch, history) to it
before the atomic rename, so a checkpoint found alone still tells how it was made.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aetrain.atomic_files import atomic_path

if TYPE_CHECKING:  # read_metadata needs only zipfile: commands check a path before TensorFlow loads
    import keras

METADATA_NAME = "aetrain.json"


def save_checkpoint(model: keras.Model, path: Path, metadata: dict[str, Any]) -> None:
    """Write ``model`` (with optimizer state) and ``metadata`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp, overwrite=True)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA_NAME, json.dumps(metadata, indent=2, default=float))


def read_metadata(path: Path) -> dict[str, Any]:
    """The aetrain metadata stored in a checkpoint ({} for a plain Keras file)."""
    with zipfile.ZipFile(path) as archive:
        if METADATA_NAME not in archive.namelist():
            return {}
        return json.loads(archive.read(METADATA_NAME))


def load_checkpoint(path: Path, compile: bool = True) -> keras.Model:
    """Reload an aetrain checkpoint; importing aetrain.models registers its custom layers first."""
    import keras

    import aetrain.models  # noqa: F401  (registration side effect)

    return keras.models.load_model(path, compile=compile)
