"""Test-set figures of a trained autoencoder: how well it reconstructs, how sparse and how useful its
codings are, and the figures its family adds (a VAE's negative ELBO: aetrain.models.variational).

Every function here computes; none writes files. ``training/loop.py`` calls :func:`evaluate_test_set` at the
end of a run; ``aetrain-evaluate`` calls :func:`evaluate_trained_model` for the fuller report.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from aetrain.config import KLSparsity, Noise, NoNoise, NoSparsity, RunConfig
from aetrain.data.scaled_images import ScaledImages
from aetrain.models.build import coding_vectors
from aetrain.models.family import family_of
from aetrain.models.noise import build_noise_layer, corrupt, find_noise_layer
from aetrain.models.vae_health import ELBO_SAMPLES, IW_SAMPLES

NEAR_ZERO_ACTIVATION = 0.05
BATCH = 512
PROBE_STEPS = 2000
PROBE_BATCH = 256
PROBE_LEARNING_RATE = 1e-2
SPLIT_READ_BYTES = 4 << 20  # float32 pixels read at a time from a split kept as stored


def reconstruction_mse(model: keras.Model, images: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error per pixel over ``images``, and the reconstructions (inference mode)."""
    reconstructions = model.predict(images, batch_size=BATCH, verbose=0).astype(np.float32)
    return float(np.mean(np.square(reconstructions - images))), reconstructions


def evaluate_test_set(
    model: keras.Model, images: ScaledImages | np.ndarray, cfg: RunConfig
) -> dict[str, Any]:
    """``mse`` always; sparsity: mean coding activation; and the family's own figures (a VAE: mean
    latent loss per image in nats, active units). The test images stay as stored: the MSE, the mean
    image's and the codings are computed a few batches at a time (no float32 copy of the test set,
    nor of its reconstructions); a family that predicts over them reads them as Keras does."""
    metrics: dict[str, Any] = {
        "images": len(images),
        "mse": streamed_mse(model, images),
        "mean_image_mse": mean_image_mse(images),
    }
    metrics.update(family_of(cfg).test_figures(model, images, cfg))
    if not isinstance(cfg.sparsity, NoSparsity):
        encoder = model.get_layer("encoder")
        chunks = _row_chunks(images)
        codings = np.concatenate(
            [encoder.predict(images[rows], batch_size=BATCH, verbose=0) for rows in chunks]
        )
        metrics["mean_activation"] = float(np.mean(codings))
        metrics["near_zero_fraction"] = float(np.mean(codings < NEAR_ZERO_ACTIVATION))
        if hasattr(cfg.sparsity, "target"):
            metrics["target_activation"] = cfg.sparsity.target
    return metrics


def streamed_mse(model: keras.Model, images: ScaledImages | np.ndarray) -> float:
    """:func:`reconstruction_mse`'s figure, the images read, reconstructed and compared a few batches
    at a time (the same batches as one ``predict``), summed in float64."""
    squares = 0.0
    for rows in _row_chunks(images):
        part = images[rows]
        difference = model.predict(part, batch_size=BATCH, verbose=0).astype(np.float32, copy=False)
        difference = np.subtract(difference, part, out=difference if difference.flags.writeable else None)
        squares += float(np.sum(np.square(difference, out=difference), dtype=np.float64))
    return squares / _pixels(images)


def mean_image_mse(images: ScaledImages | np.ndarray) -> float:
    """The MSE of answering every image with the images' mean image: what a model that learned
    nothing about its input scores at best (a run whose test MSE is above it is flagged). In float64,
    the images read a few batches at a time, twice (the mean image, then the squares)."""
    chunks = _row_chunks(images)
    mean = sum(images[rows].sum(axis=0, dtype=np.float64) for rows in chunks) / len(images)
    squares = 0.0
    for rows in chunks:
        difference = np.subtract(images[rows], mean)  # float64, one chunk
        squares += float(np.sum(np.square(difference, out=difference)))
    return squares / _pixels(images)


def _row_chunks(images: ScaledImages | np.ndarray) -> list[slice]:
    """Slices of about SPLIT_READ_BYTES of float32 pixels: whole BATCHes of rows where a BATCH fits
    (the batches of one ``predict``), else fewer rows (large images: a chunk's copies, read, predicted
    and compared, are what the evaluation adds to a run's peak memory)."""
    image_bytes = 4 * int(np.prod(images.shape[1:]))
    batches = SPLIT_READ_BYTES // (image_bytes * BATCH)
    rows = batches * BATCH if batches else max(1, SPLIT_READ_BYTES // image_bytes)
    return [slice(start, start + rows) for start in range(0, len(images), rows)]


def _pixels(images: ScaledImages | np.ndarray) -> int:
    return int(np.prod(images.shape))


def worse_than_mean_image_warning(mse: float, baseline: float) -> str | None:
    """The warning for reconstructions worse than answering every input with the data's mean image."""
    if not mse > baseline:
        return None
    return (
        f"the model reconstructs worse than the data's mean image: test MSE {mse:.4g} against "
        f"{baseline:.4g} for answering every image with the mean image, so it learned nothing useful "
        "about its input. Train more steps (trainer.epochs, a smaller trainer.batch_size) or lower "
        "trainer.learning_rate."
    )


# --- image quality ------------------------------------------------------------------------------


def with_channels(images: np.ndarray) -> np.ndarray:
    """(n, h, w) grey images as (n, h, w, 1); colour images (n, h, w, c) as they are."""
    return images[..., None] if images.ndim == 3 else images


def psnr_per_image(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """10 log10(1 / MSE) per image, in dB (as ``tf.image.psnr`` with max_val=1 on [0,1] pixels).

    Reconstructions are clipped to [0, 1] first, as an image viewer would show them.
    """
    clipped = np.clip(reconstructions, 0.0, 1.0)
    errors = np.square(images.astype(np.float64) - clipped).reshape(len(images), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return (-10.0 * np.log10(errors)).astype(np.float32)


SSIM_SIGMA, SSIM_K1, SSIM_K2 = 1.5, 0.01, 0.03  # tf.image.ssim's (Wang et al. 2004)


def ssim_per_image(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Structural similarity per image, in [-1, 1]: as ``tf.image.ssim`` (max_val=1) computes it, an
    11x11 Gaussian window (sigma 1.5) over the valid positions, averaged over them and the channels.

    l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1), cs = (2 s_xy + C2) / (s_x^2 + s_y^2 + C2),
    C1 = 0.01^2, C2 = 0.03^2; SSIM = mean(l * cs). Images smaller than 11 pixels a side (the 8x8
    digits) use a window of their own size.
    """
    clipped = np.clip(reconstructions, 0.0, 1.0)
    window = min(11, images.shape[1], images.shape[2])
    values = [
        _ssim(with_channels(images[i : i + BATCH]), with_channels(clipped[i : i + BATCH]), window)
        for i in range(0, len(images), BATCH)
    ]
    return np.concatenate(values).astype(np.float32)


def _ssim(x: np.ndarray, y: np.ndarray, window: int) -> np.ndarray:
    x, y = x.astype(np.float64), y.astype(np.float64)
    offsets = np.arange(window) - (window - 1) / 2
    kernel = np.exp(-np.square(offsets) / (2 * SSIM_SIGMA**2))
    kernel /= kernel.sum()

    def blur(values):  # the Gaussian-weighted mean around each valid position, separably
        rows = np.einsum("nhwck,k->nhwc", np.lib.stride_tricks.sliding_window_view(values, window, 1), kernel)
        return np.einsum("nhwck,k->nhwc", np.lib.stride_tricks.sliding_window_view(rows, window, 2), kernel)

    mean_x, mean_y = blur(x), blur(y)
    mean_product = mean_x * mean_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    luminance = (2 * mean_product + c1) / (np.square(mean_x) + np.square(mean_y) + c1)
    structure = (2 * (blur(x * y) - mean_product) + c2) / (
        blur(np.square(x) + np.square(y)) - np.square(mean_x) - np.square(mean_y) + c2
    )
    return (luminance * structure).mean(axis=(1, 2, 3))


# --- codings ------------------------------------------------------------------------------------


def coding_activity(codings: np.ndarray, target: float | None = None) -> dict[str, Any]:
    """How sparse sigmoid codings really are: mean activation overall and per unit, near-zero share.

    A coding counts as near zero below NEAR_ZERO_ACTIVATION (0.05). With a KL target p, a unit whose
    mean activation is p is exactly on target; ``unit_mean_activation`` shows how far each one is.
    """
    per_unit = np.mean(codings, axis=0)
    activity: dict[str, Any] = {
        "mean_activation": float(np.mean(codings)),
        "unit_mean_activation": [float(v) for v in per_unit],
        "unit_mean_activation_range": [float(per_unit.min()), float(per_unit.max())],
        "near_zero_fraction": float(np.mean(codings < NEAR_ZERO_ACTIVATION)),
        "near_zero_threshold": NEAR_ZERO_ACTIVATION,
    }
    if target is not None:
        activity["target_activation"] = target
    return activity


def linear_probe(
    train_codings: np.ndarray,
    train_labels: np.ndarray,
    test_codings: np.ndarray,
    test_labels: np.ndarray,
    seed: int,
    steps: int = PROBE_STEPS,
) -> dict[str, Any]:
    """Accuracy of a logistic regression (one softmax Dense layer) trained on train-set codings.

    The usual measure of how linearly useful learned features are. Codings are standardised with the
    training codings' mean and standard deviation; then ``steps`` Adam steps on batches of 256 drawn
    from reshuffled passes (a step count, not epochs, so small and large sets both converge); ``seed``
    fixes the initial weights and the order. With fewer than two classes there is nothing to tell
    apart: ``probe_undefined`` says so instead of a number.
    """
    present = np.unique(train_labels)
    if len(present) < 2:
        return {
            "probe_undefined": f"the training split holds {len(present)} class; a classifier's "
            "accuracy means something only with two or more",
            "probe_train_images": len(train_labels),
        }
    keras.utils.set_random_seed(seed)
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    center = train_codings.mean(axis=0)
    scale = train_codings.std(axis=0) + 1e-6
    x_train, x_test = (train_codings - center) / scale, (test_codings - center) / scale
    batches = _reshuffled_passes(x_train.astype(np.float32), train_labels, seed)
    probe = keras.Sequential(
        [keras.Input(shape=(x_train.shape[1],)), keras.layers.Dense(classes, activation="softmax")],
        name="linear_probe",
    )
    probe.compile(
        optimizer=keras.optimizers.Adam(PROBE_LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    probe.fit(batches, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    _, train_accuracy = probe.evaluate(x_train, train_labels, batch_size=BATCH, verbose=0)
    _, test_accuracy = probe.evaluate(x_test, test_labels, batch_size=BATCH, verbose=0)
    return {
        "probe_test_accuracy": float(test_accuracy),
        "probe_train_accuracy": float(train_accuracy),
        "probe_train_images": len(x_train),
        "probe_steps": steps,
    }


def split_coding_vectors(model: keras.Model, images: ScaledImages | np.ndarray) -> np.ndarray:
    """``coding_vectors`` of a whole split, read as float32 a few batches at a time (whole batches of
    BATCH, so the codings equal one ``predict`` over the split): the training split, which may be
    larger than memory as float32, is never read whole."""
    if not isinstance(images, ScaledImages):
        return coding_vectors(model, images, BATCH)
    return np.concatenate([coding_vectors(model, images[rows], BATCH) for rows in _row_chunks(images)])


# --- denoising ----------------------------------------------------------------------------------


def _reshuffled_passes(x: np.ndarray, labels: np.ndarray, seed: int):
    """Endless (x, labels) batches of PROBE_BATCH rows from passes over the set, each pass in a new
    order drawn from ``seed``; a batch may span two passes (every batch is full)."""
    rng = np.random.default_rng(seed)
    waiting = np.empty(0, dtype=np.int64)
    while True:
        while len(waiting) < PROBE_BATCH:
            waiting = np.concatenate([waiting, rng.permutation(len(x))])
        rows, waiting = waiting[:PROBE_BATCH], waiting[PROBE_BATCH:]
        yield x[rows], labels[rows]


def denoising_quality(model: keras.Model, images: np.ndarray) -> dict[str, float]:
    """MSE to the clean images of the noisy inputs and of their reconstructions: what denoising buys."""
    noisy = corrupt(model, images)
    denoised = model.predict(noisy, batch_size=BATCH, verbose=0)
    return {
        "noisy_input_mse": float(np.mean(np.square(noisy - images))),
        "denoised_mse": float(np.mean(np.square(denoised - images))),
    }


def noisy_copy(images: np.ndarray, noise: Noise, level: float, seed: int) -> np.ndarray:
    """``images`` through ``noise``'s own layer at strength ``level`` (``noise.at_level``), in training
    mode, as training corrupts them; level 0 is the clean copy."""
    if level == 0:
        return images.copy()
    layer = build_noise_layer(noise.at_level(level), seed)
    return keras.ops.convert_to_numpy(layer(images, training=True)).astype(np.float32)


def denoising_curve(
    model: keras.Model, images: np.ndarray, levels: list[float], noise: Noise, seed: int
) -> list[dict[str, float]]:
    """Per noise level: the MSE to the clean images of the noisy input and of its reconstruction."""
    curve = []
    for level in levels:
        noisy = noisy_copy(images, noise, level, seed)
        reconstructed = model.predict(noisy, batch_size=BATCH, verbose=0)
        curve.append(
            {
                "level": float(level),
                "noisy_input_mse": float(np.mean(np.square(noisy - images))),
                "reconstruction_mse": float(np.mean(np.square(reconstructed - images))),
            }
        )
    return curve


def dead_units(codings: np.ndarray, threshold: float = NEAR_ZERO_ACTIVATION) -> list[int]:
    """Coding units that never rise above ``threshold`` on any of the images: they never fire."""
    return [int(i) for i in np.flatnonzero(np.max(codings, axis=0) <= threshold)]


# --- the whole report ---------------------------------------------------------------------------


def evaluate_trained_model(
    model: keras.Model,
    cfg: RunConfig,
    data,
    *,
    seed: int,
    elbo_samples: int = ELBO_SAMPLES,
    probe_steps: int = PROBE_STEPS,
    iw_samples: int = IW_SAMPLES,
    noise_levels: list[float] | None = None,
) -> dict[str, Any]:
    """Everything ``aetrain-evaluate`` reports, on ``data.x_test`` (probe trained on ``data.x_train``)."""
    images = np.asarray(data.x_test)
    mse, reconstructions = reconstruction_mse(model, images)
    report: dict[str, Any] = {
        "variant": cfg.variant.name,
        "noise": cfg.noise.name,
        "sparsity": cfg.sparsity.name,
        "latent_size": cfg.latent_size,
        "test_images": len(images),
        "mse": mse,
        "psnr_db": float(np.mean(psnr_per_image(images, reconstructions))),
        "ssim": float(np.mean(ssim_per_image(images, reconstructions))),
    }
    test_codings = coding_vectors(model, images)
    if not isinstance(cfg.sparsity, NoSparsity):
        target = cfg.sparsity.target if isinstance(cfg.sparsity, KLSparsity) else None
        report["sparsity_report"] = coding_activity(test_codings, target)
        dead = dead_units(test_codings)
        report["sparsity_report"].update(dead_units=len(dead), dead_unit_indices=dead)
    report.update(
        family_of(cfg).evaluation_report(
            model, images, seed=seed, elbo_samples=elbo_samples, iw_samples=iw_samples
        )
    )
    if not isinstance(cfg.noise, NoNoise) and find_noise_layer(model) is not None:
        report["denoising"] = denoising_quality(model, images)
    if noise_levels:
        report["denoising_curve"] = {
            "kind": cfg.noise.at_level(1.0).name,
            "level": cfg.noise.level_label,
            "points": denoising_curve(model, images, noise_levels, cfg.noise, seed),
        }
    report["linear_probe"] = linear_probe(
        split_coding_vectors(model, data.x_train), data.y_train, test_codings, data.y_test, seed, probe_steps
    )
    return report
