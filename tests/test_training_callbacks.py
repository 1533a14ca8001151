"""The training callbacks that shape how Keras runs ``fit`` (aetrain.training.callbacks)."""

from __future__ import annotations

import threading

import keras
import numpy as np

from aetrain.training.callbacks import PaceValidation


class ValidationHookThreads(keras.callbacks.Callback):
    """Records the thread each validation batch's hook runs on; safe to run on any thread, so that it
    does not by itself make Keras run the hooks in turn."""

    async_safe = True

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def on_test_batch_end(self, batch, logs=None):
        self.threads.add(threading.get_ident())


def validation_hook_threads(callbacks: list) -> set[int]:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).random((64, 4)).astype("float32")
    recorder = ValidationHookThreads()
    model.fit(
        x, x, batch_size=8, epochs=1, validation_data=(x, x), verbose=0, callbacks=[recorder, *callbacks]
    )
    return recorder.threads


def test_with_pace_validation_each_validation_step_is_read_as_it_ends_on_the_main_thread():
    """Without it, a backend whose steps run asynchronously (JAX) gets its validation hooks run on a
    thread, and nothing waits for a step before the next batch is sent (the whole split queued)."""
    main = threading.get_ident()
    assert validation_hook_threads([PaceValidation()]) == {main}
    unpaced = validation_hook_threads([])
    if keras.backend.backend() == "jax":  # TensorFlow's Keras runs every hook in turn anyway
        assert main not in unpaced
