"""One process at a time in a run folder: an exclusive lock file inside it, ``.aetrain.lock``.

``aetrain`` takes it before Hydra writes ``.hydra/`` and keeps it until the process ends; the companion
commands take it on the folder they write into. The lock is an ``flock`` (through ``filelock``), which
the kernel drops when its process ends in any way, kill -9 included: a lock whose process is gone
never blocks. The holder's PID, host and command go beside it, in ``.aetrain.lock.holder`` (``filelock``
may truncate the lock file itself when another process opens it), so a refusal can name the process.

The lock file stays in the folder after release (removing it after unlocking could let two
processes lock two different files of the same name); only the holder file goes. A refused process
that created the lock file removes it while still holding it (:meth:`RunFolderLock.release`), so that
a refusal leaves a folder as it found it.

No TensorFlow here: this runs before the slow import.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from aetrain import exit_codes
from aetrain.errors import AetrainError
from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import write_text_atomically
from aetrain.run_folder.claim import RunFolderUnwritable

LOCK_NAME = layout.LOCK
HOLDER_NAME = layout.LOCK_HOLDER
# A holder writes its file just after locking: how long a refused process waits to read it.
HOLDER_WAIT_SECONDS = 1.0


class RunFolderBusy(AetrainError):
    """Another process holds the folder's lock; the message names the folder and that process."""

    exit_code = exit_codes.OUTPUT

    def __init__(self, folder: Path, holder: dict[str, Any] | None) -> None:
        self.folder, self.holder = folder, holder
        super().__init__(busy_message(folder, holder))


class RunFolderLock:
    """The lock on ``folder``: :meth:`acquire` takes it at once or raises; :meth:`release` gives it back."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = FileLock(str(folder / LOCK_NAME), timeout=0)
        self._made_lock_file = False

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> None:
        """Take the lock without waiting: RunFolderBusy if a live process holds it,
        RunFolderUnwritable if the lock file cannot be created."""
        made = not (self.folder / LOCK_NAME).exists()
        try:
            self._lock.acquire()
        except Timeout:
            raise RunFolderBusy(self.folder, read_holder(self.folder)) from None
        except OSError as err:
            raise RunFolderUnwritable(unwritable_message(self.folder, err)) from None
        self._made_lock_file = made
        try:
            write_text_atomically(self.folder / HOLDER_NAME, json.dumps(this_process()))
        except OSError as err:
            self.release(leave_no_trace=True)
            raise RunFolderUnwritable(unwritable_message(self.folder, err)) from None
        except BaseException:
            self.release(leave_no_trace=True)
            raise

    def release(self, leave_no_trace: bool = False) -> None:
        """Remove the holder file, then unlock (in that order: the next holder's file is never removed).

        ``leave_no_trace`` (a refused process): remove the lock file too if this process created it,
        before unlocking, so that a process that opened the old file finds it locked and a later one
        makes a new file.
        """
        if not self._lock.is_locked:
            return
        with contextlib.suppress(OSError):
            (self.folder / HOLDER_NAME).unlink()
            if leave_no_trace and self._made_lock_file:
                (self.folder / LOCK_NAME).unlink()
        self._lock.release()


@contextlib.contextmanager
def hold_run_folder(folder: Path) -> Iterator[RunFolderLock]:
    """Hold ``folder``'s lock for the block; RunFolderBusy (exit 5) if another process holds it.
    A block that raises leaves no lock file this process created."""
    lock = RunFolderLock(folder)
    lock.acquire()
    try:
        yield lock
    except BaseException:
        lock.release(leave_no_trace=True)
        raise
    finally:
        lock.release()


# The locks this process holds until it ends: the run folder (or the sweep folder) ``aetrain`` locks
# before Hydra writes into it.
_held_until_exit: list[RunFolderLock] = []


def lock_until_exit(folder: Path) -> None:
    """Take ``folder``'s lock for the rest of the process (RunFolderBusy or RunFolderUnwritable as
    :meth:`RunFolderLock.acquire`); :func:`release_run_folder` gives it back sooner."""
    _held_until_exit.append(RunFolderLock(folder))
    _held_until_exit[-1].acquire()


def release_run_folder(leave_no_trace: bool = False) -> None:
    """Give back every lock :func:`lock_until_exit` took (``leave_no_trace``: a refused process, see
    :meth:`RunFolderLock.release`)."""
    while _held_until_exit:
        _held_until_exit.pop().release(leave_no_trace)


def refuse_if_busy(folder: Path) -> None:
    """Raise RunFolderBusy if a live process holds ``folder``'s lock, writing nothing: a folder
    without a lock file was never locked, and one whose lock is free is left as it was."""
    if is_locked(folder):
        raise RunFolderBusy(folder, read_holder(folder))


def is_locked(folder: Path) -> bool:
    """Whether a live process (this one included) holds ``folder``'s lock; writes nothing. False for
    a folder that was never locked or whose lock file cannot be opened (the writability check
    names such a folder)."""
    if not (folder / LOCK_NAME).is_file():
        return False
    probe = FileLock(str(folder / LOCK_NAME), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return True
    except OSError:
        return False
    probe.release()
    return False


def holder_is_gone(folder: Path) -> bool:
    """Whether ``folder`` was locked by a process on this machine that has ended without releasing it
    (kill -9): its holder file is still there and the lock is free. A holder on another machine
    (a cluster node) cannot be judged from here: False."""
    holder = read_holder(folder, wait_seconds=0.0)
    if holder is None or holder.get("host") != socket.gethostname():
        return False
    return not is_locked(folder)


def this_process() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def read_holder(folder: Path, wait_seconds: float = HOLDER_WAIT_SECONDS) -> dict[str, Any] | None:
    """What the holder recorded about itself, or None if it cannot be read (yet)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            holder = json.loads((folder / HOLDER_NAME).read_text())
            if isinstance(holder, dict) and "pid" in holder:
                return holder
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def unwritable_message(folder: Path, err: OSError) -> str:
    return (
        f"Cannot write into {folder} ({err.strerror or err}): its lock file {LOCK_NAME} cannot be "
        "made. Make the folder writable (or free some disk space), or write somewhere else: another "
        "`hydra.run.dir`, or `--out DIR` for aetrain-evaluate, -generate and -look."
    )


def busy_message(folder: Path, holder: dict[str, Any] | None) -> str:
    if holder:
        who = f"process {holder['pid']} on {holder.get('host', '?')} (`{holder.get('command', '?')}`"
        who += f", since {holder['since']})" if holder.get("since") else ")"
    else:
        who = f"another process (its PID could not be read from {folder / HOLDER_NAME})"
    return (
        f"The run folder {folder} is in use by {who}. One process at a time writes into a run "
        "folder. Wait for that process to finish or stop it (Ctrl-C, or `kill -INT PID`), then run "
        "again (`trainer.resume=FOLDER` continues a stopped run); or write somewhere else: another "
        "`hydra.run.dir`, or `--out DIR` for aetrain-evaluate, -generate and -look."
    )
