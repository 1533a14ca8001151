"""The seed's convolutional autoencoder: conv+pool down to a global-average coding, transposed convs up.

Its sizes come from the data spec: the encoder halves each side once per stage (28 -> 14 -> 7 -> 3
on Fashion-MNIST, 32 -> 16 -> 8 -> 4 on CIFAR-10, 8 -> 4 -> 2 -> 1 on the digits); the decoder starts
from the encoder's last grid and doubles it back once per stage, adding the odd row where a pooling
dropped one (3 -> 7), and ends in the image's channels.
"""

from __future__ import annotations

import keras

from aetrain.config import RunConfig
from aetrain.config.data_spec import spec_for
from aetrain.models.dense import OUTPUT_DTYPE
from aetrain.models.noise import build_noise_layer
from aetrain.models.sparsity import build_sparsity_layers, coding_activation
from aetrain.models.xla_cpu_layers import PatchConv2D, PatchConv2DTranspose, ReshapeMaxPool2D

KERNEL = 3  # with stride 2 and valid padding, s -> 2s + 1 (3 -> 7): the decoder's sizes depend on it


def encoder_grids(height: int, width: int, stages: int) -> list[tuple[int, int]]:
    """The feature-map size after each 2x2 max-pooling (floor), from the image's own size first."""
    grids = [(height, width)]
    for _ in range(stages):
        grids.append((grids[-1][0] // 2, grids[-1][1] // 2))
    return grids


def decoder_paddings(grids: list[tuple[int, int]]) -> tuple[list[str], tuple[int, int]]:
    """Per transposed conv, "same" (s -> 2s) or "valid" (s -> 2s + 1), and the rows and columns to
    crop at the end: a stage is "valid" where a side needs the odd row back; when only one side
    does, the other grows one too many and is cropped once at the end."""
    paddings, size = [], grids[-1]
    for target in reversed(grids[:-1]):
        odd = any(2 * s < t for s, t in zip(size, target, strict=True))
        paddings.append("valid" if odd else "same")
        size = tuple(2 * s + 1 if odd else 2 * s for s in size)
    height, width = grids[0]
    return paddings, (size[0] - height, size[1] - width)


def build_conv_stages(cfg: RunConfig) -> list[keras.layers.Layer]:
    """Reshape -> [noise] -> (Conv2D + MaxPool) per filter count: the maps both conv encoders start from."""
    variant = cfg.variant
    spec = spec_for(cfg.data)
    layers = [keras.layers.Reshape([spec.height, spec.width, spec.channels])]
    noise = build_noise_layer(cfg.noise, cfg.seed)
    if noise is not None:
        layers.append(noise)
    for filters in variant.encoder_filters:
        layers += [
            PatchConv2D(filters, KERNEL, padding="same", activation=variant.activation),
            ReshapeMaxPool2D(pool_size=2),
        ]
    return layers


def build_conv_encoder(cfg: RunConfig) -> keras.Sequential:
    """Conv stages -> Conv2D(latent_size) -> GlobalAvgPool -> [sparsity]."""
    variant = cfg.variant
    layers = [keras.Input(shape=spec_for(cfg.data).image_shape), *build_conv_stages(cfg)]
    layers += [
        PatchConv2D(
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
    """Dense(grid*C) -> Reshape -> ConvT per stage (last: the image's channels) -> [crop] -> Reshape.

    On Fashion-MNIST: Dense(3*3*C) -> ConvT(valid, 3->7) -> ConvT(same, 7->14) -> ConvT(1, 14->28).
    """
    variant = cfg.variant
    spec = spec_for(cfg.data)
    grids = encoder_grids(spec.height, spec.width, len(variant.encoder_filters))
    start = variant.decoder_start_channels
    layers = [
        keras.Input(shape=(cfg.latent_size,)),
        keras.layers.Dense(grids[-1][0] * grids[-1][1] * start),
        keras.layers.Reshape((*grids[-1], start)),
        *transposed_conv_stages(cfg, grids),
    ]
    return keras.Sequential(layers, name="decoder")


def transposed_conv_stages(cfg: RunConfig, grids: list[tuple[int, int]]) -> list[keras.layers.Layer]:
    """ConvT per ``variant.decoder_filters`` entry, a last ConvT to the image's channels, [crop],
    Reshape: from the encoder's last grid (``grids[-1]``) back to the image, any conv decoder's way up."""
    variant = cfg.variant
    spec = spec_for(cfg.data)
    paddings, (crop_rows, crop_columns) = decoder_paddings(grids)
    layers = []
    for filters, padding in zip(variant.decoder_filters, paddings[:-1], strict=True):
        layers.append(
            PatchConv2DTranspose(filters, KERNEL, strides=2, activation=variant.activation, padding=padding)
        )
    layers.append(
        PatchConv2DTranspose(
            spec.channels,
            KERNEL,
            strides=2,
            padding=paddings[-1],
            activation=variant.output_activation,
            dtype=OUTPUT_DTYPE,
        )
    )
    if crop_rows or crop_columns:
        layers.append(keras.layers.Cropping2D(((0, crop_rows), (0, crop_columns)), dtype=OUTPUT_DTYPE))
    layers.append(keras.layers.Reshape(spec.image_shape, dtype=OUTPUT_DTYPE))
    return layers


def build_conv_autoencoder(cfg: RunConfig) -> keras.Sequential:
    return keras.Sequential(
        [keras.Input(shape=spec_for(cfg.data).image_shape), build_conv_encoder(cfg), build_conv_decoder(cfg)],
        name="conv_autoencoder",
    )
