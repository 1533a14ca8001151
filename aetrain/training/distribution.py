"""``trainer.strategy`` -> a ``tf.distribute`` strategy; the training loop builds the model in its scope.

``mirrored`` keeps one copy of the model on every GPU of this machine and splits each batch between
them (``trainer.batch_size`` stays the global batch). With no GPU it mirrors over the logical CPU
devices, which is how it is tested without a GPU: split the CPU with
``tf.config.set_logical_device_configuration`` before TensorFlow initialises its devices.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aetrain.config import ConfigError
from aetrain.config.registry import build
from aetrain.training.runtime import import_tensorflow_quietly


class OneDevice:
    """One device, on a backend without tf.distribute: a scope that does nothing, one replica."""

    num_replicas_in_sync = 1
    batch_multiple = 1

    def scope(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def training_ended(self) -> None:
        pass


class JaxDataParallel:
    """``trainer.strategy=mirrored`` on JAX: Keras's DataParallel over every device of JAX's default
    platform (the GPUs, else the CPU devices), set for the whole run, since Keras's JAX trainer
    shards each batch by the distribution in force when ``fit`` runs, not by a scope."""

    def __init__(self) -> None:
        import keras

        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        # each batch is split evenly among the devices
        self.num_replicas_in_sync = self.batch_multiple = len(devices)

    def scope(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def training_ended(self) -> None:
        """Evaluation and pictures run on one device: their batches need not divide among them."""
        import keras

        keras.distribution.set_distribution(None)


def default_strategy() -> Any:
    """TensorFlow's no-op strategy: one device (the first GPU if there is one, else the CPU); on
    another backend, the device Keras picks."""
    import keras

    if keras.config.backend() == "jax":
        keras.distribution.set_distribution(None)  # a sequential sweep's earlier job may have set one
    if keras.config.backend() != "tensorflow":
        return OneDevice()
    return import_tensorflow_quietly().distribute.get_strategy()


def mirrored_strategy() -> Any:
    """Synchronous data parallelism over every local GPU, else over every logical CPU device.

    Gradients are summed with NCCL on GPUs and on one device for CPUs, not with TensorFlow's
    default collective ops: those number their groups from 1 in each new strategy, so the second
    job of a sequential sweep (same process) collides with the first one's ("Shape mismatch in the
    collective instance").
    """
    import keras

    if keras.config.backend() == "jax":
        return JaxDataParallel()
    if keras.config.backend() != "tensorflow":
        raise ConfigError(
            "trainer.strategy",
            "mirrored",
            f"default on the {keras.config.backend()} backend",
            "mirrored is TensorFlow's MirroredStrategy or Keras's DataParallel on JAX.",
        )
    tf = import_tensorflow_quietly()
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    reduce = tf.distribute.NcclAllReduce() if gpus else tf.distribute.ReductionToOneDevice()
    return tf.distribute.MirroredStrategy([device.name for device in devices], cross_device_ops=reduce)


def build_strategy(name: str) -> Any:
    """The ``tf.distribute.Strategy`` called ``name`` (declared in aetrain.config.trainer, checked by
    config)."""
    return build("strategy", name)()
