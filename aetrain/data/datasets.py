"""Batches of (x, x) pairs for Keras, read from the stored images a batch at a time, on any backend.

A ``keras.utils.PyDataset`` serves TensorFlow and JAX alike and needs no tf.data: each batch is
gathered from the stored (uint8, perhaps memory-mapped) images and scaled to float32 on the fly, one
worker thread making the next batch while the step runs. Keras is imported inside the functions:
importing aetrain.data stays cheap.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from aetrain.data.scaled_images import ScaledImages

WORKERS = 1  # one thread gathers the next batch while the step runs; NumPy releases the GIL there
QUEUED_BATCHES = 4


def epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """The order epoch ``epoch`` visits ``count`` images in, drawn from ``(seed, epoch)`` alone: a run
    resumed at epoch ``e`` sees exactly the batches an uninterrupted run would have."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def make_training_dataset(
    images: ScaledImages, batch_size: int, *, seed: int, first_epoch: int = 0, multiple_of: int = 1
):
    """Shuffled (x, x) batches in the order :func:`epoch_order` gives each epoch, starting at epoch
    ``first_epoch``. ``fit`` must be given its ``follow_epochs()`` callback, which tells it each
    epoch's number.

    Every batch is whole (``batch_size`` images): on JAX each batch shape is a program compiled of its
    own, and a smaller last batch cost a dense model's first epoch 0.4 s. The few images left over
    differ from epoch to epoch, as the order does. Fewer images than one batch make one batch.

    ``multiple_of``: that batch holds a multiple of that many images (the replicas that share it on
    JAX); the last few images of an epoch's order that would break it wait for another epoch.
    """
    return _batch_classes()["ImageBatches"](
        images, batch_size, seed=seed, first_epoch=first_epoch, multiple_of=multiple_of, whole_batches=True
    )


def make_dataset(
    images: ScaledImages | np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    multiple_of: int = 1,
):
    """(x, x) batches in order (validation, evaluation), or shuffled per epoch as for training."""
    if not isinstance(images, ScaledImages):
        images = ScaledImages.of(np.asarray(images, dtype=np.float32), max_value=1)
    if shuffle:
        return make_training_dataset(images, batch_size, seed=seed, multiple_of=multiple_of)
    return _batch_classes()["ImageBatches"](images, batch_size, seed=None, multiple_of=multiple_of)


@functools.cache
def _batch_classes() -> dict[str, type]:
    import keras

    class ImageBatches(keras.utils.PyDataset):
        """(x, x) float32 batches of ``images``: in order when ``seed`` is None, else in the order
        :func:`epoch_order` gives the current epoch, which ``fit`` tells it through
        :meth:`follow_epochs` (Keras's own calls to a PyDataset's epoch hooks differ between
        backends, so they are not counted)."""

        def __init__(
            self,
            images: ScaledImages,
            batch_size: int,
            *,
            seed: int | None,
            first_epoch: int = 0,
            multiple_of: int = 1,
            whole_batches: bool = False,
        ):
            super().__init__(workers=WORKERS, use_multiprocessing=False, max_queue_size=QUEUED_BATCHES)
            self.images, self.batch_size, self.seed = images, int(batch_size), seed
            # images per epoch: whole batches only, or the last batch cut to a multiple of ``multiple_of``
            left_over = len(images) % self.batch_size
            self.used = len(images) - (
                left_over if whole_batches and len(images) >= self.batch_size else left_over % multiple_of
            )
            self.epoch = first_epoch
            self.order = self._order()

        def _order(self) -> np.ndarray:
            if self.seed is None:
                return np.arange(self.used)
            return epoch_order(len(self.images), self.seed, self.epoch)[: self.used]

        def __len__(self) -> int:
            return math.ceil(self.used / self.batch_size)

        def __getitem__(self, index: int):
            rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
            pixels = self.images[rows]
            return pixels, pixels

        def start_epoch(self, epoch: int) -> None:
            if epoch != self.epoch:
                self.epoch = epoch
                self.order = self._order()

        def follow_epochs(self) -> keras.callbacks.Callback:
            """The callback that starts each of ``fit``'s epochs here, before its first batch is read."""
            return EpochFollower(self)

    class EpochFollower(keras.callbacks.Callback):
        def __init__(self, batches: ImageBatches):
            super().__init__()
            self.batches = batches

        def on_epoch_begin(self, epoch, logs=None):
            self.batches.start_epoch(epoch)

    return {"ImageBatches": ImageBatches}
