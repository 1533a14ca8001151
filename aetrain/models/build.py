"""Autoencoders built from a RunConfig. :func:`build_model` is the one door in.

Every model has two sub-models named ``encoder`` and ``decoder``; the builder is the one the
variant's declaration names (aetrain.config.variants, or a module outside aetrain). Importing this
module registers aetrain's custom layers with Keras (it imports every module that defines one, and asks
every declared family to register its own), so ``keras.models.load_model`` reloads any aetrain
checkpoint.
"""

from __future__ import annotations

import keras

import aetrain.models.dense
import aetrain.models.sparsity
import aetrain.models.vae
import aetrain.models.xla_cpu_layers  # noqa: F401 (these four define aetrain's custom layers: registered on import)
from aetrain.config import RunConfig
from aetrain.config.registry import build, names
from aetrain.models.family import family_named


def register_every_family() -> None:
    """Register the Keras classes of every declared family (those that keep theirs in functions)."""
    for variant in names("variant"):
        family_named(variant).register_keras_objects()


register_every_family()


def build_model(cfg: RunConfig) -> keras.Model:
    """The autoencoder the config names, built (weights created) and seeded."""
    family_named(cfg.variant.name).register_keras_objects()  # a family declared after this module loaded
    keras.utils.set_random_seed(cfg.seed)
    return build("variant", cfg.variant.name)(cfg)


def encode(model: keras.Model, images, batch_size: int = 512):
    """Codings of ``images`` (the VAE's mean codings) in the decoder's input shape, as NumPy."""
    encoder = model.get_layer("encoder")
    outputs = encoder.predict(images, batch_size=batch_size, verbose=0)
    return outputs[0] if isinstance(outputs, list) else outputs


def coding_vectors(model: keras.Model, images, batch_size: int = 512):
    """One flat vector of codings per image (a family whose codings are a grid, a VQ-VAE's, is
    flattened): what a linear probe, PCA or t-SNE reads."""
    codings = encode(model, images, batch_size)
    return codings.reshape(len(codings), -1)
