"""A folder made unwritable for the test's process, whoever runs it: CI runs the suite as root."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` made unwritable: chmod for a user; for root (who ignores modes) the immutable flag."""
    if os.geteuid() != 0:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        undo = ["chmod", "u+w", str(folder)]
    else:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("root, and no chattr +i here to make a folder read-only")
        undo = [chattr, "-i", str(folder)]
    try:
        yield
    finally:
        subprocess.run(undo, check=True)
