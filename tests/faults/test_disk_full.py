"""A full disk while training (simulated: writes raise ENOSPC) names the file and the fix, exits 5,
and leaves the previous checkpoints whole and no partial file."""

from __future__ import annotations

import errno
import io
import subprocess
import sys

import keras
import pytest
from rich.console import Console

from aetrain.run_folder.atomic_files import RunFolderWriteError
from aetrain.run_folder.checkpoints import read_metadata
from aetrain.training import loop as train

from cli_runs import environment, is_whole_checkpoint, partial_files, plain_text, smoke_args

# Epoch 1 saves best.keras and copies it to last.keras; from then on the disk is full.
FILL_DISK_AFTER_ONE_SAVE = """
import errno, sys, keras
real_save, calls = keras.Model.save, []
def save(self, *args, **kwargs):
    calls.append(1)
    if len(calls) > 1:
        raise OSError(errno.ENOSPC, "No space left on device")
    return real_save(self, *args, **kwargs)
keras.Model.save = save
from aetrain.commands.train import entry
sys.argv = ["aetrain", *sys.argv[1:]]
entry()
"""


def fill_disk_after(saves: int, monkeypatch) -> None:
    real_save, calls = keras.Model.save, []

    def save(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > saves:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save)


def test_full_disk_in_epoch_two_keeps_epoch_one(make_config, tmp_path, monkeypatch):
    fill_disk_after(1, monkeypatch)
    run_dir = tmp_path / "run"
    with pytest.raises(RunFolderWriteError) as caught:
        train.run(make_config("trainer.epochs=3"), run_dir, Console(file=io.StringIO()))
    message = str(caught.value)
    assert caught.value.errno == errno.ENOSPC
    assert "disk is full" in message and str(run_dir / "checkpoints") in message
    assert "no partial file was left" in message
    for name in ("best.keras", "last.keras"):
        assert is_whole_checkpoint(run_dir / "checkpoints" / name)
        assert read_metadata(run_dir / "checkpoints" / name)["epoch"] == 1
    assert partial_files(run_dir) == []


@pytest.mark.slow
def test_full_disk_through_the_cli_exits_5_without_traceback(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    args = smoke_args(tiny_data_dir, f"hydra.run.dir={run_dir}", "trainer.epochs=3")
    result = subprocess.run(
        [sys.executable, "-c", FILL_DISK_AFTER_ONE_SAVE, *args],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 5, text
    assert "No space left on device" in text and "disk is full" in text
    assert str(run_dir / "checkpoints") in text.replace(" ", "")
    assert "Traceback" not in text
    assert read_metadata(run_dir / "checkpoints" / "last.keras")["epoch"] == 1
    assert partial_files(run_dir) == []
