"""IWAE (Burda et al., 2016, "Importance Weighted Autoencoders"): the dense VAE's layers trained on
the importance-weighted bound with ``k`` samples instead of the ELBO.

Loss per image, in nats per pixel (divided by the image's pixel count, 784 on Fashion-MNIST):

    -log (1/k sum_i p(x|z_i) p(z_i) / q(z_i|x)),   z_1..z_k ~ q(z|x) = N(mean, exp(log_var))

with p(z) = N(0, I) and p(x|z) the Bernoulli likelihood of the pixels read as probabilities (the
decoder's output clipped to [1e-7, 1-1e-7]), the likelihood aetrain-evaluate's ``vae.iwae_nats``
measures (aetrain.models.vae_health). The log-mean-exp is taken stably. k = 1 is the one-sample ELBO
(with a Monte Carlo KL); a larger k is a tighter bound on log p(x), which keeps more latent units
active. There is no beta and no warm-up: the bound weighs the prior and the posterior as they are.
The model's output is the reconstruction of the sampled codings (the mean at inference); everything
else is the variational family's (its figures, N(0, I) samples, the exported posterior).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from aetrain.config.checks import require
from aetrain.config.registry import declare
from aetrain.config.variants import Variant, check_hidden_units
from aetrain.models import vae_health
from aetrain.models.variational import VariationalFamily

MAX_K = 5000  # importance samples per image: the decoder runs on k times the batch
CLIP = 1e-7  # the Bernoulli likelihood's clip, as vae_health.bernoulli_negative_log_likelihood's
BATCH = 512


@dataclass
class IWAEVariant(Variant):
    """The dense VAE's layers (``hidden_units``, mirrored by the decoder) and ``k`` importance samples
    per image in the training objective."""

    name: str = "iwae"
    takes_sparsity: ClassVar[bool] = False  # Gaussian codings, regularised by the bound itself
    hidden_units: list[int] = field(default_factory=lambda: [150, 100])
    activation: str = "selu"
    output_activation: str = "sigmoid"
    k: int = 5

    def check(self, run) -> None:
        super().check(run)
        check_hidden_units(self.hidden_units)
        require(
            isinstance(self.k, int) and not isinstance(self.k, bool) and 1 <= self.k <= MAX_K,
            "variant.k",
            self.k,
            f"an integer from 1 to {MAX_K} (1: the VAE's one-sample ELBO; the paper's 5 or 50)",
            "The decoder runs on k samples of each image's codings, so each step costs about k "
            "decoder passes.",
        )
        require(
            self.output_activation == "sigmoid",
            "variant.output_activation",
            self.output_activation,
            "sigmoid",
            "The bound's Bernoulli likelihood reads the decoder's outputs as pixel probabilities.",
        )


def log_normal(z, mean, log_var):
    """log N(z; mean, diag(exp(log_var))), summed over the last axis (keras.ops, broadcasting)."""
    from keras import ops

    return -0.5 * ops.sum(
        math.log(2.0 * math.pi) + log_var + ops.square(z - mean) * ops.exp(-log_var),
        axis=-1,
    )


def importance_weighted_bound(images, mean, log_var, z, decoded, k: int):
    """log (1/k sum_i p(x|z_i) p(z_i) / q(z_i|x)) per image, in nats (keras.ops).

    ``images``: (batch, ...) pixels in [0, 1]; ``mean``, ``log_var``: (batch, latent); ``z``: (k *
    batch, latent), sample i of image b at row i * batch + b (as ImportanceSamples draws them);
    ``decoded``: the decoder's outputs for ``z``, (k * batch, ...). Returns (batch,).
    """
    from keras import ops

    batch = ops.shape(mean)[0]
    x = ops.reshape(ops.cast(images, "float32"), (1, batch, -1))
    y = ops.clip(ops.reshape(ops.cast(decoded, "float32"), (k, batch, -1)), CLIP, 1.0 - CLIP)
    log_likelihood = ops.sum(x * ops.log(y) + (1.0 - x) * ops.log(1.0 - y), axis=-1)  # (k, batch)
    z = ops.reshape(ops.cast(z, "float32"), (k, batch, -1))
    mean = ops.expand_dims(ops.cast(mean, "float32"), 0)
    log_var = ops.expand_dims(ops.cast(log_var, "float32"), 0)
    log_prior = log_normal(z, ops.zeros_like(z), ops.zeros_like(z))
    log_posterior = log_normal(z, mean, log_var)
    log_weights = log_likelihood + log_prior - log_posterior  # (k, batch)
    return ops.logsumexp(log_weights, axis=0) - math.log(k)


@functools.cache
def keras_objects() -> dict[str, type]:
    """The family's Keras layers, defined (and registered) on the first call: declaring the family
    loads no TensorFlow."""
    import keras
    from keras import ops

    from aetrain.models.term_reporting import TermLayer

    @keras.saving.register_keras_serializable(package="aetrain")
    class ImportanceSamples(keras.layers.Layer):
        """``k`` draws z = mean + exp(log_var / 2) * eps per image, eps ~ N(0, I), always (training or
        not: the bound is the validation loss too), as one (k * batch, latent) tensor: draw i of
        image b at row i * batch + b."""

        def __init__(self, k: int, seed: int | None = None, **kwargs):
            super().__init__(**kwargs)
            if k < 1:
                raise ValueError(f"k must be >= 1, got {k}")
            self.k = int(k)
            self.seed = seed
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, inputs):
            mean, log_var = (ops.cast(t, "float32") for t in inputs)
            shape = ops.shape(mean)
            epsilon = keras.random.normal((self.k, shape[0], shape[1]), seed=self.seed_generator)
            z = ops.expand_dims(mean, 0) + ops.expand_dims(ops.exp(0.5 * log_var), 0) * epsilon
            return ops.reshape(z, (-1, shape[1]))

        def compute_output_shape(self, input_shape):
            mean_shape = input_shape[0]
            batch = None if mean_shape[0] is None else self.k * mean_shape[0]
            return (batch, mean_shape[-1])

        def get_config(self):
            return {**super().get_config(), "k": self.k, "seed": self.seed}

    @keras.saving.register_keras_serializable(package="aetrain")
    class ImportanceWeightedBound(TermLayer):
        """Adds the negative importance-weighted bound, batch mean per image divided by the pixel
        count (nats per pixel), to the model's loss; reports it per image as ``iwae_bound``; returns
        the reconstruction it is given.

        Inputs: (images, mean, log_var, z, decoded z, reconstruction), z from ImportanceSamples.
        """

        def __init__(self, k: int, **kwargs):
            super().__init__(**kwargs)
            if k < 1:
                raise ValueError(f"k must be >= 1, got {k}")
            self.k = int(k)
            self.bound_tracker = keras.metrics.Mean(name="iwae_bound")

        def call(self, inputs):
            images, mean, log_var, z, decoded, reconstruction = inputs
            negative_bound = -importance_weighted_bound(images, mean, log_var, z, decoded, self.k)
            pixels = math.prod(images.shape[1:])  # static: the image's shape is known
            per_image = ops.mean(negative_bound)
            self.add_loss(per_image / pixels)
            self.report({"iwae_bound": per_image}, batch_size=ops.cast(ops.shape(mean)[0], "float32"))
            return reconstruction

        def compute_output_shape(self, input_shape):
            return input_shape[-1]

        def get_config(self):
            return {**super().get_config(), "k": self.k}

    return {"ImportanceSamples": ImportanceSamples, "ImportanceWeightedBound": ImportanceWeightedBound}


def build_iwae_encoder(cfg) -> Any:
    """Flatten -> [noise] -> Dense(hidden...) -> (mean, log_var) -> Sampling: the dense VAE's encoder
    without its latent-loss layer (the bound holds the prior's term)."""
    import keras

    from aetrain.config.data_spec import spec_for
    from aetrain.models.dense import dense_trunk
    from aetrain.models.vae import Sampling, gaussian_head

    inputs = keras.Input(shape=spec_for(cfg.data).image_shape)
    x = inputs
    for layer in dense_trunk(cfg):
        x = layer(x)
    mean, log_var = gaussian_head(cfg, x)
    codings = Sampling(seed=cfg.seed, name="codings", dtype="float32")([mean, log_var])
    return keras.Model(inputs, [mean, log_var, codings], name="encoder")


def build_iwae(cfg) -> Any:
    """image -> encoder -> k importance samples -> decoder -> the bound (the loss); the output is the
    decoding of the encoder's codings (sampled while training, the mean at inference)."""
    import keras

    from aetrain.config.data_spec import spec_for
    from aetrain.models.dense import build_dense_decoder
    from aetrain.models.term_reporting import TermReportingModel

    layers = keras_objects()
    k = cfg.variant.k
    encoder = build_iwae_encoder(cfg)
    decoder = build_dense_decoder(cfg, list(reversed(cfg.variant.hidden_units)))
    images = keras.Input(shape=spec_for(cfg.data).image_shape)
    mean, log_var, codings = encoder(images)
    # a seed other than the Sampling layer's, so that the two draw different noise
    z = layers["ImportanceSamples"](
        k, seed=(cfg.seed + 1) % 2**32, name="importance_samples", dtype="float32"
    )([mean, log_var])
    decoded = decoder(z)
    reconstruction = decoder(codings)
    bound = layers["ImportanceWeightedBound"](k, name="importance_weighted_bound", dtype="float32")
    outputs = bound([images, mean, log_var, z, decoded, reconstruction])
    return TermReportingModel(images, outputs, name="importance_weighted_autoencoder")


@dataclass(frozen=True)
class ImportanceWeightedFamily(VariationalFamily):
    """The variational family trained on the importance-weighted bound alone (no compiled MSE): the
    VAE's figures, evaluation, N(0, I) samples and exported posterior, without beta or its warm-up."""

    compiled_loss: str | None = None
    collapse_remedy: str = (
        "Train longer or with more importance samples (a larger variant.k), or a smaller latent_size."
    )
    explosion_remedy: str = "Lower trainer.learning_rate and train more steps."

    def register_keras_objects(self) -> None:
        keras_objects()

    def loss_terms(self, cfg) -> list[str]:
        return [f"importance-weighted bound, k={cfg.variant.k}"]

    def training_callbacks(self, cfg, steps_per_epoch: int) -> list:
        return []  # no beta to warm up

    def test_figures(self, model, images: np.ndarray, cfg) -> dict[str, Any]:
        """The mean KL(q(z|x) || N(0, I)) per image (nats) and the active units."""
        mean, log_var, _ = model.get_layer("encoder").predict(images, batch_size=BATCH, verbose=0)
        per_image = vae_health.latent_loss_per_image(mean.astype(np.float64), log_var.astype(np.float64))
        return {"latent_loss": float(np.mean(per_image)), "active_units": vae_health.active_units(mean)}


IMPORTANCE_WEIGHTED = ImportanceWeightedFamily()

declare("variant", "iwae", IWAEVariant, build=build_iwae, family=IMPORTANCE_WEIGHTED)
