"""Write a file so that readers see the old version or the new one, never half of either."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aetrain import exit_codes
from aetrain.errors import AetrainError
from aetrain.run_folder.claim import unwritable_message


class RunFolderWriteError(AetrainError, OSError):
    """A file of the run folder could not be written (full disk, permissions); nothing partial is left.

    The message names the file and the fix; ``errno`` is the underlying error's.
    """

    exit_code = exit_codes.OUTPUT

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.path = path
        self.message = (
            f"{unwritable_message(path.parent, cause)} The file was {path}; any earlier version of it "
            "is intact and no partial file was left."
        )

    def __str__(self) -> str:
        return self.message


PARTIAL_MARK = "-partial-"


def probe_folder(folder: Path) -> None:
    """Create ``folder`` if needed and write (then remove) a probe file in it, or RunFolderWriteError:
    for a folder that a library (not aetrain's atomic writes) will write into later."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".probe{PARTIAL_MARK}")
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise RunFolderWriteError(folder / ".probe", err) from err


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path beside ``target``; once the block returns, fsync it and rename over ``target``.

    A crash or kill -9 at any moment leaves either the previous ``target`` or the new one; a failed
    block removes the temp file. The temp name keeps ``target``'s suffix (Keras insists on ``.keras``)
    and starts with a dot and ``partial`` so nobody mistakes it for a finished file. Any OSError on
    the way (a full disk, a folder made read-only) becomes a :class:`RunFolderWriteError` naming
    ``target``.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{target.stem}{PARTIAL_MARK}"
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=target.suffix)
        os.close(fd)
    except OSError as err:
        raise RunFolderWriteError(target, err) from err
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_directory(target.parent)
    except BaseException as failure:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(failure, OSError) and not isinstance(failure, RunFolderWriteError):
            raise RunFolderWriteError(target, failure) from failure
        raise


def remove_partial_files(folder: Path) -> list[Path]:
    """Delete the temp files a killed writer left in ``folder`` (only those :func:`atomic_path` names).

    Nothing reads them, but a resumed run cleans them up so they do not pile up in the run folder.
    """
    removed = []
    for leftover in folder.glob(f".*{PARTIAL_MARK}*"):
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed.append(leftover)
    return removed


def write_text_atomically(target: Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return target


def copy_atomically(source: Path, target: Path) -> Path:
    """``target`` becomes a copy of ``source``, never half-copied (see :func:`atomic_path`)."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


def write_json_atomically(target: Path, content: Any) -> Path:
    """``content`` as strict JSON (what every JSON reader accepts), written atomically.

    Python's json writes a NaN or an infinity as a bare ``NaN``/``Infinity``, which is not JSON: they
    are written as ``null`` instead (a diverged run's losses, a metric with no value).
    """
    return write_text_atomically(target, json.dumps(json_ready(content), indent=2, allow_nan=False))


def json_ready(content: Any) -> Any:
    """``content`` with NumPy scalars as Python numbers and non-finite floats as None."""
    if isinstance(content, dict):
        return {str(key): json_ready(value) for key, value in content.items()}
    if isinstance(content, (list, tuple)):
        return [json_ready(value) for value in content]
    if isinstance(content, (bool, int, str)) or content is None:
        return content
    if hasattr(content, "item") and getattr(content, "ndim", 0) == 0:  # a NumPy or TF scalar
        return json_ready(content.item())
    if hasattr(content, "tolist"):  # a NumPy array
        return json_ready(content.tolist())
    number = float(content)
    return number if math.isfinite(number) else None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
