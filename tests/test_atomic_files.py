"""Atomic writes: the temp-file naming, and the clean-up of what a killed writer leaves behind."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from aetrain.run_folder.atomic_files import (
    RunFolderWriteError,
    atomic_path,
    copy_atomically,
    remove_partial_files,
    write_text_atomically,
)


def test_a_failed_block_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = write_text_atomically(tmp_path / "metrics.json", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_remove_partial_files_removes_only_leftover_temp_files(tmp_path):
    write_text_atomically(tmp_path / "last.keras", "whole")
    (tmp_path / ".last-partial-x1y2.keras").write_text("half")
    (tmp_path / ".metrics-partial-9.json").write_text("half")
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "notes-partial.txt").write_text("a user's file, not hidden")
    removed = remove_partial_files(tmp_path)
    assert sorted(p.name for p in removed) == [".last-partial-x1y2.keras", ".metrics-partial-9.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hydra", "last.keras", "notes-partial.txt"]


def test_a_copy_that_fails_halfway_keeps_the_old_target_and_names_it(tmp_path, monkeypatch):
    source = write_text_atomically(tmp_path / "best.keras", "new and whole")
    target = write_text_atomically(tmp_path / "last.keras", "old")

    def disk_full_halfway(src, dst):
        Path(dst).write_text("new a")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", disk_full_halfway)
    with pytest.raises(RunFolderWriteError) as caught:
        copy_atomically(source, target)
    assert caught.value.errno == errno.ENOSPC and caught.value.path == target
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras", "last.keras"]
