"""What a finished run left behind, found from one path: its checkpoint, its config, where outputs go.

The evaluate/generate/look commands take a run folder or a ``.keras`` checkpoint. The config comes
from the checkpoint's embedded ``aetrain.json``, so a checkpoint copied away from its folder still
works. Only ``zipfile`` and the config schema are used here: a wrong path, a damaged archive or a
stored config aetrain refuses is reported before TensorFlow loads.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aetrain import exit_codes
from aetrain.config import ConfigError, RunConfig
from aetrain.errors import AetrainError
from aetrain.run_folder import layout
from aetrain.run_folder.checkpoints import check_checkpoint_whole, read_metadata

BEST_CHECKPOINT = layout.BEST_CHECKPOINT
PATH_HINT = (
    "Pass a run folder written by `aetrain` (e.g. outputs/2025-01-31/12-00-00, which holds "
    "checkpoints/best.keras) or a .keras checkpoint file written by aetrain."
)


class RunPathError(AetrainError):
    """The path given is not a usable run folder or checkpoint; the message says why and what to pass."""

    exit_code = exit_codes.CONFIG


@dataclass(frozen=True)
class TrainedRun:
    checkpoint: Path
    output_dir: Path  # the run folder (a checkpoint's folder when it sits outside one)
    config: RunConfig
    metadata: dict[str, Any]


def locate_trained_run(path: str | Path) -> TrainedRun:
    """Resolve ``path`` to its checkpoint and config, or raise RunPathError naming the problem."""
    path = Path(path)
    if not path.exists():
        raise RunPathError(f"`{path}` does not exist. {PATH_HINT}")
    checkpoint = path / BEST_CHECKPOINT if path.is_dir() else path
    if path.is_dir() and not checkpoint.is_file():
        raise RunPathError(
            f"`{path}` is a folder but has no {BEST_CHECKPOINT}: it is not an aetrain run folder, or its "
            f"run stopped before the first checkpoint. {PATH_HINT}"
        )
    check_checkpoint_whole(checkpoint)  # CheckpointRefused: damaged, or classes that are not aetrain's
    try:
        metadata = read_metadata(checkpoint)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise RunPathError(
            f"`{checkpoint}` is not a readable Keras checkpoint (a .keras file is a zip archive; "
            f"this one gave: {error}). {PATH_HINT}"
        ) from None
    if "config" not in metadata:
        raise RunPathError(
            f"`{checkpoint}` carries no aetrain.json with the run's config, so aetrain cannot tell how "
            f"the model was made (it was not written by aetrain, or by a version before 0.1). {PATH_HINT}"
        )
    try:
        config = RunConfig.from_dict(metadata["config"])
    except ConfigError as error:
        raise RunPathError(
            f"The config stored in `{checkpoint}` is not one this aetrain accepts: {error}"
        ) from None
    output_dir = checkpoint.parent
    if output_dir.name == BEST_CHECKPOINT.parent.name:
        output_dir = output_dir.parent
    return TrainedRun(checkpoint=checkpoint, output_dir=output_dir, config=config, metadata=metadata)
