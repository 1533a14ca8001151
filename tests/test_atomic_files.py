"""Atomic writes: the temp-file naming, and the clean-up of what a killed writer leaves behind."""

from __future__ import annotations

import pytest

from aetrain.run_folder.atomic_files import atomic_path, remove_partial_files, write_text_atomically


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
