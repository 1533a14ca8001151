"""What a stopped run left to resume from, and whether a new config may continue it.

``trainer.resume=RUN_FOLDER`` continues the run from ``RUN_FOLDER/checkpoints/last.keras``: its
weights, optimizer state, epoch count, history and noise-generator states. A run whose training was
complete but whose evaluation or pictures were not (``metrics.json`` not ``completed``) resumes with
the same ``trainer.epochs`` and does only those. Everything else about the
run must be what it was, or the "resumed" run would be a different experiment: only the keys in
RESUMABLE_CHANGES may differ. No TensorFlow here: a bad resume is refused before the slow import,
and before Hydra writes anything into the old folder.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aetrain.config import MAX_COUNT, ConfigError, RunConfig, dotted_keys
from aetrain.run_folder import layout
from aetrain.run_folder.checkpoints import CheckpointRefused, check_checkpoint_whole, read_metadata
from aetrain.run_folder.claim import resolve_user_path
from aetrain.run_folder.record import read_metrics_or_empty

LAST_CHECKPOINT = layout.LAST_CHECKPOINT
BEST_CHECKPOINT = layout.BEST_CHECKPOINT

# trainer.epochs may grow (a longer run); the rest only changes how the run is watched or drawn, how
# many threads it gets or whether it traces its steps (a parallel sweep caps threads per job; the
# printed "Resume with:" line leaves them out; a run stopped while drawing a large grid may resume with
# a smaller one). So do the loggers (logger.*, and trainer.tensorboard in checkpoints from before
# loggers were a group).
RESUMABLE_CHANGES = frozenset(
    {
        "trainer.epochs",
        "trainer.resume",
        "trainer.progress",
        "trainer.grid_images",
        "trainer.intra_op_threads",
        "trainer.inter_op_threads",
        "trainer.run_eagerly",
        "trainer.tensorboard",
        "trainer.backend",  # a checkpoint is the same on either backend
    }
)
RESUMABLE_PREFIXES = ("logger.",)
METRICS_NAME = layout.METRICS


@dataclass(frozen=True)
class SavedRun:
    """The state ``checkpoints/last.keras`` of a run folder records."""

    folder: Path
    epoch: int
    config: dict[str, Any]
    history: dict[str, list[float]] = field(default_factory=dict)
    random_state: list[list[int]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)  # the folder's metrics.json, {} if none

    @property
    def finished(self) -> bool:
        """Every phase done (training, evaluation, pictures): nothing is left but more epochs."""
        return self.metrics.get("status") == "completed"

    @property
    def training_complete(self) -> bool:
        """The checkpoint holds every epoch its run was to train (its own trainer.epochs)."""
        planned = self.config.get("trainer", {}).get("epochs")
        return isinstance(planned, int) and self.epoch >= planned

    @property
    def last_checkpoint(self) -> Path:
        return self.folder / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        return self.folder / BEST_CHECKPOINT


def read_saved_run(folder: str | Path) -> SavedRun:
    """The resumable state of ``folder``, or ConfigError on ``trainer.resume`` saying what is missing.

    ``folder`` is read as typed: ``~`` expanded, a relative path from the working folder.
    """
    folder = resolve_user_path(folder)
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
    try:  # every checkpoint the resumed run may load, whole, before anything is written
        for checkpoint in (last, folder / BEST_CHECKPOINT):
            if checkpoint == last or checkpoint.is_file():
                check_checkpoint_whole(checkpoint)
        saved = _saved_run(folder, read_metadata(last))
    except CheckpointRefused as refused:
        _refuse(
            folder,
            "a run folder whose checkpoints are whole and were written by aetrain",
            f"The checkpoint {refused.path} {refused.problem} The run cannot continue from it: restore "
            "the file from a backup, or start a new run without trainer.resume.",
        )
    except (OSError, zipfile.BadZipFile, KeyError, TypeError, ValueError, AttributeError) as err:
        _refuse(
            folder,
            "a run folder whose checkpoints aetrain wrote",
            f"{last} cannot be read as an aetrain checkpoint ({type(err).__name__}: {err}).",
        )
    return saved


def _saved_run(folder: Path, metadata: dict[str, Any]) -> SavedRun:
    """The metadata's fields, typed; a stored config that aetrain would refuse on the command line
    is refused here too (it never resolves interpolations)."""
    epoch = metadata["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= MAX_COUNT:
        raise ValueError(f"its epoch is {epoch!r}, not an integer from 1 to {MAX_COUNT}")
    try:
        config = RunConfig.from_dict(metadata["config"]).to_dict()
    except ConfigError as error:
        raise ValueError(f"the config stored in it is refused: {error}") from None
    history = {
        str(key): [math.nan if v is None else float(v) for v in values]  # null: a non-finite value
        for key, values in metadata.get("history", {}).items()
    }
    random_state = [[int(x) for x in state] for state in metadata.get("random_state", [])]
    return SavedRun(
        folder=folder,
        epoch=epoch,
        config=config,
        history=history,
        random_state=random_state,
        metrics=read_metrics_or_empty(folder),
    )


def check_resumable(cfg: RunConfig, saved: SavedRun) -> None:
    """Refuse, naming every differing key, unless ``cfg`` is the saved run's config up to
    RESUMABLE_CHANGES; refuse too when the saved run already has ``trainer.epochs`` epochs and
    finished every phase (with exactly that many and a phase missing, the resume finishes it)."""
    now, then = dotted_keys(cfg.to_dict()), dotted_keys(_with_defaults(saved.config))
    differing = sorted(key for key in now.keys() | then.keys() if now.get(key) != then.get(key))
    differing = [
        key for key in differing if key not in RESUMABLE_CHANGES and not key.startswith(RESUMABLE_PREFIXES)
    ]
    if differing:
        changes = "; ".join(f"{key}: saved {then.get(key)!r}, now {now.get(key)!r}" for key in differing)
        _refuse(
            saved.folder,
            f"the settings of the run being resumed (only {', '.join(sorted(RESUMABLE_CHANGES))} may change)",
            f"This run's config differs from the saved one in {changes}. Repeat the original "
            "command's overrides, adding trainer.resume.",
        )
    if saved.epoch == cfg.trainer.epochs and saved.training_complete and not saved.finished:
        return  # the resume does the evaluation and pictures the run missed
    if saved.epoch >= cfg.trainer.epochs:
        raise ConfigError(
            "trainer.epochs",
            cfg.trainer.epochs,
            f"an integer > {saved.epoch}",
            f"The run in {saved.folder} already trained {saved.epoch} epochs"
            + (" and finished (its metrics.json says completed)" if saved.finished else "")
            + "; raise trainer.epochs to train it further.",
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
