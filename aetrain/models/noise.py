"""Input corruption for denoising autoencoders: active while training only, as Keras layers do."""

from __future__ import annotations

import keras

from aetrain.config import DropoutNoise, GaussianNoise, Noise, NoNoise
from aetrain.config.registry import build

NOISE_LAYER_NAME = "noise"  # a noise's builder names its layer so: pictures and evaluation find it


def no_noise_layer(cfg: NoNoise, seed: int) -> None:
    return None


def gaussian_noise_layer(cfg: GaussianNoise, seed: int) -> keras.layers.Layer:
    return keras.layers.GaussianNoise(cfg.stddev, seed=seed, name=NOISE_LAYER_NAME)


def dropout_noise_layer(cfg: DropoutNoise, seed: int) -> keras.layers.Layer:
    return keras.layers.Dropout(cfg.rate, seed=seed, name=NOISE_LAYER_NAME)


def build_noise_layer(cfg: Noise, seed: int) -> keras.layers.Layer | None:
    """The corruption layer the encoder starts with (the builder the noise's declaration names), or
    None for a plain autoencoder."""
    return build("noise", cfg.name)(cfg, seed)


def find_noise_layer(model: keras.Model) -> keras.layers.Layer | None:
    """The model's noise layer (to show noisy inputs in pictures), or None."""
    encoder = model.get_layer("encoder")
    names = {layer.name: layer for layer in encoder.layers}
    return names.get(NOISE_LAYER_NAME)


def corrupt(model: keras.Model, images):
    """``images`` through the model's own noise layer in training mode, as NumPy (None when it has none).

    Gaussian noise and dropout act pixel by pixel, so the layer takes the images in any shape. The
    run's pictures, ``aetrain-evaluate``'s denoising figures and ``aetrain-look`` all corrupt this way.
    """
    noise = find_noise_layer(model)
    if noise is None:
        return None
    return keras.ops.convert_to_numpy(noise(images, training=True))
