"""Train on each batch as N slices whose forward and backward passes run side by side on CPU cores.

Why: at batch 128 TensorFlow's CPU ops for these small convolutions scale badly across threads. Cut
into slices, the step holds N independent sub-graphs; with one thread per op and N inter-op threads
they run at once, one per core (the measurements: docs/performance.md).

The gradient is the whole batch's: every slice's loss is a per-image mean, weighted by the slice's
share of the batch, so sum(share_k * loss_k) is the batch's mean loss. That holds for the MSE, the
L1 sparsity penalty and the VAE's latent loss; it does not hold for the KL sparsity penalty (a
statistic of the whole batch's mean activation), so a KL run is never split (aetrain.config refuses it).

The model itself is untouched: Keras looks ``train_step``/``test_step`` up on the instance, so this
run's steps are replaced there and checkpoints stay plain Keras models. The steps follow Keras 3's
own TensorFlow ``train_step``/``test_step`` (keras/src/backend/tensorflow/trainer.py), including its
loss tracker and distribution scaling; tests/test_batch_splits.py compares them with the unsplit
steps, so a Keras release that changes those internals fails there, not silently.
"""

from __future__ import annotations

import functools

from aetrain.config import ConfigError, KLSparsity, RunConfig
from aetrain.models.family import family_of
from aetrain.training.runtime import import_tensorflow_quietly

MIN_SLICE_IMAGES = 32  # below this a slice's ops are too small to be worth a core of their own
MOST_CORES_SLICED = 2  # auto slices only where slices were measured to win (docs/performance.md)


def resolve_batch_splits(cfg: RunConfig, cores: int, has_gpu: bool, backend: str = "tensorflow") -> int:
    """``trainer.batch_splits`` for this run. ``auto``: one slice per core (at least MIN_SLICE_IMAGES
    images each) for a family whose steps are convolutions (``Family.convolutional``) on a CPU of at
    most MOST_CORES_SLICED cores, where TensorFlow's threads leave cores idle in a conv step; 1 on
    bigger CPUs (there one slice with every thread was faster than any split), for the dense
    variants (their matrix products already keep every core busy), on a GPU, under a distribution
    strategy and with KL sparsity. ``python -m bench --scaling`` measures the choice on the machine
    it runs on."""
    requested = cfg.trainer.batch_splits
    if backend != "tensorflow":  # the sliced steps are TensorFlow's train_step
        if requested not in ("auto", 1):
            raise ConfigError(
                "trainer.batch_splits",
                requested,
                f"auto or 1 on the {backend} backend",
                "Batches are sliced by a TensorFlow train step; use trainer.backend=tensorflow to slice.",
            )
        return 1
    if requested != "auto":
        return int(requested)
    if not family_of(cfg).convolutional or isinstance(cfg.sparsity, KLSparsity):
        return 1
    if has_gpu or cfg.trainer.strategy != "default" or cores > MOST_CORES_SLICED:
        return 1
    return max(1, min(cores, cfg.trainer.batch_size // MIN_SLICE_IMAGES))


def split_steps(model, splits: int) -> None:
    """Make ``model.fit``/``model.evaluate`` run each batch as ``splits`` slices (1: leave it as is)."""
    if splits > 1:
        model.train_step = functools.partial(_train_step, model, splits)
        model.test_step = functools.partial(_test_step, model, splits)


def slice_sizes(batch_size, splits: int) -> list:
    """Sizes that differ by at most one and add up to the batch: (n + k) // splits for k < splits."""
    return [(batch_size + k) // splits for k in range(splits)]


def _sliced_loss(model, x, y, splits: int, training: bool):
    """(batch mean loss, predictions), the loss also recorded in the model's loss tracker. Each
    slice's loss is taken right after its own forward pass, so ``model.losses`` (add_loss penalties,
    cleared at every outer call) belong to that slice.

    A batch smaller than ``splits`` (an epoch's last) leaves some slices empty; oneDNN refuses empty
    convolutions, so such a slice runs on the batch's first image with weight 0 instead.
    """
    tf = import_tensorflow_quietly()
    batch = tf.shape(x)[0]
    total, predictions, start = 0.0, [], 0
    for size in slice_sizes(batch, splits):
        begin, taken = tf.where(size > 0, start, 0), tf.maximum(size, 1)
        y_pred = model(x[begin : begin + taken], training=training)
        loss = model.compute_loss(
            x=x[begin : begin + taken], y=y[begin : begin + taken], y_pred=y_pred, training=training
        )
        total += tf.cast(loss, "float32") * (tf.cast(size, "float32") / tf.cast(batch, "float32"))
        predictions.append(y_pred[:size])
        start += size
    from keras.src.losses.loss import unscale_loss_for_distribution

    model._loss_tracker.update_state(unscale_loss_for_distribution(total), sample_weight=batch)
    return total, tf.concat(predictions, axis=0)


def _inputs_and_targets(data):
    import keras

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if sample_weight is not None:
        raise ValueError("batch_splits > 1 does not take sample weights; set trainer.batch_splits=1")
    return x, y


def _train_step(model, splits: int, data):
    """Keras's TensorFlow train_step, with the forward pass and loss taken slice by slice."""
    tf = import_tensorflow_quietly()
    x, y = _inputs_and_targets(data)
    with tf.GradientTape() as tape:
        loss, y_pred = _sliced_loss(model, x, y, splits, training=True)
        scaled = model.optimizer.scale_loss(loss)
    weights = model.trainable_weights
    model.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights, strict=True))
    return model.compute_metrics(x, y, y_pred, sample_weight=None)


def _test_step(model, splits: int, data):
    x, y = _inputs_and_targets(data)
    _, y_pred = _sliced_loss(model, x, y, splits, training=False)
    return model.compute_metrics(x, y, y_pred, sample_weight=None)
