"""What a stopped run left to resume from, and whether a new config may continue it.

``trainer.resume=RUN_FOLDER`` continues the run from ``RUN_FOLDER/checkpoints/last.keras``: its
weights, optimizer state, epoch count, history and noise-generator states. Everything else about the
run must be what it was, or the "resumed" run would be a different experiment: only the keys in
RESUMABLE_CHANGES may differ. No TensorFlow here: a bad resume is refused before the slow import,
and before Hydra writes anything into the old folder.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aetrain.config import ConfigError, RunConfig

LAST_CHECKPOINT = Path("checkpoints") / "last.keras"
BEST_CHECKPOINT = Path("checkpoints") / "best.keras"
METADATA_NAME = "aetrain.json"  # the same name aetrain.checkpoints writes

# trainer.epochs may grow (a longer run); the rest only changes how the run is watched.
RESUMABLE_CHANGES = frozenset({"trainer.epochs", "trainer.resume", "trainer.progress"})


@dataclass(frozen=True)
class SavedRun:
    """The state ``checkpoints/last.keras`` of a run folder records."""

    folder: Path
    epoch: int
    config: dict[str, Any]
    history: dict[str, list[float]] = field(default_factory=dict)
    random_state: list[list[int]] = field(default_factory=list)

    @property
    def last_checkpoint(self) -> Path:
        return self.folder / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        return self.folder / BEST_CHECKPOINT


def read_metadata(checkpoint: Path) -> dict[str, Any]:
    """aetrain's metadata inside a ``.keras`` zip ({} when absent), without importing Keras."""
    with zipfile.ZipFile(checkpoint) as archive:
        if METADATA_NAME not in archive.namelist():
            return {}
        return json.loads(archive.read(METADATA_NAME))


def read_saved_run(folder: str | Path) -> SavedRun:
    """The resumable state of ``folder``, or ConfigError on ``trainer.resume`` saying what is missing."""
    folder = Path(folder).expanduser()
    last = folder / LAST_CHECKPOINT
    if not folder.is_dir():
        _refuse(folder, "a run folder written by aetrain", f"There is no folder {folder}.")
    if not last.is_file():
        _refuse(
            folder,
            f"a run folder holding {LAST_CHECKPOINT}",
            f"{folder} has no {LAST_CHECKPOINT}: the run stopped before finishing its first epoch, so "
            "there is nothing to resume; start it again without trainer.resume.",
        )
    try:
        metadata = read_metadata(last)
        epoch, config = int(metadata["epoch"]), dict(metadata["config"])
    except (OSError, zipfile.BadZipFile, KeyError, TypeError, ValueError) as err:
        _refuse(
            folder,
            "a run folder whose checkpoints aetrain wrote",
            f"{last} cannot be read as an aetrain checkpoint ({type(err).__name__}: {err}).",
        )
    return SavedRun(
        folder=folder,
        epoch=epoch,
        config=config,
        history={key: list(values) for key, values in metadata.get("history", {}).items()},
        random_state=[list(state) for state in metadata.get("random_state", [])],
    )


def check_resumable(cfg: RunConfig, saved: SavedRun) -> None:
    """Refuse, naming every differing key, unless ``cfg`` is the saved run's config up to
    RESUMABLE_CHANGES; refuse too when the saved run already has ``trainer.epochs`` epochs."""
    now, then = _flatten(cfg.to_dict()), _flatten(_with_defaults(saved.config))
    differing = sorted(key for key in now.keys() | then.keys() if now.get(key) != then.get(key))
    differing = [key for key in differing if key not in RESUMABLE_CHANGES]
    if differing:
        changes = "; ".join(f"{key}: saved {then.get(key)!r}, now {now.get(key)!r}" for key in differing)
        _refuse(
            saved.folder,
            f"the settings of the run being resumed (only {', '.join(sorted(RESUMABLE_CHANGES))} may change)",
            f"This run's config differs from the saved one in {changes}. Repeat the original "
            "command's overrides, adding trainer.resume.",
        )
    if saved.epoch >= cfg.trainer.epochs:
        raise ConfigError(
            "trainer.epochs",
            cfg.trainer.epochs,
            f"an integer > {saved.epoch}",
            f"The run in {saved.folder} already trained {saved.epoch} epochs; raise trainer.epochs "
            "to train it further.",
        )


def _with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """The saved config with the settings added since it was written at their defaults (a run saved
    before variant.tied_weights existed resumes with tied_weights=false, as it trained)."""
    try:
        return RunConfig.from_dict(config).to_dict()
    except ConfigError:
        return config


def _refuse(folder: Path, allowed: str, why: str) -> None:
    raise ConfigError("trainer.resume", str(folder), allowed, why)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
