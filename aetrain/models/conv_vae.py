"""Convolutional VAE: the conv autoencoder's stages and decoder around the VAE's Gaussian coding head."""

from __future__ import annotations

import keras

from aetrain.config import RunConfig
from aetrain.config.data_spec import spec_for
from aetrain.models.conv import build_conv_decoder, build_conv_stages
from aetrain.models.vae import assemble_vae, build_gaussian_codings


def build_conv_vae_encoder(cfg: RunConfig) -> keras.Model:
    """Conv stages (3x3 maps on Fashion-MNIST) -> Flatten -> (mean, log_var) -> LatentLoss -> Sampling.

    Flatten rather than the conv autoencoder's global average pooling: mean and log-variance are two
    separate linear read-outs of the same features, which Dense layers give directly.
    """
    inputs = keras.Input(shape=spec_for(cfg.data).image_shape)
    x = inputs
    for layer in build_conv_stages(cfg):
        x = layer(x)
    features = keras.layers.Flatten()(x)
    return keras.Model(inputs, build_gaussian_codings(cfg, features), name="encoder")


def build_conv_vae(cfg: RunConfig) -> keras.Model:
    return assemble_vae(build_conv_vae_encoder(cfg), build_conv_decoder(cfg), "conv_variational_autoencoder")
