"""Run folders that no two runs share, never written over, and an early, readable answer when one
cannot be written.

Hydra names a run's folder after the second it started (``outputs/DATE/HH-MM-SS``), so two runs
started in the same second would write into one folder. :func:`claim_unique_dir` creates the folder
itself with ``os.mkdir``, which either creates a new folder or fails atomically, and moves on to
``HH-MM-SS_1``, ``HH-MM-SS_2``... when another process got there first. ``commands/train.py`` registers it as
the OmegaConf resolver ``aetrain.unique_dir`` used by ``conf/config.yaml``.

A folder that already holds a run (:data:`RUN_MARKERS`) is never a new run's folder
(:func:`refuse_if_holds_run`). Every folder this process creates is recorded, so that a run refused
before it starts removes exactly those (:func:`remove_created_folders`) and never one it found.

No TensorFlow here: these checks run before the slow import.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import tempfile
from pathlib import Path

from aetrain import exit_codes
from aetrain.errors import AetrainError
from aetrain.run_folder import layout

# Hydra looks the run folder up more than once per run: each lookup must get the same folder.
_claimed: dict[str, str] = {}
# The folders this process created, in the order it created them (parents first).
_created: list[Path] = []

# What an earlier run leaves in its folder; any of them makes the folder that run's.
RUN_MARKERS = layout.RUN_MARKERS


class RunFolderUnwritable(AetrainError):
    """The run folder cannot be created or written; the message names it and the fix."""

    exit_code = exit_codes.OUTPUT


class RunFolderTaken(AetrainError):
    """The folder named for a new run already holds a run; the message names it and the two ways on."""

    exit_code = exit_codes.CONFIG


def resolve_user_path(path: str | Path) -> Path:
    """``~`` expanded and a relative path made absolute (from the working folder), without following
    links: the one reading of a folder the user typed, for ``trainer.resume`` and ``hydra.run.dir``."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def make_folders(folder: Path) -> None:
    """``mkdir -p folder``, recording each folder it creates (see :func:`remove_created_folders`)."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for candidate in reversed(missing):
        try:
            candidate.mkdir()
        except FileExistsError:  # another process made it in between: it is not ours
            continue
        _created.append(candidate)


def remove_created_folders(leftovers: tuple[str, ...] = ()) -> None:
    """Remove the folders this process created, deepest first, if they are empty but for
    ``leftovers`` (names this process wrote there, e.g. its lock file). A folder that holds
    anything else, or one that was there before, stays."""
    while _created:
        folder = _created.pop()
        for name in leftovers:
            with contextlib.suppress(OSError):
                (folder / name).unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()


def claim_unique_dir(base: str) -> str:
    """Create and return a new folder ``base``, or ``base_1``, ``base_2``... if it is taken.

    Returns ``base`` unchanged when the folder cannot be created at all (no permission, a file in
    the way): :func:`check_writable` then reports it, with the path, before anything runs.
    """
    if base in _claimed:
        return _claimed[base]
    path = Path(base)
    try:
        make_folders(path.parent)
    except OSError:
        return base
    for attempt in itertools.count():
        candidate = path if attempt == 0 else path.with_name(f"{path.name}_{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError:
            return base
        _created.append(candidate)
        _claimed[base] = str(candidate)
        return str(candidate)
    raise AssertionError("unreachable")


def run_dir_or_resumed(resume: str | None, base: str) -> str:
    """The folder a run writes into: the resumed run's folder, else a fresh unique one."""
    return str(resolve_user_path(resume)) if resume else claim_unique_dir(base)


def holds_run(folder: Path) -> list[str]:
    """The :data:`RUN_MARKERS` present in ``folder`` (empty: no run of its own there)."""
    return [name for name in RUN_MARKERS if (folder / name).exists()]


def refuse_if_holds_run(folder: Path, key: str = "hydra.run.dir") -> None:
    """Raise :class:`RunFolderTaken` if ``folder`` already holds a run: a new run never writes over
    one. Reusable for any folder a new run (or sweep job) is about to write into; ``key`` is the
    setting that named it."""
    found = holds_run(folder)
    if found:
        raise RunFolderTaken(
            f"The folder {folder} (from `{key}`) already holds a run: it has {', '.join(found)}. "
            "aetrain never writes a new run over an earlier one. To continue that run, repeat its "
            f"command with `trainer.resume={folder}`; to start a new run, give another folder "
            f"(`{key}=OTHER_FOLDER`, or leave {key} unset for a fresh one)."
        )


def refuse_symlinks_written_through(folder: Path) -> None:
    """Raise :class:`RunFolderUnwritable` if a file that Hydra or the log writes in place in
    ``folder`` is a symlink (a resumed run would write through it into the file it points at)."""
    for name in layout.WRITTEN_IN_PLACE:
        path = folder / name
        if path.is_symlink():
            raise RunFolderUnwritable(
                f"{path} is a symlink (to {os.readlink(path)}): a run writes that file in place, so it "
                "would write into whatever the link points at. aetrain writes its run folder's own files "
                "and nothing else: replace the link with the plain file (or remove it), then run again."
            )


def probe_writable(folder: Path) -> None:
    """Create ``folder`` if needed (recorded, like every folder made here) and write a probe file in
    it, removed at once; any OSError on the way is the caller's to report."""
    make_folders(folder)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".aetrain-write-probe-")
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_writable(folder: Path, key: str = "hydra.run.dir") -> None:
    """Create ``folder`` if needed and write a probe file in it; raise RunFolderUnwritable if not."""
    try:
        probe_writable(folder)
    except OSError as err:
        raise RunFolderUnwritable(unwritable_message(folder, err, key)) from None


def unwritable_message(path: Path, err: OSError, key: str = "hydra.run.dir") -> str:
    """One paragraph: what could not be written, why, and what to do."""
    reason = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        fix = "The disk is full: free some space, or"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "The folder is not writable: fix its permissions, or"
    else:
        fix = "Check that the path is a folder you may write to, or"
    return (
        f"Cannot write the run folder {path} ({reason}). {fix} choose another folder with "
        f"`aetrain {key}=PATH ...` (or run aetrain from a folder where it may create outputs/)."
    )
