"""Test-set figures of a trained autoencoder: how well it reconstructs, and what its codings look like."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from aetrain.config import NoSparsity, RunConfig, VAEVariant
from aetrain.models.vae import LATENT_LOSSES

NEAR_ZERO_ACTIVATION = 0.05
BATCH = 512


def reconstruction_mse(model: keras.Model, images: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error per pixel over ``images``, and the reconstructions (inference mode)."""
    reconstructions = model.predict(images, batch_size=BATCH, verbose=0).astype(np.float32)
    return float(np.mean(np.square(reconstructions - images))), reconstructions


def evaluate_test_set(model: keras.Model, images: np.ndarray, cfg: RunConfig) -> dict[str, Any]:
    """``mse`` always; sparsity: mean coding activation; VAE: mean latent loss per image (nats)."""
    mse, _ = reconstruction_mse(model, images)
    metrics: dict[str, Any] = {"images": len(images), "mse": mse}
    encoder = model.get_layer("encoder")
    if isinstance(cfg.variant, VAEVariant):
        mean, log_var, _ = encoder.predict(images, batch_size=BATCH, verbose=0)
        per_image = LATENT_LOSSES[cfg.variant.latent_loss](mean, log_var)
        metrics["latent_loss"] = float(np.mean(keras.ops.convert_to_numpy(per_image)))
    elif not isinstance(cfg.sparsity, NoSparsity):
        codings = encoder.predict(images, batch_size=BATCH, verbose=0)
        metrics["mean_activation"] = float(np.mean(codings))
        metrics["near_zero_fraction"] = float(np.mean(codings < NEAR_ZERO_ACTIVATION))
        if hasattr(cfg.sparsity, "target"):
            metrics["target_activation"] = cfg.sparsity.target
    return metrics
