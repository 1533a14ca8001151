"""Bad data and unwritable run folders through the real ``aetrain``: exit 3 / 5, a message naming the
path and the fix, no traceback, no checkpoint folder, and no TensorFlow import (the data is checked
first)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from aetrain import data

from cli_runs import aetrain, plain_text, smoke_args
from idx_files import write_idx
from read_only_folders import read_only

TRAIN_IMAGES = data.FILES["train_images"]
TRAIN_LABELS = data.FILES["train_labels"]


def broken_copy(tiny_data_dir: Path, folder: Path, damage: str) -> Path:
    """A copy of the tiny data set with one kind of damage; returns the damaged file (or folder)."""
    shutil.copytree(tiny_data_dir, folder)
    target = folder / TRAIN_IMAGES
    if damage == "missing folder":
        shutil.rmtree(folder)
        return folder
    if damage == "missing file":
        target.unlink()
        return folder  # named with the missing file's name
    if damage == "truncated gz":
        target.write_bytes(target.read_bytes()[:-500])
    elif damage == "wrong magic number":
        raw = bytearray(gzip.decompress(target.read_bytes()))
        raw[:4] = b"\x1f\x8b\x08\x00"
        target.write_bytes(gzip.compress(bytes(raw)))
    elif damage == "labels of another count":
        target = folder / TRAIN_LABELS
        write_idx(target, np.zeros(300, np.uint8))
    return target


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("missing folder", ["does not exist", "Point data.dir at a folder"]),
        ("missing file", ["is missing", TRAIN_IMAGES, "Point data.dir"]),
        ("truncated gz", ["not a complete gzip file", "make data"]),
        ("wrong magic number", ["magic number is 0x1f8b0800", "Replace it"]),
        ("labels of another count", ["320 images", "300 labels", "Replace it"]),
    ],
)
def test_bad_data_exits_3_naming_the_path_and_the_fix(tiny_data_dir, tmp_path, damage, words):
    damaged = broken_copy(tiny_data_dir, tmp_path / "data", damage)
    run_dir = tmp_path / "run"
    result = aetrain(
        *smoke_args(tmp_path / "data", f"hydra.run.dir={run_dir}"), cwd=tmp_path, without_tensorflow=True
    )
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 3, text
    assert str(damaged) in text.replace(" ", "")  # (rich may wrap a long path)
    for word in words:
        assert word in text
    assert "Traceback" not in text and "forbid importing TensorFlow" not in text
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.json").exists()


def test_run_folder_under_a_file_exits_5_naming_it(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    run_dir = tmp_path / "a-file" / "run"
    result = aetrain("trainer=smoke", f"hydra.run.dir={run_dir}", cwd=tmp_path, without_tensorflow=True)
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 5, text
    assert f"Cannot write the run folder {run_dir}" in text and "hydra.run.dir=PATH" in text
    assert "Traceback" not in text


@pytest.mark.parametrize("explicit", [True, False], ids=["hydra.run.dir", "default outputs/"])
def test_read_only_folder_exits_5_naming_it(tmp_path, explicit):
    folder = tmp_path / "read-only"
    folder.mkdir()
    with read_only(folder):
        args = [f"hydra.run.dir={folder / 'run'}"] if explicit else []
        result = aetrain("trainer=smoke", *args, cwd=folder if not explicit else tmp_path)
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 5, text
    assert "not writable" in text and str(folder) in text
    assert "Traceback" not in text


@pytest.mark.slow
def test_an_unwritable_tensorboard_log_dir_exits_5_naming_it_before_training(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    (run / "tb").mkdir(parents=True)
    with read_only(run / "tb"):
        result = aetrain(
            *smoke_args(tiny_data_dir, "logger=[tensorboard]", "logger.tensorboard.log_dir=tb"),
            f"hydra.run.dir={run}",
            cwd=tmp_path,
        )
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 5, text
    assert str(run / "tb") in text and "Traceback" not in text
    assert not (run / "checkpoints").exists()
