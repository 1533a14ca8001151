"""aetrain.data on tiny IDX files written here, plus one check against the real Debian files."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aetrain import data
from aetrain.data import DataError, idx

from idx_files import write_idx

N_TRAIN, N_TEST = 50, 10


def synthetic_arrays() -> dict[str, np.ndarray]:
    """Image i is filled with pixel value i (train) or 200 + i (test): every image is distinct."""
    train_values = np.arange(N_TRAIN, dtype=np.uint8)
    test_values = 200 + np.arange(N_TEST, dtype=np.uint8)
    return {
        "train_images": np.broadcast_to(train_values[:, None, None], (N_TRAIN, 28, 28)).copy(),
        "train_labels": (train_values % 10).astype(np.uint8),
        "test_images": np.broadcast_to(test_values[:, None, None], (N_TEST, 28, 28)).copy(),
        "test_labels": np.arange(N_TEST, dtype=np.uint8),
    }


def write_dataset(folder: Path, arrays: dict[str, np.ndarray] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in (arrays or synthetic_arrays()).items():
        write_idx(folder / data.FILES[key], array)
    return folder


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """No test reads or writes the user's caches, or finds the machine's real data by accident."""
    monkeypatch.setenv("AETRAIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("AETRAIN_DATA_DIR", raising=False)
    monkeypatch.setattr(idx, "DEBIAN_DIR", tmp_path / "debian")


@pytest.fixture
def dataset_dir(tmp_path) -> Path:
    return write_dataset(tmp_path / "fmnist")


def forbid_reading(monkeypatch) -> None:
    def fail(path):
        raise AssertionError(f"read_idx({path}) called; the cache should have answered")

    monkeypatch.setattr(idx, "read_idx", fail)


# --- read_idx ---------------------------------------------------------------------------------


def test_read_idx_round_trips_a_gzipped_file(tmp_path):
    array = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    result = data.read_idx(write_idx(tmp_path / "x-idx3-ubyte.gz", array))
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, array)


def test_read_idx_accepts_an_uncompressed_file(tmp_path):
    array = np.array([7, 0, 255, 3], dtype=np.uint8)
    result = data.read_idx(write_idx(tmp_path / "labels-idx1-ubyte", array))
    np.testing.assert_array_equal(result, array)


def test_read_idx_rejects_a_wrong_magic_number(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(b"\x12\x34\x08\x01" + struct.pack(">I", 2) + b"\x01\x02"))
    with pytest.raises(DataError, match="magic number") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_names_an_unsupported_type_code(tmp_path):
    path = write_idx(tmp_path / "floats.gz", np.zeros(4, dtype=np.uint8), type_code=0x0D)
    with pytest.raises(DataError, match=r"0x0d \(float\)") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("change", "expected", "actual"), [(-5, 60, 55), (+3, 60, 63)])
def test_read_idx_reports_a_payload_of_the_wrong_size(tmp_path, change, expected, actual):
    content = struct.pack(">HBBIII", 0, 0x08, 3, 3, 4, 5) + bytes(60 + change)
    path = tmp_path / "sized.gz"
    path.write_bytes(gzip.compress(content))
    with pytest.raises(DataError) as info:
        data.read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert f"{expected} bytes" in message
    assert f"holds {actual} bytes" in message


def test_read_idx_reports_a_truncated_gzip_stream(tmp_path):
    path = write_idx(tmp_path / "cut.gz", np.arange(200, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError, match="not a complete gzip file") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_names_a_missing_file(tmp_path):
    path = tmp_path / "absent-idx1-ubyte.gz"
    with pytest.raises(DataError, match="does not exist") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)
    assert "make data" in str(info.value)


# --- load_raw checks --------------------------------------------------------------------------


def test_load_raw_rejects_images_and_labels_that_do_not_pair_up(tmp_path):
    arrays = synthetic_arrays()
    arrays["test_labels"] = arrays["test_labels"][:7]
    folder = write_dataset(tmp_path / "mismatch", arrays)
    with pytest.raises(DataError) as info:
        data.load_raw(folder)
    message = str(info.value)
    assert data.FILES["test_images"] in message and data.FILES["test_labels"] in message
    assert f"{N_TEST} images" in message and "7 labels" in message


def test_load_raw_rejects_images_that_are_not_28x28(tmp_path):
    arrays = synthetic_arrays()
    arrays["train_images"] = np.zeros((N_TRAIN, 27, 28), dtype=np.uint8)
    folder = write_dataset(tmp_path / "small", arrays)
    with pytest.raises(DataError, match="28x28") as info:
        data.load_raw(folder)
    assert data.FILES["train_images"] in str(info.value)


# --- finding the data -------------------------------------------------------------------------


def test_explicit_incomplete_dir_names_the_missing_files(dataset_dir, monkeypatch):
    monkeypatch.setattr(idx, "fetch_with_keras", lambda source: pytest.fail("must not download"))
    (dataset_dir / data.FILES["test_labels"]).unlink()
    (dataset_dir / data.FILES["train_images"]).unlink()
    with pytest.raises(DataError) as info:
        data.find_data_dir(dataset_dir)
    message = str(info.value)
    assert f"data.dir={dataset_dir}" in message
    assert f"missing {data.FILES['train_images']}, {data.FILES['test_labels']}" in message


def test_explicit_dir_that_does_not_exist_is_reported(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        data.find_data_dir(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)


def test_search_order_is_debian_then_keras_cache_and_a_named_folder_alone(tmp_path, monkeypatch):
    env_dir = write_dataset(tmp_path / "env")
    debian_dir = write_dataset(tmp_path / "debian")
    keras_dir = tmp_path / "keras" / "datasets" / "fashion-mnist"

    assert data.candidate_dirs(None) == [debian_dir, keras_dir]
    assert data.find_data_dir() == debian_dir
    monkeypatch.setenv("AETRAIN_DATA_DIR", str(env_dir))
    assert data.candidate_dirs(None) == [env_dir]
    assert data.find_data_dir() == env_dir
    assert data.candidate_dirs(tmp_path / "mine") == [tmp_path / "mine"]


def test_aetrain_data_dir_without_the_files_is_refused_not_skipped(tmp_path, monkeypatch):
    """Issue 10: a source the user named is used or refused; the Debian copy is not used instead."""
    env_dir = write_dataset(tmp_path / "env")
    write_dataset(tmp_path / "debian")
    (env_dir / data.FILES["train_labels"]).unlink()
    monkeypatch.setenv("AETRAIN_DATA_DIR", str(env_dir))
    monkeypatch.setattr(idx, "fetch_with_keras", lambda source: pytest.fail("must not download"))
    with pytest.raises(DataError) as info:
        data.find_data_dir()
    message = str(info.value)
    assert f"$AETRAIN_DATA_DIR={env_dir} is missing {data.FILES['train_labels']}" in message
    assert "never skipped" in message


def test_a_named_folder_may_hold_the_files_in_a_sub_folder_named_after_the_data_set(tmp_path):
    inner = write_dataset(tmp_path / "all-data" / "fashion-mnist")
    assert data.find_data_dir(tmp_path / "all-data") == inner


def test_nothing_found_lists_every_place_looked(tmp_path, monkeypatch):
    keras_dir = tmp_path / "keras" / "datasets" / "fashion-mnist"
    keras_dir.mkdir(parents=True)
    write_idx(keras_dir / data.FILES["train_labels"], np.zeros(3, dtype=np.uint8))

    with pytest.raises(DataError) as info:
        data.find_data_dir(download=False)
    message = str(info.value)
    assert f"{tmp_path / 'debian'} (no such folder)" in message
    still_missing = ", ".join(data.FILES[key] for key in ("train_images", "test_images", "test_labels"))
    assert f"{keras_dir} (missing {still_missing})" in message
    assert "make data" in message and "AETRAIN_DATA_DIR" in message


def test_download_fills_the_keras_cache_when_nothing_else_has_the_data(tmp_path, monkeypatch):
    keras_dir = tmp_path / "keras" / "datasets" / "fashion-mnist"
    monkeypatch.setattr(idx, "fetch_with_keras", lambda source: write_dataset(keras_dir))
    assert data.find_data_dir() == keras_dir


def test_a_failed_download_is_reported_with_the_places_looked(monkeypatch):
    def offline(source):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(idx, "fetch_with_keras", offline)
    with pytest.raises(DataError, match="ConnectionError: no route to host") as info:
        data.find_data_dir()
    assert "make data" in str(info.value)


# --- splits -----------------------------------------------------------------------------------


def test_split_keeps_the_last_val_size_images_for_validation(dataset_dir):
    split = data.load_fashion_mnist(dataset_dir, val_size=8)
    assert split.source == dataset_dir
    assert (len(split.x_train), len(split.x_val), len(split.x_test)) == (42, 8, N_TEST)
    for images in (split.x_train, split.x_val, split.x_test):
        assert images.dtype == np.float32 and images.shape[1:] == (28, 28)
    np.testing.assert_allclose(split.x_train[:, 0, 0], np.arange(42) / 255)
    np.testing.assert_allclose(split.x_val[:, 5, 5], np.arange(42, 50) / 255)
    np.testing.assert_allclose(split.x_test[:, 27, 27], (200 + np.arange(N_TEST)) / 255)
    np.testing.assert_array_equal(split.y_val, np.arange(42, 50) % 10)
    assert np.asarray(split.x_test).max() <= 1.0 and np.asarray(split.x_train).min() >= 0.0


def test_limit_and_test_limit_keep_the_first_images(dataset_dir):
    split = data.load_fashion_mnist(dataset_dir, limit=20, val_size=5, test_limit=3)
    np.testing.assert_allclose(split.x_train[:, 0, 0], np.arange(15) / 255)
    np.testing.assert_allclose(split.x_val[:, 0, 0], np.arange(15, 20) / 255)
    np.testing.assert_array_equal(split.y_test, [0, 1, 2])
    assert len(split.x_test) == 3


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"limit": 1}, "data.limit=1"),
        ({"val_size": 0}, "data.val_size=0"),
        ({"limit": 10, "val_size": 10}, "data.val_size=10"),
        ({"val_size": N_TRAIN}, f"data.val_size={N_TRAIN}"),
        ({"test_limit": 0}, "data.test_limit=0"),
    ],
)
def test_impossible_split_sizes_name_the_config_key(dataset_dir, kwargs, key):
    with pytest.raises(DataError, match=key):
        data.load_fashion_mnist(dataset_dir, **kwargs)


# --- the decoded-array cache ------------------------------------------------------------------


def cache_files(tmp_path) -> list[Path]:
    return sorted((tmp_path / "cache").glob("*.npz"))


def test_second_load_is_answered_from_the_cache(dataset_dir, tmp_path, monkeypatch):
    first = data.load_raw(dataset_dir)
    assert len(cache_files(tmp_path)) == 1
    forbid_reading(monkeypatch)
    second = data.load_raw(dataset_dir)
    for key in data.FILES:
        np.testing.assert_array_equal(second[key], first[key])
        assert second[key].dtype == np.uint8


def test_a_changed_source_invalidates_the_cache(dataset_dir, tmp_path):
    data.load_raw(dataset_dir)
    labels_path = dataset_dir / data.FILES["test_labels"]
    before = labels_path.stat().st_mtime_ns
    write_idx(labels_path, np.full(N_TEST, 9, dtype=np.uint8))
    os.utime(labels_path, ns=(before + 10**9, before + 10**9))

    reloaded = data.load_raw(dataset_dir)
    np.testing.assert_array_equal(reloaded["test_labels"], np.full(N_TEST, 9))
    assert len(cache_files(tmp_path)) == 2


def test_a_corrupt_cache_is_ignored_and_rewritten(dataset_dir, tmp_path, monkeypatch):
    data.load_raw(dataset_dir)
    [cache_file] = cache_files(tmp_path)
    cache_file.write_bytes(b"PK\x03\x04 this is not a zip archive")

    reloaded = data.load_raw(dataset_dir)
    np.testing.assert_array_equal(reloaded["train_labels"], np.arange(N_TRAIN) % 10)
    forbid_reading(monkeypatch)
    np.testing.assert_array_equal(data.load_raw(dataset_dir)["train_labels"], np.arange(50) % 10)
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_a_cache_folder_that_cannot_be_written_is_skipped(dataset_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AETRAIN_CACHE_DIR", str(blocker / "cache"))
    split = data.load_fashion_mnist(dataset_dir, val_size=10)
    assert len(split.x_train) == 40


def test_cache_dir_follows_xdg_when_aetrain_cache_dir_is_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("AETRAIN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "aetrain"


# --- batches -----------------------------------------------------------------------------------


def epoch(dataset, number: int = 0) -> list[np.ndarray]:
    """Epoch ``number``'s inputs, started as fit starts it."""
    dataset.follow_epochs().on_epoch_begin(number)
    return [dataset[index][0] for index in range(len(dataset))]


def test_make_dataset_yields_input_target_pairs_in_batches():
    images = np.arange(10 * 28 * 28, dtype=np.uint8).reshape(10, 28, 28)
    dataset = data.make_dataset(data.ScaledImages.of(images), 4)
    batches = [dataset[index] for index in range(len(dataset))]
    assert [inputs.shape[0] for inputs, _ in batches] == [4, 4, 2]
    for inputs, targets in batches:
        assert inputs.dtype.name == "float32" and inputs.shape[1:] == (28, 28)
        np.testing.assert_array_equal(inputs, targets)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), images / np.float32(255))


def test_scaled_images_read_stored_rows_as_float_only_when_asked(tmp_path):
    stored = np.lib.format.open_memmap(tmp_path / "images.npy", mode="w+", dtype=np.uint8, shape=(6, 2, 2))
    stored[:] = np.arange(6, dtype=np.uint8)[:, None, None] * 50
    split = data.ScaledImages(stored, np.array([5, 0, 3]))
    assert len(split) == 3 and split.shape == (3, 2, 2) and split.nbytes_stored == 12
    np.testing.assert_array_equal(split[[2, 0]][:, 0, 0], np.float32([150, 250]) / 255)
    np.testing.assert_array_equal(np.asarray(split)[:, 0, 0], np.float32([250, 0, 150]) / 255)
    assert split[1].shape == (2, 2) and split.subset(slice(1, None))[0][0, 0] == 0.0


def test_training_batches_reshuffle_every_epoch_and_a_resumed_run_sees_the_same_epochs():
    images = data.ScaledImages.of(np.arange(64, dtype=np.uint8).reshape(64, 1, 1))
    uninterrupted = data.make_training_dataset(images, 16, seed=3)
    epochs = [np.concatenate(epoch(uninterrupted, number)) for number in range(3)]
    for one in epochs:
        np.testing.assert_array_equal(np.sort(one[:, 0, 0] * 255).round(), np.arange(64))
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    resumed = data.make_training_dataset(images, 16, seed=3, first_epoch=2)
    np.testing.assert_array_equal(resumed[0][0], epochs[2][:16])  # before fit names the epoch
    np.testing.assert_array_equal(np.concatenate(epoch(resumed, 2)), epochs[2])
    other_seed = data.make_training_dataset(images, 16, seed=4)
    assert not np.array_equal(np.concatenate(epoch(other_seed)), epochs[0])


def test_training_batches_are_whole_and_the_images_left_over_change_from_epoch_to_epoch():
    images = data.ScaledImages.of(np.arange(70, dtype=np.uint8).reshape(70, 1, 1))
    batches = data.make_training_dataset(images, 16, seed=3)
    seen = [np.concatenate(epoch(batches, number))[:, 0, 0] * 255 for number in range(3)]
    assert [len(one) for one in seen] == [64, 64, 64]
    assert all(len(batch[0]) == 16 for batch in (batches[index] for index in range(len(batches))))
    left_over = [set(range(70)) - set(one.round().astype(int)) for one in seen]
    assert all(len(one) == 6 for one in left_over) and left_over[0] != left_over[1]
    few = data.make_training_dataset(data.ScaledImages.of(np.zeros((10, 1, 1), np.uint8)), 16, seed=3)
    assert len(few) == 1 and len(few[0][0]) == 10


def test_validation_batches_keep_their_order_every_epoch():
    images = data.ScaledImages.of(np.arange(10, dtype=np.uint8).reshape(10, 1, 1))
    dataset = data.make_dataset(images, 4)
    first, second = np.concatenate(epoch(dataset, 0)), np.concatenate(epoch(dataset, 1))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[:, 0, 0], np.arange(10, dtype=np.float32) / 255)


# --- module hygiene and the real files --------------------------------------------------------


def test_importing_the_module_does_not_load_tensorflow_or_keras():
    code = "import sys, aetrain.data; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


REAL_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    any(not (REAL_DIR / name).is_file() for name in data.FILES.values()),
    reason="Debian's dataset-fashion-mnist is not installed (`make data`)",
)
def test_real_files_give_the_books_split_and_load_fast_from_the_cache():
    split = data.load_fashion_mnist(REAL_DIR)
    assert split.x_train.shape == (55000, 28, 28)
    assert split.x_val.shape == (5000, 28, 28)
    assert split.x_test.shape == (10000, 28, 28)
    assert split.x_train.dtype == np.float32
    pixels = np.asarray(split.x_train)
    assert pixels.dtype == np.float32 and pixels.min() == 0.0 and pixels.max() == 1.0
    assert set(np.unique(split.y_test)) == set(range(len(data.data_spec("fashion_mnist").class_names)))

    start = time.perf_counter()
    data.load_raw(REAL_DIR)
    assert time.perf_counter() - start < 1.0
