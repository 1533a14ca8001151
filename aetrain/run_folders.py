"""Run folders that no two runs share, and an early, readable answer when one cannot be written.

Hydra names a run's folder after the second it started (``outputs/DATE/HH-MM-SS``), so two runs
started in the same second would write into one folder. :func:`claim_unique_dir` creates the folder
itself with ``os.mkdir``, which either creates a new folder or fails atomically, and moves on to
``HH-MM-SS_1``, ``HH-MM-SS_2``... when another process got there first. ``cli.py`` registers it as
the OmegaConf resolver ``aetrain.unique_dir`` used by ``conf/config.yaml``.

No TensorFlow here: these checks run before the slow import.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import tempfile
from pathlib import Path

# Hydra looks the run folder up more than once per run: each lookup must get the same folder.
_claimed: dict[str, str] = {}


class RunFolderUnwritable(Exception):
    """The run folder cannot be created or written; the message names it and the fix."""


def claim_unique_dir(base: str) -> str:
    """Create and return a new folder ``base``, or ``base_1``, ``base_2``... if it is taken.

    Returns ``base`` unchanged when the folder cannot be created at all (no permission, a file in
    the way): :func:`check_writable` then reports it, with the path, before anything runs.
    """
    if base in _claimed:
        return _claimed[base]
    path = Path(base)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
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
        _claimed[base] = str(candidate)
        return str(candidate)
    raise AssertionError("unreachable")


def run_dir_or_resumed(resume: str | None, base: str) -> str:
    """The folder a run writes into: the resumed run's folder, else a fresh unique one."""
    return str(resume) if resume else claim_unique_dir(base)


def check_writable(folder: Path, key: str = "hydra.run.dir") -> None:
    """Create ``folder`` if needed and write a probe file in it; raise RunFolderUnwritable if not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".aetrain-write-probe-")
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
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
