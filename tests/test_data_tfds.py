"""data=tfds: a tiny TFDS data set this module prepares with TFDS's builder API, read offline by name
(the builder's class is never registered: aetrain reads the prepared files alone, as it reads a
user's), decoded once into aetrain's cache, trained on by the real command, and refused (exit 3)
where it cannot be read."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from aetrain.config.data_settings import TfdsData
from aetrain.config.data_spec import spec_for
from aetrain.data import npy_cache
from aetrain.data import tfds as tfds_reader
from aetrain.data.raw import DataError
from aetrain.data.splits import load_data

from cli_runs import aetrain, plain_text

tfds = pytest.importorskip("tensorflow_datasets")

NAME = "aetrain_test_shapes"
CLASSES = ("red", "green", "blue")
COLOURS = np.array([(200, 30, 10), (20, 180, 40), (10, 20, 230)], dtype=np.uint8)  # one per class
GREYS = (40, 120, 220)  # the "mask" feature's value per class
TRAIN, TEST = 40, 12


class AetrainTestShapes(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Solid 12x10 images, their colour and grey level set by the class: what any conversion of them
    should give is known by hand."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(12, 10, 3)),
                    "mask": tfds.features.Image(shape=(12, 10, 1)),
                    "label": tfds.features.ClassLabel(names=list(CLASSES)),
                    "id": tfds.features.Scalar(dtype=np.int64),
                    "meta": {"flag": tfds.features.Scalar(dtype=np.bool_)},
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(TRAIN, 0),
            "test": self._generate_examples(TEST, TRAIN),
            "unlabelled": self._generate_examples(4, TRAIN + TEST, labelled=False),
        }

    def _generate_examples(self, count, first, labelled=True):
        for index in range(first, first + count):
            label = index % 3 if labelled else -1  # TFDS's mark of an unlabelled example
            yield (
                index,
                {
                    "image": np.broadcast_to(COLOURS[label % 3], (12, 10, 3)).copy(),
                    "mask": np.full((12, 10, 1), GREYS[label % 3], dtype=np.uint8),
                    "label": label,
                    "id": index,
                    "meta": {"flag": label == 0},
                },
            )


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A TFDS folder with the data set prepared in it (aetrain_test_shapes/1.0.0/...)."""
    folder = tmp_path_factory.mktemp("tensorflow_datasets")
    AetrainTestShapes(data_dir=str(folder)).download_and_prepare()
    return folder


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AETRAIN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def read(tfds_dir, **settings):
    data_cfg = TfdsData(dataset=NAME, dir=str(tfds_dir), **settings)
    return tfds_reader.read_tfds(data_cfg, spec_for(data_cfg), False)


# --- reading, converting, caching -------------------------------------------------------------------


def test_the_reader_gives_uint8_images_their_labels_and_the_class_names(tfds_dir):
    raw = read(tfds_dir, image_size=[12, 10], channels=3)
    assert raw.train_images.dtype == np.uint8 and raw.train_images.shape == (TRAIN, 12, 10, 3)
    assert raw.test_images.shape == (TEST, 12, 10, 3) and raw.max_value == 255
    assert sorted(np.bincount(raw.train_labels)) == [13, 13, 14]
    assert raw.class_names == CLASSES
    assert np.array_equal(
        raw.train_images, np.broadcast_to(COLOURS[raw.train_labels][:, None, None], (TRAIN, 12, 10, 3))
    )
    assert raw.source == tfds_dir / NAME / "1.0.0" / "dataset_info.json"


def test_image_size_and_channels_resize_and_convert(tfds_dir):
    grey = read(tfds_dir, image_size=[6, 5], channels=1)
    assert grey.train_images.shape == (TRAIN, 6, 5)
    by_hand = np.round(COLOURS.astype(float) @ [0.2989, 0.5870, 0.1140])  # ITU-R 601, as Pillow's "L"
    assert np.abs(grey.train_images - by_hand[grey.train_labels][:, None, None]).max() <= 1
    colour = read(tfds_dir, image_key="mask", image_size=[24, 20], channels=3)
    assert colour.train_images.shape == (TRAIN, 24, 20, 3)
    assert np.array_equal(colour.train_images[..., 0], colour.train_images[..., 2])
    assert np.array_equal(colour.train_images[:, 0, 0, 1], np.array(GREYS)[colour.train_labels])


def test_a_bool_feature_or_no_labels_at_all(tfds_dir):
    flags = read(tfds_dir, label_key="meta/flag")
    assert flags.class_names == ("not flag", "flag") and set(flags.train_labels) == {0, 1}
    unlabelled = read(tfds_dir, label_key=None, split_test=None)
    assert unlabelled.class_names == (NAME,) and not unlabelled.train_labels.any()
    assert unlabelled.test_images is None  # drawn from the training split by aetrain.data.splits


def test_the_second_read_maps_the_cache_and_a_smaller_limit_shares_it(tfds_dir, monkeypatch):
    first = read(tfds_dir, image_size=[6, 5])

    def no_decoding(*_):
        raise AssertionError("decoded again")

    monkeypatch.setattr(tfds_reader, "_converted_batches", no_decoding)
    again = read(tfds_dir, image_size=[6, 5])
    assert isinstance(again.train_images, np.memmap) and np.array_equal(
        again.train_images, first.train_images
    )
    kept = read(tfds_dir, image_size=[6, 5], limit=10)
    assert np.array_equal(kept.train_images, first.train_images[:10])


def test_the_cache_is_rebuilt_when_more_images_are_asked_or_the_files_change(tfds_dir, monkeypatch):
    decoded = []  # the number of images each decoding asked for
    real = tfds_reader._converted_batches
    monkeypatch.setattr(tfds_reader, "_converted_batches", lambda *a: decoded.append(a[3]) or real(*a))
    read(tfds_dir, limit=10)
    read(tfds_dir, limit=10)
    read(tfds_dir, limit=5)
    assert decoded == [10, TEST]  # data.limit decodes only the images kept; a smaller one maps them
    read(tfds_dir, limit=20)
    assert decoded == [10, TEST, 20]
    read(tfds_dir, limit=10, split_test=None)  # a drawn test set needs the whole training split
    assert decoded == [10, TEST, 20, TRAIN]
    info = tfds_dir / NAME / "1.0.0" / "dataset_info.json"
    os.utime(info, ns=(info.stat().st_atime_ns, info.stat().st_mtime_ns + 10**9))  # prepared again
    read(tfds_dir, limit=10)
    assert decoded == [10, TEST, 20, TRAIN, 10, TEST]


def test_a_damaged_cache_is_rebuilt_never_used(tfds_dir, cache, caplog):
    caplog.set_level(logging.INFO, logger="aetrain")
    first = np.array(read(tfds_dir, image_size=[6, 5]).train_images)  # a copy: the cache is damaged next
    for images in cache.glob("tfds/*/images-*.npy"):
        images.write_bytes(images.read_bytes()[:200])  # cut short
    assert np.array_equal(read(tfds_dir, image_size=[6, 5]).train_images, first)
    assert "the cache is damaged" in caplog.text


@pytest.mark.parametrize("full_at", [1, 3], ids=["the images", "the index"])
def test_a_cache_that_cannot_be_written_leaves_nothing_behind_and_still_gives_the_images(
    tfds_dir, cache, monkeypatch, caplog, full_at
):
    synced = []
    real = npy_cache._synced

    def disk_full(handle):
        synced.append(handle)
        if len(synced) >= full_at:  # full from then on
            raise OSError(28, "No space left on device")
        real(handle)

    monkeypatch.setattr(npy_cache, "_synced", disk_full)
    raw = read(tfds_dir, image_size=[6, 5])
    assert raw.train_images.shape == (TRAIN, 6, 5) and not isinstance(raw.train_images, np.memmap)
    assert "No space left" in caplog.text
    assert [p.name for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")] == []


def test_a_cache_folder_that_is_a_file_falls_back_to_memory(tfds_dir, tmp_path, monkeypatch, caplog):
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("AETRAIN_CACHE_DIR", str(tmp_path / "not-a-folder"))
    assert read(tfds_dir).train_images.shape == (TRAIN, 28, 28)
    assert "cannot be used" in caplog.text


def test_load_data_splits_a_tfds_set_like_any_other(tfds_dir):
    own_test = load_data(TfdsData(dataset=NAME, dir=str(tfds_dir), limit=30, val_size=5))
    assert own_test.counts() == {"train": 25, "validation": 5, "test": TEST}
    assert own_test.class_names == CLASSES and own_test.x_train.dtype == np.float32
    drawn = load_data(TfdsData(dataset=NAME, dir=str(tfds_dir), split_test=None, test_size=8, val_size=4))
    assert drawn.counts() == {"train": TRAIN - 12, "validation": 4, "test": 8}


# --- the real command ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tiny_run_trains_on_a_tfds_set_in_a_process_that_never_saw_its_builder(tfds_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = aetrain(
        "data=tfds",
        f"data.dataset={NAME}",
        f"data.dir={tfds_dir}",
        "data.image_size=[12,10]",
        "data.channels=3",
        "trainer=smoke",
        "trainer.progress=false",
        "trainer.run_eagerly=true",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        own_process=True,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["data"]["name"] == "tfds"
    assert metrics["data"]["images"] == {"train": 32, "validation": 8, "test": TEST}
    assert list((tmp_path / "cache" / "tfds").glob("*/index.json"))
    assert "Keras is already loaded" not in (run_dir / "aetrain.log").read_text()  # backend chosen freely


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ([f"data.dataset={NAME}x"], ["knows no such data set", f"Did you mean {NAME}", f"{NAME}:1.0.0"]),
        (
            ["data.dataset=mnist"],
            ["mnist/3.0.1 is not prepared in", "tfds build mnist --data_dir", "offline"],
        ),
        ([f"data.dataset={NAME}", "data.dir=MISSING"], ["does not exist", f"tfds build {NAME}"]),
        ([f"data.dataset={NAME}", "data.image_key=img"], ["'img' is not a feature", "image (Image", "mask"]),
        (
            [f"data.dataset={NAME}", "data.label_key=id"],
            ["neither a ClassLabel", "label or meta/flag or null"],
        ),
        ([f"data.dataset={NAME}", "data.split_train=trian"], ["'trian' is not a split", "train (40 images)"]),
        ([f"data.dataset={NAME}", "data.split_train=unlabelled"], ["from -1 to -1, outside its 3 classes"]),
    ],
)
def test_bad_tfds_input_exits_3_naming_the_problem(tfds_dir, tmp_path, overrides, said):
    overrides = [o.replace("MISSING", str(tmp_path / "nowhere")) for o in overrides]
    if not any(o.startswith("data.dir=") for o in overrides):
        overrides.append(f"data.dir={tfds_dir}")
    result = aetrain(
        "data=tfds", "trainer=smoke", *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    output = plain_text(result.stdout + result.stderr)
    assert result.returncode == 3, output
    for words in said:
        assert words in output
    assert "Traceback" not in output


def test_damaged_prepared_files_are_refused_with_how_to_prepare_them_again(tfds_dir, tmp_path):
    copy = tmp_path / "tensorflow_datasets"
    shutil.copytree(tfds_dir, copy)
    (records,) = (copy / NAME / "1.0.0").glob("*-train.tfrecord-*")
    records.write_bytes(records.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"damaged|incomplete") as refused:
        read(copy)
    assert f"Delete {copy / NAME / '1.0.0'}" in str(refused.value) and "download_and_prepare()" in str(
        refused.value
    )


def test_a_name_that_is_no_tfds_name_is_a_config_error(tmp_path):
    result = aetrain("data=tfds", "data.dataset='celeb a'", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2 and "data.dataset" in result.stdout


def test_without_tensorflow_datasets_the_reader_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(DataError, match=r"aetrain\[tfds\]"):
        read("anywhere")


def test_importing_aetrain_data_imports_no_tensorflow_datasets():
    code = "import sys, aetrain.data.specs; print('tensorflow_datasets' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )
