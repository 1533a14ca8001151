"""The seed's recipe as a reader of the book runs it: plain Keras, NumPy ``fit``, batch 32, Nadam, MSE.

The conv model is written out layer by layer from plain ``keras.layers`` (not built by aetrain), so
the baseline cannot drift when aetrain changes. For the throughput of the other variants the same
recipe trains the model aetrain builds, so both sides run the same network.
"""

from __future__ import annotations

import time

import keras
import numpy as np

SEED_BATCH_SIZE = 32


def build_seed_conv_autoencoder() -> keras.Sequential:
    """The seed document's ``conv_ae``: 54,479 parameters, linear output."""
    conv_encoder = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Reshape([28, 28, 1]),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPool2D(pool_size=2),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPool2D(pool_size=2),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPool2D(pool_size=2),
            keras.layers.Conv2D(30, 3, padding="same", activation="relu"),
            keras.layers.GlobalAvgPool2D(),
        ]
    )
    conv_decoder = keras.Sequential(
        [
            keras.Input(shape=(30,)),
            keras.layers.Dense(3 * 3 * 16),
            keras.layers.Reshape((3, 3, 16)),
            keras.layers.Conv2DTranspose(32, 3, strides=2, activation="relu"),
            keras.layers.Conv2DTranspose(16, 3, strides=2, activation="relu", padding="same"),
            keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same"),
            keras.layers.Reshape([28, 28]),
        ]
    )
    return keras.Sequential([keras.Input(shape=(28, 28)), conv_encoder, conv_decoder])


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of each epoch (training and validation), for throughput and time-to-quality."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.ends: list[float | None] = []  # seconds from the process's start

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from aetrain.run_folder.record import seconds_since_process_start

        self.seconds.append(time.perf_counter() - self._start)
        self.ends.append(seconds_since_process_start())


def train_seed_recipe(
    model: keras.Model,
    x_train: np.ndarray,
    x_val: np.ndarray,
    x_test: np.ndarray | None,
    epochs: int,
    seed: int = 42,
) -> dict:
    """``model.compile(loss="mse", optimizer="nadam"); model.fit(X, X, epochs, validation_data)``, timed.

    A model with penalties of its own (sparsity, a VAE's latent loss: ``add_loss``) also records the
    MSE alone as a metric, so that ``val_mse`` is the reconstruction error whatever the model adds.
    """
    x_train, x_val = np.asarray(x_train), np.asarray(x_val)
    x_test = None if x_test is None else np.asarray(x_test)
    keras.utils.set_random_seed(seed)
    model(x_train[:1])  # a first call collects the model's add_loss terms
    penalised = bool(model.losses)
    model.compile(
        loss="mse",
        optimizer="nadam",
        metrics=[keras.metrics.MeanSquaredError(name="mse")] if penalised else None,
    )
    timer = EpochTimer()
    started = time.perf_counter()
    history = model.fit(
        x_train,
        x_train,
        epochs=epochs,
        batch_size=SEED_BATCH_SIZE,
        validation_data=(x_val, x_val),
        verbose=0,
        callbacks=[timer],
    )
    train_seconds = time.perf_counter() - started
    val_mse = history.history["val_mse" if penalised else "val_loss"]
    result = {
        "train_seconds": train_seconds,
        "epoch_seconds": timer.seconds,
        "epoch_end_seconds": timer.ends,
        "val_loss": [float(v) for v in history.history["val_loss"]],
        "val_mse": [float(v) for v in val_mse],
        "images_per_second": steady_throughput(len(x_train), timer.seconds),
    }
    if x_test is not None:
        reconstructions = model.predict(x_test, batch_size=512, verbose=0)
        result["test_mse"] = float(np.mean(np.square(reconstructions - x_test)))
    return result


def steady_throughput(images: int, epoch_seconds: list[float]) -> float:
    """Images per second of the median epoch after the first (which traces), as aetrain reports it."""
    steady = epoch_seconds[1:] or epoch_seconds
    return images / float(np.median(steady))
