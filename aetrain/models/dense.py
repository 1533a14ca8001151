"""Stacked (fully connected) autoencoder, as the seed's dropout and sparse ones."""

from __future__ import annotations

import keras

from aetrain.config import RunConfig
from aetrain.data.specs import spec_for
from aetrain.models.noise import build_noise_layer
from aetrain.models.sparsity import build_sparsity_layers, coding_activation

# The output layer computes in float32 under every precision policy: a bfloat16 image (8 bits of
# mantissa) cannot resolve MSEs near 1e-2, and the loss must see float32 (Keras mixed-precision guide).
OUTPUT_DTYPE = "float32"


def build_dense_encoder(cfg: RunConfig) -> keras.Sequential:
    """Flatten -> [noise] -> Dense(hidden...) -> Dense(latent_size) -> [sparsity]."""
    variant = cfg.variant
    layers = [keras.Input(shape=spec_for(cfg.data).image_shape), keras.layers.Flatten()]
    noise = build_noise_layer(cfg.noise, cfg.seed)
    if noise is not None:
        layers.append(noise)
    layers += [keras.layers.Dense(units, activation=variant.activation) for units in variant.hidden_units]
    layers.append(
        keras.layers.Dense(
            cfg.latent_size, activation=coding_activation(cfg.sparsity, variant.activation), name="codings"
        )
    )
    layers += build_sparsity_layers(cfg.sparsity)
    return keras.Sequential(layers, name="encoder")


def build_dense_decoder(cfg: RunConfig, hidden_units: list[int]) -> keras.Sequential:
    """Dense(hidden...) -> Dense(pixels) -> Reshape(image shape): 784 and (28, 28) on Fashion-MNIST."""
    variant = cfg.variant
    spec = spec_for(cfg.data)
    layers = [keras.Input(shape=(cfg.latent_size,))]
    layers += [keras.layers.Dense(units, activation=variant.activation) for units in hidden_units]
    layers += [
        keras.layers.Dense(spec.pixels, activation=variant.output_activation, dtype=OUTPUT_DTYPE),
        keras.layers.Reshape(spec.image_shape, dtype=OUTPUT_DTYPE),
    ]
    return keras.Sequential(layers, name="decoder")


def build_dense_autoencoder(cfg: RunConfig) -> keras.Sequential:
    """The decoder mirrors the encoder's hidden layers."""
    encoder = build_dense_encoder(cfg)
    decoder = build_dense_decoder(cfg, list(reversed(cfg.variant.hidden_units)))
    inputs = keras.Input(shape=spec_for(cfg.data).image_shape)
    return keras.Sequential([inputs, encoder, decoder], name="dense_autoencoder")
