"""Autoencoders built from a RunConfig. :func:`build_model` is the one door in.

Every model has two sub-models named ``encoder`` and ``decoder``. Importing this module registers
the custom layers with Keras (it imports every module that defines one), so
``keras.models.load_model`` reloads any aetrain checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from aetrain.config import ConvVAEVariant, ConvVariant, DenseVariant, RunConfig, VAEVariant
from aetrain.models.conv import build_conv_autoencoder
from aetrain.models.conv_vae import build_conv_vae
from aetrain.models.dense import build_dense_autoencoder
from aetrain.models.vae import build_vae

VARIANT_BUILDERS: dict[type, Callable[[RunConfig], keras.Model]] = {
    DenseVariant: build_dense_autoencoder,
    ConvVariant: build_conv_autoencoder,
    VAEVariant: build_vae,
    ConvVAEVariant: build_conv_vae,
}


def build_model(cfg: RunConfig) -> keras.Model:
    """The autoencoder the config names, built (weights created) and seeded."""
    keras.utils.set_random_seed(cfg.seed)
    return VARIANT_BUILDERS[type(cfg.variant)](cfg)


def encode(model: keras.Model, images, batch_size: int = 512):
    """Codings of ``images`` (the VAE's mean codings), as NumPy."""
    encoder = model.get_layer("encoder")
    outputs = encoder.predict(images, batch_size=batch_size, verbose=0)
    return outputs[0] if isinstance(outputs, list) else outputs
