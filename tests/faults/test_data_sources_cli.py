"""Data sources through the real ``aetrain``: a folder the user named is used or refused (exit 3,
naming it), files are checked against what the data set is, a hostile CIFAR-10 pickle runs nothing;
and real runs on scikit-learn's digits, a folder of Fashion-MNIST PNGs and small CIFAR-10 batches."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from aetrain.data import FILES, data_spec

from cli_runs import AETRAIN, aetrain, environment, plain_text, smoke_args
from data_files import hostile_pickle, write_cifar_folder, write_png_folder
from idx_files import small_fashion_arrays, write_idx


def run_with_env(*args: str, cwd: Path, **env: str) -> tuple[int, str]:
    result = subprocess.run(
        [AETRAIN, *args],
        cwd=cwd,
        env=environment(cwd, without_tensorflow=True, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, plain_text(result.stdout + result.stderr)


def assert_refused_before_tensorflow(code: int, text: str, *words: str) -> None:
    assert code == 3, text
    for word in words:
        assert word in text.replace(" ", "") or word in text, (word, text)
    assert "Traceback" not in text and "forbid importing TensorFlow" not in text


def test_aetrain_data_dir_without_the_files_is_refused_not_skipped(tiny_data_dir, tmp_path):
    """The Debian copy exists on this machine; a named folder without the files must not fall back to it."""
    named = tmp_path / "my-data"
    named.mkdir()
    shutil.copy(tiny_data_dir / FILES["train_images"], named)
    run_dir = tmp_path / "run"
    args = ["trainer=smoke", f"hydra.run.dir={run_dir}", "trainer.progress=false"]
    code, text = run_with_env(*args, cwd=tmp_path, AETRAIN_DATA_DIR=str(named))
    words = [f"$AETRAIN_DATA_DIR={named}", FILES["train_labels"], "never skipped"]
    assert_refused_before_tensorflow(code, text, *words)
    assert not run_dir.exists() or not (run_dir / "checkpoints").exists()


def test_an_empty_aetrain_data_dir_is_refused_for_mnist_too(tmp_path):
    (tmp_path / "nothing").mkdir()
    code, text = run_with_env("data=mnist", cwd=tmp_path, AETRAIN_DATA_DIR=str(tmp_path / "nothing"))
    assert_refused_before_tensorflow(code, text, "$AETRAIN_DATA_DIR=", "MNIST")


def test_train_and_test_files_under_swapped_names_are_refused_with_the_numbers(tmp_path):
    folder = tmp_path / "swapped"
    folder.mkdir()
    for key, count in (("train", 10_000), ("test", 60_000)):
        write_idx(folder / FILES[f"{key}_images"], np.zeros((count, 28, 28), np.uint8))
        write_idx(folder / FILES[f"{key}_labels"], np.zeros(count, np.uint8))
    code, text = aetrain_text(*smoke_args(folder), cwd=tmp_path)
    assert_refused_before_tensorflow(code, text, "swapped", "10,000 images", "60,000", "Rename them back")


def test_a_cifar10_batch_that_runs_a_command_is_refused_and_runs_nothing(tmp_path):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", per_batch=8, test=8)
    marker = tmp_path / "the-command-ran"
    (folder / "data_batch_2").write_bytes(hostile_pickle(f"touch {marker}"))
    code, text = aetrain_text(*smoke_args(folder, "data=cifar10", "data.val_size=4"), cwd=tmp_path)
    assert_refused_before_tensorflow(code, text, str(folder / "data_batch_2"), "system", "refused unread")
    assert not marker.exists()


def aetrain_text(*args: str, cwd: Path) -> tuple[int, str]:
    result = aetrain(*args, cwd=cwd, without_tensorflow=True)
    return result.returncode, plain_text(result.stdout + result.stderr)


# --- real runs ----------------------------------------------------------------------------------


def finished_run(run_dir: Path, result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and (run_dir / "reconstructions.png").is_file()
    return metrics


@pytest.mark.slow
def test_digits_train_offline_and_a_limit_above_what_exists_is_clipped_and_recorded(tmp_path):
    run_dir = tmp_path / "run"
    result = aetrain(
        "trainer=smoke",
        "data=digits",
        "variant=conv",
        "data.limit=100000",
        "trainer.progress=false",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    metrics = finished_run(run_dir, result)
    # smoke validates on a fifth of the images kept for training: round(0.2 * 1437) = 287
    assert metrics["data"]["images"] == {"train": 1437 - 287, "validation": 287, "test": 360}
    assert metrics["data"]["clipped"]["data.limit"] == {"asked": 100000, "used": 1797 - 360}
    # trainer=smoke caps the test set at 1,000 images; the digits have 360
    assert metrics["data"]["clipped"]["data.test_limit"] == {"asked": 1000, "used": 360}
    assert "data.limit=100000 asks for more images than exist" in plain_text(result.stdout + result.stderr)
    with np.load(run_dir / "reconstructions.npz") as saved:
        assert saved["originals"].shape[1:] == (8, 8) and list(saved["class_names"]) == list("0123456789")


@pytest.mark.slow
def test_a_folder_of_real_fashion_mnist_pngs_trains_a_conv_autoencoder(tmp_path):
    arrays = small_fashion_arrays(300, 0)
    names = [name.replace("/", "-") for name in data_spec("fashion_mnist").class_names]
    folder = write_png_folder(tmp_path / "pngs", arrays["train_images"], arrays["train_labels"], names)
    run_dir = tmp_path / "run"
    result = aetrain(
        "trainer=smoke",
        "data=image_folder",
        f"data.dir={folder}",
        "data.val_size=30",
        "data.test_size=30",
        "variant=conv",
        "trainer.progress=false",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    metrics = finished_run(run_dir, result)
    assert metrics["data"]["images"] == {"train": 240, "validation": 30, "test": 30}
    assert metrics["parameters"] == 54_479  # the seed's conv autoencoder, as on Fashion-MNIST itself
    with np.load(run_dir / "reconstructions.npz") as saved:
        assert set(saved["class_names"]) == set(names)


@pytest.mark.slow
def test_cifar10_batches_train_a_colour_conv_vae(tmp_path):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", per_batch=16, test=16)
    run_dir = tmp_path / "run"
    result = aetrain(
        *smoke_args(folder, "data=cifar10", "data.limit=null", "data.val_size=16", "variant=conv_vae"),
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    metrics = finished_run(run_dir, result)
    assert metrics["data"]["images"] == {"train": 64, "validation": 16, "test": 16}
    with np.load(run_dir / "reconstructions.npz") as saved:
        assert saved["reconstructions"].shape[1:] == (32, 32, 3)
