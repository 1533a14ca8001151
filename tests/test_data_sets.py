"""The data-set specs and their readers on small files in each original format (MNIST IDX and
Keras's mnist.npz, CIFAR-10 python batches, a folder of PNGs), scikit-learn's digits, and the models
and pictures built from every spec."""

from __future__ import annotations

import hashlib
import pickle
import pickletools

import numpy as np
import pytest

from aetrain.config import DataConfig, DigitsData, ImageFolderData
from aetrain.config.registry import names
from aetrain.data import DataError, cifar_pickle, data_spec, idx, load_data, spec_for
from aetrain.data.splits import load_fashion_mnist

from data_files import cifar_batch, hostile_pickle, write_cifar_folder, write_png_folder
from idx_files import write_idx


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """No test reads the user's caches or finds the machine's real data by accident."""
    monkeypatch.setenv("AETRAIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("AETRAIN_DATA_DIR", raising=False)
    monkeypatch.setattr(idx, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setattr(idx, "fetch_with_keras", lambda source: pytest.fail("must not download"))
    monkeypatch.setattr(cifar_pickle, "fetch_with_keras", lambda: pytest.fail("must not download"))


def idx_arrays(n_train: int, n_test: int, shape=(28, 28)) -> dict[str, np.ndarray]:
    return {
        "train_images": np.full((n_train, *shape), 7, np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": np.full((n_test, *shape), 9, np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }


def write_idx_folder(folder, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        write_idx(folder / idx.FILES[key], array)
    return folder


# --- the specs --------------------------------------------------------------------------------


def test_every_spec_describes_its_shape_classes_and_splits():
    assert data_spec("fashion_mnist").image_shape == (28, 28)
    assert data_spec("fashion_mnist").class_names[0] == "T-shirt/top"
    assert (data_spec("mnist").train_images, data_spec("mnist").test_images) == (60_000, 10_000)
    assert data_spec("cifar10").image_shape == (32, 32, 3) and data_spec("cifar10").pixels == 3072
    assert data_spec("digits").image_shape == (8, 8) and not data_spec("digits").has_test_split
    for name in names("data"):
        spec = data_spec(name)
        assert spec.name == name and spec.where and spec.channels in (1, 3)


def test_an_image_folder_spec_takes_its_shape_from_the_config():
    spec = spec_for(ImageFolderData(dir="x", image_size=[30, 45], channels=3))
    assert spec.image_shape == (30, 45, 3) and spec.pixels == 30 * 45 * 3


# --- MNIST: the IDX reader, and Keras's mnist.npz ---------------------------------------------------


def test_mnist_reads_idx_files_from_its_sub_folder_of_aetrain_data_dir(tmp_path, monkeypatch):
    write_idx_folder(tmp_path / "data" / "mnist", idx_arrays(30, 10))
    monkeypatch.setenv("AETRAIN_DATA_DIR", str(tmp_path / "data"))
    split = load_data(DataConfig(name="mnist", val_size=5))
    assert split.counts() == {"train": 25, "validation": 5, "test": 10}
    assert split.class_names == tuple("0123456789") and split.source == tmp_path / "data" / "mnist"
    assert np.asarray(split.x_train).max() == pytest.approx(7 / 255)


def test_mnist_reads_keras_npz_from_the_keras_cache(tmp_path):
    arrays = idx_arrays(30, 10)
    cache = tmp_path / "keras" / "datasets"
    cache.mkdir(parents=True)
    np.savez(
        cache / "mnist.npz",
        x_train=arrays["train_images"],
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
        y_test=arrays["test_labels"],
    )
    split = load_data(DataConfig(name="mnist", val_size=5))
    assert split.source == cache / "mnist.npz" and split.counts()["test"] == 10


def test_mnist_without_a_source_tries_keras_and_names_the_places(tmp_path, monkeypatch):
    tried = []
    monkeypatch.setattr(idx, "fetch_with_keras", lambda source: tried.append(source.title))
    with pytest.raises(DataError, match="MNIST was not found") as info:
        load_data(DataConfig(name="mnist"))
    assert tried == ["MNIST"] and str(tmp_path / "keras" / "datasets" / "mnist.npz") in str(info.value)


def test_files_holding_more_images_than_the_role_has_are_refused(tmp_path):
    folder = write_idx_folder(tmp_path / "d", idx_arrays(30, 10_001))
    with pytest.raises(DataError, match="holds 10,001 images, but Fashion-MNIST's test set has 10,000"):
        load_fashion_mnist(folder)


def test_train_and_test_files_under_each_others_names_are_refused_with_the_numbers(tmp_path):
    folder = write_idx_folder(tmp_path / "d", idx_arrays(10_000, 60_000, shape=(28, 28)))
    with pytest.raises(DataError, match="swapped") as info:
        load_fashion_mnist(folder)
    assert "holds 10,000 images" in str(info.value) and "holds 60,000" in str(info.value)


def test_another_data_sets_original_file_under_the_same_name_is_recognised(tmp_path, monkeypatch):
    folder = write_idx_folder(tmp_path / "d", idx_arrays(30, 10))
    digest = hashlib.md5((folder / idx.FILES["train_images"]).read_bytes()).hexdigest()
    other = idx.IdxSource(title="MNIST", folder_name="mnist", known_md5={"train_images": digest})
    monkeypatch.setattr(idx, "IDX_SOURCES", (idx.FASHION_MNIST_FILES, other))
    with pytest.raises(DataError, match="is MNIST's original train images file, not Fashion-MNIST's"):
        load_fashion_mnist(folder)


DEBIAN_DIR = idx.DEBIAN_DIR  # the real one: the tests here see an empty one in its place
DEBIAN_FILES_THERE = all((DEBIAN_DIR / name).is_file() for name in idx.FILES.values())


@pytest.mark.skipif(not DEBIAN_FILES_THERE, reason="needs Debian's dataset-fashion-mnist (make data)")
def test_debians_fashion_mnist_read_as_mnist_is_refused_whole_or_trimmed(tmp_path, monkeypatch):
    """Debian recompressed its files (no upstream MD5 matches): what they decode to is checked."""
    monkeypatch.setenv("AETRAIN_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="holds Fashion-MNIST's train images, not MNIST's"):
        load_data(DataConfig(name="mnist", dir=str(DEBIAN_DIR)))
    raw = {key: idx.read_idx(DEBIAN_DIR / name) for key, name in idx.FILES.items()}
    trimmed = write_idx_folder(tmp_path / "trimmed", {key: array[:40] for key, array in raw.items()})
    with pytest.raises(DataError, match="its first image is Fashion-MNIST's") as refused:
        load_data(DataConfig(name="mnist", dir=str(trimmed), val_size=5))
    assert "data=fashion_mnist" in str(refused.value)
    assert load_data(DataConfig(name="fashion_mnist", dir=str(trimmed), val_size=5)).x_train.shape[0] == 35


def test_full_label_files_with_mnists_class_counts_are_refused_as_fashion_mnist():
    counts = idx.MNIST_FILES.class_counts
    arrays = idx_arrays(0, 0)
    for key in counts:
        arrays[key] = np.repeat(np.arange(10, dtype=np.uint8), counts[key])
    paths = {key: idx.DEBIAN_DIR / name for key, name in idx.FILES.items()}
    with pytest.raises(DataError, match="its class counts are MNIST's"):
        idx.check_content(arrays, paths, idx.FASHION_MNIST_FILES)
    idx.check_content(arrays, paths, idx.MNIST_FILES)  # MNIST's own counts pass as MNIST
    uniform = {key: np.repeat(np.arange(10, dtype=np.uint8), sum(counts[key]) // 10) for key in counts}
    with pytest.raises(DataError, match="its class counts are Fashion-MNIST's"):
        idx.check_content({**arrays, **uniform}, paths, idx.MNIST_FILES)


def test_labels_outside_the_classes_are_refused(tmp_path):
    arrays = idx_arrays(30, 10)
    arrays["test_labels"][3] = 10
    folder = write_idx_folder(tmp_path / "d", arrays)
    with pytest.raises(DataError, match="holds the label 10, but Fashion-MNIST has 10 classes"):
        load_fashion_mnist(folder)


def test_limits_above_what_exists_are_clipped_and_said(tmp_path):
    folder = write_idx_folder(tmp_path / "d", idx_arrays(30, 10))
    split = load_fashion_mnist(folder, limit=100_000, val_size=5, test_limit=50)
    assert split.counts() == {"train": 25, "validation": 5, "test": 10}
    assert split.clipped == {
        "data.limit": {"asked": 100_000, "used": 30},
        "data.test_limit": {"asked": 50, "used": 10},
    }
    assert split.clipped_notes()[0] == "data.limit=100000 asks for more images than exist; all 30 are used"


# --- CIFAR-10 -----------------------------------------------------------------------------------


def test_cifar10_batches_are_read_channel_last(tmp_path):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", per_batch=4, test=6)
    split = load_data(DataConfig(name="cifar10", dir=str(tmp_path), val_size=5))
    assert split.x_train.shape == (15, 32, 32, 3) and split.x_test.shape == (6, 32, 32, 3)
    first = cifar_batch(4, "train", 1, seed=1)
    row = first[b"data"][0]
    expected = row.reshape(3, 32, 32).transpose(1, 2, 0) / 255
    np.testing.assert_allclose(split.x_train[0], expected, rtol=1e-6)
    assert split.y_train[0] == first[b"labels"][0] and split.source == folder
    assert split.class_names[0] == "airplane"


def test_the_unpickler_admits_numpy_1_pickles_of_the_original_files(tmp_path):
    """The originals name numpy.core.multiarray._reconstruct (NumPy 1); NumPy 2 writes numpy._core."""
    written = pickle.dumps(cifar_batch(3, "train"), protocol=2)
    as_numpy_1 = written.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert as_numpy_1 != written
    path = tmp_path / "data_batch_1"
    path.write_bytes(as_numpy_1)
    assert cifar_pickle.load_batch(path)[b"data"].shape == (3, 3072)
    globals_named = {arg for op, arg, _ in pickletools.genops(as_numpy_1) if op.name == "GLOBAL"}
    assert {tuple(name.split(" ")) for name in globals_named} <= set(cifar_pickle.ALLOWED_GLOBALS)


@pytest.mark.parametrize("command", ["touch {marker}", "echo hacked > {marker}"])
def test_a_pickle_that_runs_a_command_is_refused_unrun(tmp_path, command):
    marker = tmp_path / "marker"
    path = tmp_path / "data_batch_1"
    path.write_bytes(hostile_pickle(command.format(marker=marker)))
    with pytest.raises(DataError, match=r"asks to call (posix|os|nt)\.system") as info:
        cifar_pickle.load_batch(path)
    assert not marker.exists()
    assert "refused unread" in str(info.value) and str(path) in str(info.value)


def test_builtins_and_other_callables_are_refused_too(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(b"cbuiltins\neval\n(Vprint(1)\ntR.")
    with pytest.raises(DataError, match=r"asks to call builtins\.eval"):
        cifar_pickle.load_batch(path)


def test_a_test_batch_under_a_training_name_is_refused(tmp_path):
    folder = write_cifar_folder(tmp_path / "c", per_batch=4, test=6)
    (folder / "data_batch_3").write_bytes(pickle.dumps(cifar_batch(4, "test"), protocol=2))
    with pytest.raises(DataError, match="says it is a test batch"):
        load_data(DataConfig(name="cifar10", dir=str(folder), val_size=5))


@pytest.mark.parametrize("label", [1.5, "3", True, 2**70, -1, 10], ids=repr)
def test_a_cifar10_label_that_is_not_an_int_from_0_to_9_is_refused_naming_it(tmp_path, label):
    folder = write_cifar_folder(tmp_path / "c", per_batch=4, test=6)
    batch = cifar_batch(4, "train", 2, seed=2)
    batch[b"labels"][1] = label
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError) as refused:
        load_data(DataConfig(name="cifar10", dir=str(folder), val_size=5))
    message = str(refused.value)
    assert "data_batch_2: label 1 is" in message and repr(label) in message and "0 to 9" in message


def test_cifar10_in_a_named_folder_without_the_batches_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"data.dir=.*empty is missing data_batch_1"):
        load_data(DataConfig(name="cifar10", dir=str(tmp_path / "empty")))


def test_a_truncated_batch_is_named(tmp_path):
    folder = write_cifar_folder(tmp_path / "c", per_batch=4, test=6)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:500])
    with pytest.raises(DataError, match="not a readable CIFAR-10 batch"):
        load_data(DataConfig(name="cifar10", dir=str(folder), val_size=5))


# --- digits, image folders ----------------------------------------------------------------------


def test_digits_are_split_seeded_and_scaled_from_0_16():
    split = load_data(DigitsData())
    assert split.counts() == {"train": 1797 - 360 - 180, "validation": 180, "test": 360}
    pixels = np.asarray(split.x_train)
    assert pixels.max() == 1.0 and pixels.min() == 0.0
    again = load_data(DigitsData())
    np.testing.assert_array_equal(split.y_test, again.y_test)
    other = load_data(DigitsData(split_seed=1))
    assert not np.array_equal(split.y_test, other.y_test)


def test_split_sizes_below_one_are_fractions():
    """test_size of the whole pool; val_size of what is left for training (1797 - 359 = 1438)."""
    split = load_data(DigitsData(val_size=0.1, test_size=0.2))
    assert split.counts() == {"train": 1438 - 144, "validation": 144, "test": 359}
    limited = load_data(DigitsData(val_size=0.25, test_size=0.2, limit=100))
    assert limited.counts() == {"train": 75, "validation": 25, "test": 359}


def test_a_val_size_fraction_counts_the_training_images_kept(tiny_data_dir):
    split = load_fashion_mnist(tiny_data_dir, limit=40, val_size=0.25)
    assert (len(split.x_train), len(split.x_val)) == (30, 10)


@pytest.mark.parametrize("images", [12, 40, 200])
def test_trainer_smoke_fits_an_image_folder_of_any_size(tmp_path, images):
    """smoke's validation set was 128 images: a folder under ~140 was refused."""
    from aetrain.config import validate

    from conftest import compose_config

    pixels = np.random.default_rng(0).integers(0, 255, (images, 8, 8), dtype=np.uint8)
    folder = write_png_folder(tmp_path / "p", pixels, np.zeros(images), ["a"])
    cfg = validate(compose_config("trainer=smoke", "data=image_folder", f"data.dir={folder}"))
    counts = load_data(cfg.data).counts()
    assert sum(counts.values()) == images and min(counts.values()) >= 1
    assert counts["validation"] == round(0.2 * (images - counts["test"]))


def test_an_image_folder_with_class_sub_folders(tmp_path):
    images = np.stack([np.full((20, 12), 10 * i, np.uint8) for i in range(12)])
    write_png_folder(tmp_path / "photos", images, np.arange(12) % 3, ["cats", "dogs", "owls"])
    cfg = ImageFolderData(
        dir=str(tmp_path / "photos"), image_size=[10, 6], channels=3, val_size=2, test_size=3
    )
    split = load_data(cfg)
    assert split.class_names == ("cats", "dogs", "owls")
    assert split.x_train.shape == (7, 10, 6, 3) and split.counts()["test"] == 3
    pixel_values = sorted(
        {round(float(x[0, 0, 0]) * 255) for x in (*split.x_train, *split.x_val, *split.x_test)}
    )
    assert pixel_values == [10 * i for i in range(12)]


def test_an_unreadable_image_is_named_not_skipped(tmp_path):
    folder = write_png_folder(tmp_path / "p", np.zeros((4, 8, 8), np.uint8), np.zeros(4), ["a"])
    (folder / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken.png cannot be read as an image"):
        load_data(ImageFolderData(dir=str(folder), val_size=1, test_size=1))


@pytest.mark.parametrize("channels", [1, 3])
def test_a_16_bit_png_reads_as_its_8_bit_twin_not_white(tmp_path, channels):
    from PIL import Image

    from aetrain.data.image_folder import read_image

    ramp = np.linspace(0, 65535, 8 * 8).reshape(8, 8).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "wide.png")
    Image.fromarray(np.round(ramp / 257).astype(np.uint8)).save(tmp_path / "narrow.png")
    assert Image.open(tmp_path / "wide.png").mode.startswith("I")  # Pillow keeps the 16 bits
    wide, narrow = (read_image(tmp_path / name, 8, 8, channels) for name in ("wide.png", "narrow.png"))
    assert 100 < wide.mean() < 155  # a ramp, not every pixel 255
    np.testing.assert_allclose(wide.astype(int), narrow.astype(int), atol=1)


def test_a_dangling_symlink_in_an_image_folder_is_named_not_skipped(tmp_path):
    folder = write_png_folder(tmp_path / "p", np.zeros((4, 8, 8), np.uint8), np.zeros(4), ["a"])
    (folder / "a" / "gone.png").symlink_to(tmp_path / "elsewhere" / "gone.png")
    with pytest.raises(DataError, match=r"gone.png is named as an image but is no file \(a symlink to"):
        load_data(ImageFolderData(dir=str(folder), val_size=1, test_size=1))


def test_loose_images_beside_class_folders_are_refused(tmp_path):
    folder = write_png_folder(tmp_path / "p", np.zeros((4, 8, 8), np.uint8), np.zeros(4), ["a"])
    write_png_folder(tmp_path / "p", np.zeros((1, 8, 8), np.uint8), np.zeros(1), ["."])
    with pytest.raises(DataError, match="which class is that"):
        load_data(ImageFolderData(dir=str(folder), val_size=1, test_size=1))


def test_too_few_images_for_the_split_are_refused_with_the_numbers(tmp_path):
    folder = write_png_folder(tmp_path / "p", np.zeros((4, 8, 8), np.uint8), np.zeros(4), ["a"])
    with pytest.raises(DataError, match="holds 4 images, too few"):
        load_data(ImageFolderData(dir=str(folder), val_size=2, test_size=2))


# --- models and pictures for any spec -------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "stages", "paddings", "crop"),
    [
        (28, 28, 3, ["valid", "same", "same"], (0, 0)),  # the seed's 3 -> 7 -> 14 -> 28
        (32, 32, 3, ["same", "same", "same"], (0, 0)),
        (8, 8, 3, ["same", "same", "same"], (0, 0)),
        (30, 45, 3, ["valid", "valid", "same"], (0, 1)),  # 45 -> 22 -> 11 -> 5; 5 -> 11 -> 23 -> 46
    ],
)
def test_the_conv_decoder_retraces_the_encoders_grids(height, width, stages, paddings, crop):
    from aetrain.models.conv import decoder_paddings, encoder_grids

    assert decoder_paddings(encoder_grids(height, width, stages)) == (paddings, crop)


@pytest.mark.parametrize(
    "overrides",
    [
        ["data=cifar10", "variant=conv"],
        ["data=digits", "variant=conv_vae"],
        ["data=image_folder", "data.dir=x", "data.image_size=[30,45]", "data.channels=3", "variant=conv"],
        ["data=image_folder", "data.dir=x", "data.image_size=[12,20]", "variant=vae"],
    ],
    ids=["cifar10-conv", "digits-conv_vae", "rgb-30x45-conv", "grey-12x20-vae"],
)
def test_every_variant_builds_for_the_specs_shape(overrides):
    from aetrain.config import validate
    from aetrain.models.build import build_model

    from conftest import compose_config

    cfg = validate(compose_config(*overrides))
    model = build_model(cfg)
    shape = spec_for(cfg.data).image_shape
    assert model.input_shape[1:] == shape and model.output_shape[1:] == shape
    assert model.predict(np.zeros((2, *shape), np.float32), verbose=0).shape == (2, *shape)


def test_colour_pictures_are_drawn_in_colour(tmp_path):
    from aetrain.analysis.pictures import manifold_grid, reconstruction_grid, show_image

    red = np.zeros((2, 6, 6, 3), np.float32)
    red[..., 0] = 1.0
    reconstruction_grid([("original", red)], ["a", "b"], tmp_path / "grid.png")
    manifold_grid(np.concatenate([red, red]), np.array([-1.0, 1.0]), tmp_path / "manifold.png", "m")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    show_image(axis, red[0])
    drawn = axis.get_images()[0].get_array()
    assert drawn.shape == (6, 6, 3) and drawn[0, 0, 0] == 1.0 and drawn[0, 0, 1] == 0.0
    plt.close(figure)
    assert (tmp_path / "grid.png").stat().st_size > 0 and (tmp_path / "manifold.png").stat().st_size > 0


def test_a_mosaic_tiles_images_row_by_row_on_white_paper():
    from aetrain.analysis.pictures import mosaic

    grey = [[np.full((2, 3), 0.5), np.full((2, 3), 1.0)], [np.full((2, 3, 1), 0.25)]]
    paper = mosaic(grey, gap=1)
    assert paper.shape == (2 * 2 + 1, 2 * 3 + 1)
    assert (paper[:2, :3] == 0.5).all() and (paper[:2, 4:] == 1.0).all() and (paper[3:, :3] == 0.25).all()
    assert (paper[2] == 0).all() and (paper[:, 3] == 0).all() and (paper[3:, 4:] == 0).all()  # no ink
    colour = mosaic([[np.zeros((2, 2, 3)), np.zeros((2, 2, 3))]], gap=1)
    assert colour.shape == (2, 5, 3) and (colour[:, 2] == 1.0).all() and (colour[:, :2] == 0).all()
