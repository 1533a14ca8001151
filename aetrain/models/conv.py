"""The seed's convolutional autoencoder: conv+pool down to a global-average coding, transposed convs up."""

from __future__ import annotations

import keras

from aetrain.config import RunConfig
from aetrain.models.dense import IMAGE_SHAPE, OUTPUT_DTYPE
from aetrain.models.noise import build_noise_layer
from aetrain.models.sparsity import build_sparsity_layers, coding_activation

CODING_GRID = 3  # 28 -> 14 -> 7 -> 3 after three 2x2 poolings
KERNEL = 3  # with stride 2 and valid padding, 3 -> 7: the decoder's sizes depend on it


def build_conv_stages(cfg: RunConfig) -> list[keras.layers.Layer]:
    """Reshape -> [noise] -> (Conv2D + MaxPool) x3: the 3x3 feature maps both conv encoders start from."""
    variant = cfg.variant
    layers = [keras.layers.Reshape([*IMAGE_SHAPE, 1])]
    noise = build_noise_layer(cfg.noise, cfg.seed)
    if noise is not None:
        layers.append(noise)
    for filters in variant.encoder_filters:
        layers += [
            keras.layers.Conv2D(filters, KERNEL, padding="same", activation=variant.activation),
            keras.layers.MaxPool2D(pool_size=2),
        ]
    return layers


def build_conv_encoder(cfg: RunConfig) -> keras.Sequential:
    """Conv stages -> Conv2D(latent_size) -> GlobalAvgPool -> [sparsity]."""
    variant = cfg.variant
    layers = [keras.Input(shape=IMAGE_SHAPE), *build_conv_stages(cfg)]
    layers += [
        keras.layers.Conv2D(
            cfg.latent_size,
            KERNEL,
            padding="same",
            activation=coding_activation(cfg.sparsity, variant.activation),
        ),
        keras.layers.GlobalAvgPool2D(name="codings"),
    ]
    layers += build_sparsity_layers(cfg.sparsity)
    return keras.Sequential(layers, name="encoder")


def build_conv_decoder(cfg: RunConfig) -> keras.Sequential:
    """Dense(3*3*C) -> Reshape -> ConvT(valid, 3->7) -> ConvT(same, 7->14) -> ConvT(1, 14->28)."""
    variant = cfg.variant
    first, second = variant.decoder_filters
    start = variant.decoder_start_channels
    layers = [
        keras.Input(shape=(cfg.latent_size,)),
        keras.layers.Dense(CODING_GRID * CODING_GRID * start),
        keras.layers.Reshape((CODING_GRID, CODING_GRID, start)),
        keras.layers.Conv2DTranspose(first, KERNEL, strides=2, activation=variant.activation),
        keras.layers.Conv2DTranspose(
            second, KERNEL, strides=2, activation=variant.activation, padding="same"
        ),
        keras.layers.Conv2DTranspose(
            1, KERNEL, strides=2, padding="same", activation=variant.output_activation, dtype=OUTPUT_DTYPE
        ),
        keras.layers.Reshape(IMAGE_SHAPE, dtype=OUTPUT_DTYPE),
    ]
    return keras.Sequential(layers, name="decoder")


def build_conv_autoencoder(cfg: RunConfig) -> keras.Sequential:
    return keras.Sequential(
        [keras.Input(shape=IMAGE_SHAPE), build_conv_encoder(cfg), build_conv_decoder(cfg)],
        name="conv_autoencoder",
    )
