"""One spec per data set: its shape, classes, split sizes and reader. Every other module reads these.

Each data set is declared once here (``declare("data", NAME, Schema, build=DataSpec(...))``): the
schema of conf/data/NAME.yaml (the settings a user may change, aetrain.config.data_settings) beside
its spec (aetrain.config.data_spec). A model is built from ``spec_for`` of the run's data config,
which needs no files: the shape of a folder of one's own images comes from ``data.image_size`` and
``data.channels``; only its class names wait for the folder to be read. A data set from outside
aetrain is declared the same way in a module its YAML names under ``_declared_in_``.
"""

from __future__ import annotations

from aetrain.config.data_settings import DataConfig, DigitsData, ImageFolderData, TfdsData
from aetrain.config.data_spec import DataSpec
from aetrain.config.registry import declare
from aetrain.data.cifar_pickle import read_cifar10
from aetrain.data.digits import read_digits
from aetrain.data.idx import FASHION_MNIST_FILES, MNIST_FILES, idx_reader
from aetrain.data.image_folder import read_image_folder
from aetrain.data.tfds import read_tfds

DIGIT_NAMES = tuple(str(digit) for digit in range(10))

declare(
    "data",
    "fashion_mnist",
    DataConfig,
    build=DataSpec(
        title="Fashion-MNIST",
        height=28,
        width=28,
        channels=1,
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        train_images=60_000,
        test_images=10_000,
        read=idx_reader(FASHION_MNIST_FILES),
        where="data.dir, else $AETRAIN_DATA_DIR, else /usr/share/datasets/fashion-mnist, the Keras "
        "cache, a Keras download",
    ),
)

declare(
    "data",
    "mnist",
    DataConfig,
    build=DataSpec(
        title="MNIST",
        height=28,
        width=28,
        channels=1,
        class_names=DIGIT_NAMES,
        train_images=60_000,
        test_images=10_000,
        read=idx_reader(MNIST_FILES),
        where="data.dir, else $AETRAIN_DATA_DIR, else the Keras cache (mnist.npz), a Keras download",
    ),
)

declare(
    "data",
    "cifar10",
    DataConfig,
    build=DataSpec(
        title="CIFAR-10",
        height=32,
        width=32,
        channels=3,
        class_names=(
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
        train_images=50_000,
        test_images=10_000,
        read=read_cifar10,
        where="data.dir, else $AETRAIN_DATA_DIR, else the Keras cache, a Keras download "
        "(cifar-10-batches-py/)",
    ),
)

declare(
    "data",
    "digits",
    DigitsData,
    build=DataSpec(
        title="scikit-learn's digits",
        height=8,
        width=8,
        channels=1,
        class_names=DIGIT_NAMES,
        train_images=1_797,
        test_images=None,
        read=read_digits,
        where="inside scikit-learn (sklearn.datasets.load_digits); no files",
    ),
)

declare(
    "data",
    "image_folder",
    ImageFolderData,
    build=DataSpec(
        title="the image folder",
        height=28,
        width=28,
        channels=1,
        class_names=(),
        train_images=None,
        test_images=None,
        read=read_image_folder,
        where="data.dir: a folder of PNG/JPEG images, class sub-folders optional",
    ),
)

declare(
    "data",
    "tfds",
    TfdsData,
    build=DataSpec(
        title="the TensorFlow Datasets data set",
        height=28,
        width=28,
        channels=1,
        class_names=(),
        train_images=None,
        test_images=None,
        read=read_tfds,
        where="data.dir, else $TFDS_DATA_DIR, else ~/tensorflow_datasets: a TFDS folder where data.dataset "
        "is prepared (`tfds build NAME --data_dir DIR`); never downloaded",
    ),
)
