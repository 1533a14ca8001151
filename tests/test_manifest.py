"""manifest.json: versions, commit, machine, data hashes, command line and seed of a run."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import keras
import pytest

from aetrain import __version__
from aetrain.run_folder.checkpoints import read_metadata
from aetrain.run_folder.manifest import (
    MANIFEST_NAME,
    data_files,
    git_commit,
    read_manifest,
    run_manifest,
    write_manifest,
)

KEYS = {
    "aetrain_version",
    "git_commit",
    "python",
    "libraries",
    "device",
    "precision",
    "data_dir",
    "data_files",
    "command_line",
    "seed",
}


def test_manifest_names_versions_data_hashes_command_and_seed(tmp_path):
    (tmp_path / "a.gz").write_bytes(b"abc")
    manifest = run_manifest(
        seed=7,
        device="CPU (2 cores)",
        precision="float32",
        data_dir=tmp_path,
        command_line=["aetrain", "x=1"],
    )
    assert set(manifest) == KEYS
    assert manifest["aetrain_version"] == __version__
    assert set(manifest["libraries"]) == {"tensorflow", "keras", "jax", "hydra", "omegaconf", "numpy"}
    assert all(manifest["libraries"].values())
    assert manifest["data_files"] == {"a.gz": hashlib.sha256(b"abc").hexdigest()}
    assert manifest["command_line"] == "aetrain x=1" and manifest["seed"] == 7


def test_data_files_hash_only_the_named_files(tmp_path):
    (tmp_path / "keep").write_bytes(b"1")
    (tmp_path / "other").write_bytes(b"2")
    assert list(data_files(tmp_path, ["keep", "missing"])) == ["keep"]


def test_git_commit_of_a_checkout_and_none_elsewhere(tmp_path, monkeypatch):
    assert git_commit(tmp_path) is None  # no .git: an installed aetrain
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    run = {"cwd": tmp_path, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "add", "f"], **run)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "m"], **run)
    head = subprocess.run(["git", "rev-parse", "HEAD"], text=True, **run).stdout.strip()
    assert git_commit(tmp_path) == head
    monkeypatch.setenv("PATH", "")  # no git on the PATH: no commit, no failure
    assert git_commit(tmp_path) is None


def test_written_sorted_and_a_resume_keeps_the_earlier_start(tmp_path):
    first = {"seed": 1, "command_line": "aetrain"}
    write_manifest(tmp_path, first)
    text = (tmp_path / MANIFEST_NAME).read_text()
    assert text == json.dumps(first, indent=2, sort_keys=True) + "\n"
    write_manifest(tmp_path, {"seed": 1, "command_line": "aetrain resume", "resumed_from_epoch": 2})
    manifest = read_manifest(tmp_path)
    assert manifest["command_line"] == "aetrain resume"
    assert manifest["earlier_starts"] == [first]
    assert read_manifest(tmp_path / "nowhere") is None


def test_every_run_folder_and_checkpoint_carries_the_manifest(trained_runs, tiny_data_dir):
    folder = trained_runs()
    manifest = read_manifest(folder)
    # a training run also names where its data came from and the backend it trained on
    assert set(manifest) == KEYS | {"data_source", "backend"}
    assert str(tiny_data_dir) in manifest["data_source"] and manifest["backend"] == keras.config.backend()
    assert manifest["seed"] == 42 and manifest["data_dir"] == str(tiny_data_dir)
    assert set(manifest["data_files"]) == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert read_metadata(folder / "checkpoints" / "best.keras")["manifest"] == manifest
