"""tf.data pipelines of (x, x) batches over images held in memory, for any image shape.

TensorFlow is imported inside the functions: importing aetrain.data stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

PREFETCH_BATCHES = 2  # one batch in the step, one ready: the gather is far faster than any step


def make_dataset(
    images: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int | None = None,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Batches of (x, x) float32 pairs: an autoencoder's input is its own target.

    The pipeline shuffles and batches image *indices* and gathers each batch with one vectorised
    ``tf.gather``: cheaper than slicing, shuffling and re-stacking 55,000 separate small images every
    epoch (docs/performance.md). The
    images are held once, in memory, so ``.cache()`` would only add a second copy. Shuffling spans
    the whole set and reshuffles every epoch; a seed makes the order repeatable.
    """
    import tensorflow as tf

    pixels = tf.constant(np.asarray(images, dtype=np.float32))
    dataset = tf.data.Dataset.range(len(images))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size).map(lambda indices: _input_is_target(tf.gather(pixels, indices)))
    return _prefetched(dataset)


def _input_is_target(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return batch, batch


def _prefetched(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` with PREFETCH_BATCHES batches made ahead, and tf.data's autotuning off.

    Why no autotuning: its optimisation thread outlives the last batch, and deleting the iterator
    (the end of ``fit``) waits for it, for seconds to tens of seconds after the last epoch
    (docs/performance.md, "Time after the last epoch"). A pipeline of one gather per batch has
    nothing for it to tune.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(PREFETCH_BATCHES).with_options(options)


def make_training_dataset(
    images: np.ndarray, batch_size: int, *, seed: int, first_epoch: int = 0
) -> tf.data.Dataset:
    """Endless (x, x) batches, one epoch after another, for ``fit(steps_per_epoch=...)``.

    Epoch ``e`` visits the images in an order drawn from ``(seed, e)`` alone (a stateless shuffle),
    not from how many epochs this process has already run: a run resumed at epoch ``e`` sees exactly
    the batches an uninterrupted run would have. Each epoch ends with its own smaller last batch.
    """
    import tensorflow as tf

    pixels = tf.constant(np.asarray(images, dtype=np.float32))
    count = len(images)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    epochs = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max)
    batches = epochs.flat_map(one_epoch).map(lambda indices: tf.gather(pixels, indices))
    return _prefetched(batches.map(_input_is_target))
