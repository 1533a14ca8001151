"""Input corruption for denoising autoencoders: active while training only, as Keras layers do."""

from __future__ import annotations

import math

import keras

from aetrain.config import DropoutNoise, GaussianNoise, Noise, NoNoise
from aetrain.config.registry import build

NOISE_LAYER_NAME = "noise"  # a noise's builder names its layer so: pictures and evaluation find it


def no_noise_layer(cfg: NoNoise, seed: int) -> None:
    return None


def gaussian_noise_layer(cfg: GaussianNoise, seed: int) -> keras.layers.Layer:
    return BoxMullerGaussianNoise(cfg.stddev, seed=seed, name=NOISE_LAYER_NAME)


@keras.saving.register_keras_serializable(package="aetrain")
class BoxMullerGaussianNoise(keras.layers.GaussianNoise):
    """Keras's GaussianNoise (the same settings, seed generator and N(0, stddev²) noise), drawn by the
    Box-Muller transform from :func:`noise_uniform` numbers: TensorFlow's normal sampler on CPU costs
    about three times as much per number, and in a small dense denoiser it was the largest part of a
    training step.
    """

    def call(self, inputs, training=False):
        if not (training and self.stddev > 0):
            return inputs
        ops = keras.ops
        shape = ops.shape(inputs)
        count = ops.size(inputs)
        pairs = (count + 1) // 2
        # (0, 1]: log of the first of each pair is finite
        uniform = 1.0 - noise_uniform((2, pairs), self.seed_generator)
        radius = ops.sqrt(-2.0 * ops.log(uniform[0])) * self.stddev
        angle = (2.0 * math.pi) * uniform[1]
        noise = ops.concatenate([radius * ops.cos(angle), radius * ops.sin(angle)])[:count]
        return inputs + ops.cast(ops.reshape(noise, shape), self.compute_dtype)

    def keras_equivalent(self) -> keras.layers.Layer:
        return keras.layers.GaussianNoise.from_config(self.get_config())


def dropout_noise_layer(cfg: DropoutNoise, seed: int) -> keras.layers.Layer:
    return BitGeneratorDropout(cfg.rate, seed=seed, name=NOISE_LAYER_NAME)


@keras.saving.register_keras_serializable(package="aetrain")
class BitGeneratorDropout(keras.layers.Dropout):
    """Keras's Dropout (the same settings and seed generator: each input zeroed with probability
    ``rate``, the rest scaled by 1 / (1 - rate)), its mask drawn from :func:`noise_uniform`."""

    def call(self, inputs, training=False):
        if not (training and self.rate > 0):
            return inputs
        if keras.config.backend() != "jax":
            return super().call(inputs, training=training)
        keep = noise_uniform(keras.ops.shape(inputs), self.seed_generator) >= self.rate
        return keras.ops.where(keep, inputs / (1.0 - self.rate), keras.ops.zeros_like(inputs))

    def keras_equivalent(self) -> keras.layers.Layer:
        return keras.layers.Dropout.from_config(self.get_config())


def noise_uniform(shape, seed_generator: keras.random.SeedGenerator):
    """Uniform float32 numbers in [0, 1) for a noise layer, from its seed generator: one fresh seed per
    call, as ``keras.random.uniform`` takes.

    On JAX they come from XLA's own threefry bit generator (``lax.rng_bit_generator``): Keras's JAX
    random functions go through ``jax.random``'s threefry, which on a CPU costs 2.9 times as much per
    number, a seventh of a small dense denoiser's training step (docs/performance.md). Elsewhere they
    are Keras's.
    """
    if keras.config.backend() != "jax":
        return keras.random.uniform(shape, dtype="float32", seed=seed_generator)
    from jax import lax
    from jax import numpy as jnp

    key = jnp.concatenate([seed_generator.next().astype("uint32"), jnp.zeros(2, "uint32")])
    _, bits = lax.rng_bit_generator(
        key, tuple(shape), dtype=jnp.uint32, algorithm=lax.RandomAlgorithm.RNG_THREE_FRY
    )
    return (bits >> 8).astype(jnp.float32) * (1.0 / (1 << 24))  # the top 24 bits: every float32 exact


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
