"""beta-TCVAE (Chen et al., 2018, "Isolating Sources of Disentanglement in Variational Autoencoders"):
the dense VAE's layers, with its KL term split into three and the total correlation weighted apart.

For codings z ~ q(z|x) and the prior p(z) = N(0, I), the KL term of the ELBO, averaged over the data,
is the sum of (the paper's eq. 2)

    index-code mutual information   MI   = E[log q(z|x) - log q(z)]
    total correlation               TC   = E[log q(z) - sum_d log q(z_d)]
    dimension-wise KL               dwKL = E[sum_d log q(z_d) - log p(z_d)]

with q(z) the aggregate posterior over the N training images. Both log q(z) and log q(z_d) are
estimated on each minibatch of M images by minibatch-weighted sampling (the paper's section 4.1):

    log q(z_i)   ~ logsumexp_j log q(z_i | x_j)         - log(N M)
    log q(z_id)  ~ logsumexp_j log q(z_id | x_j)        - log(N M)

over the batch's images j (i included), each log q a diagonal Gaussian's log density. The loss is

    MSE(x, x') + (MI + beta * TC + dwKL) / pixels

(alpha = gamma = 1; divided by the pixels because the reconstruction is a per-pixel MSE, as the VAE's
latent loss is). With beta = 1 it is the VAE's loss with a one-sample KL estimate: the three parts add
up to E[log q(z|x) - log p(z)] whatever N. N only shifts each part by a constant (MI by log(NM), TC by
(D - 1) log(NM), dwKL by -D log(NM), D the latent size), so it changes the parts reported and never a
gradient; the builder sets it from the training split the config implies (:func:`training_images`).

The three parts are reported (nats per image) as the metrics ``mutual_info``, ``total_correlation``
and ``dimwise_kl``, and on the test images in metrics.json. The VAE's figures, sampling from N(0, I),
evaluation and export are its family's (aetrain.models.variational).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aetrain.config.checks import require
from aetrain.config.data_spec import spec_for
from aetrain.config.registry import declare
from aetrain.config.variants import VariationalVariant, check_hidden_units
from aetrain.models.variational import VariationalFamily

#: N where the config does not imply it (a folder of one's own images with no data.limit): it only
#: shifts the reported parts by constants (see the module's docstring).
UNKNOWN_DATASET_SIZE = 10_000
PARTS = ("mutual_info", "total_correlation", "dimwise_kl")


@dataclass
class BetaTCVAEVariant(VariationalVariant):
    """The dense VAE's layers (``hidden_units``, mirrored by the decoder) trained with the KL term
    split into mutual information, total correlation (weighted by ``beta``) and dimension-wise KL."""

    name: str = "beta_tcvae"
    hidden_units: list[int] = field(default_factory=lambda: [150, 100])
    activation: str = "selu"
    output_activation: str = "sigmoid"
    beta: float = 6.0

    def check(self, run) -> None:
        super().check(run)  # activation, output_activation, latent_loss, beta >= 0, kl_warmup_epochs
        check_hidden_units(self.hidden_units)
        require(
            self.kl_warmup_epochs == 0,
            "variant.kl_warmup_epochs",
            self.kl_warmup_epochs,
            "0 (beta_tcvae trains with its full weights from the first step)",
            "The KL warm-up ramps the VAE's single latent loss; beta_tcvae weighs three terms of its own.",
        )


def training_images(data_cfg: Any) -> int:
    """The size of the training split ``data_cfg`` implies: the data set's training images (after
    ``data.test_size`` where the test images are drawn from them) capped by ``data.limit``, less
    ``data.val_size`` (aetrain.data.splits). The files are not read: a folder of one's own images
    has no known size, so there it is ``data.limit`` less the validation images, or
    UNKNOWN_DATASET_SIZE with no limit.
    """
    from aetrain.data.splits import resolve_size

    spec = spec_for(data_cfg)
    limit = getattr(data_cfg, "limit", None)
    if spec.train_images is None:
        if limit is None:
            return UNKNOWN_DATASET_SIZE
        pool = limit
    else:
        pool = spec.train_images
        if not spec.has_test_split:
            pool -= resolve_size(data_cfg.test_size, pool)
    kept = pool if limit is None else min(limit, pool)
    return max(1, kept - resolve_size(data_cfg.val_size, kept))


def tc_decomposition(mean, log_var, codings, dataset_size: float):
    """(MI, TC, dimension-wise KL), each averaged over the batch, in nats: the minibatch-weighted
    sampling estimates of the module's docstring for the codings ``codings`` (M, D) drawn from the
    diagonal Gaussians (``mean``, ``log_var``), out of a data set of ``dataset_size`` images.

    Their sum is the batch mean of log q(z_i|x_i) - log p(z_i), the one-sample KL estimate.
    """
    from keras import ops

    mean, log_var, z = (ops.cast(value, "float32") for value in (mean, log_var, codings))
    log_two_pi = math.log(2.0 * math.pi)
    batch = ops.cast(ops.shape(z)[0], "float32")
    log_nm = ops.log(batch * float(dataset_size))
    # log q(z_id | x_j) for every pair (i, j) of the batch: (M, M, D)
    pairwise = -0.5 * (
        log_two_pi
        + log_var[None, :, :]
        + ops.square(z[:, None, :] - mean[None, :, :]) * ops.exp(-log_var[None, :, :])
    )
    log_q_z_given_x = ops.sum(
        -0.5 * (log_two_pi + log_var + ops.square(z - mean) * ops.exp(-log_var)), axis=-1
    )
    log_q_z = ops.logsumexp(ops.sum(pairwise, axis=-1), axis=1) - log_nm
    log_q_marginals = ops.sum(ops.logsumexp(pairwise, axis=1) - log_nm, axis=-1)
    log_p_z = ops.sum(-0.5 * (log_two_pi + ops.square(z)), axis=-1)
    mutual_info = ops.mean(log_q_z_given_x - log_q_z)
    total_correlation = ops.mean(log_q_z - log_q_marginals)
    dimwise_kl = ops.mean(log_q_marginals - log_p_z)
    return mutual_info, total_correlation, dimwise_kl


@functools.cache
def keras_objects() -> dict[str, type]:
    """The family's Keras layer, defined (and registered) on the first call: declaring the family
    loads no TensorFlow."""
    import keras
    from keras import ops

    from aetrain.models.term_reporting import TermLayer

    @keras.saving.register_keras_serializable(package="aetrain")
    class TotalCorrelationLoss(TermLayer):
        """Adds ``(MI + beta * TC + dimension-wise KL) / pixels`` of the batch (:func:`tc_decomposition`)
        to the model's loss, reports the three parts (nats per image) as metrics, and passes
        ``(mean, log_var, codings)`` through.

        ``dataset_size`` is the N of minibatch-weighted sampling (the training images); it only
        shifts the parts reported by constants.
        """

        def __init__(self, dataset_size: int, beta: float = 6.0, pixels: int = 1, **kwargs):
            super().__init__(**kwargs)
            if dataset_size < 1:
                raise ValueError(f"dataset_size must be >= 1, got {dataset_size}")
            if beta < 0:
                raise ValueError(f"beta must be >= 0, got {beta}")
            if pixels < 1:
                raise ValueError(f"pixels must be >= 1, got {pixels}")
            self.dataset_size = int(dataset_size)
            self.beta = float(beta)
            self.pixels = int(pixels)
            self.trackers = {part: keras.metrics.Mean(name=part) for part in PARTS}

        def call(self, inputs):
            mean, log_var, codings = inputs
            parts = tc_decomposition(mean, log_var, codings, self.dataset_size)
            mutual_info, total_correlation, dimwise_kl = parts
            self.add_loss((mutual_info + self.beta * total_correlation + dimwise_kl) / self.pixels)
            self.report(
                dict(zip(PARTS, parts, strict=True)), batch_size=ops.cast(ops.shape(mean)[0], "float32")
            )
            return mean, log_var, codings

        def compute_output_shape(self, input_shape):
            return tuple(input_shape)

        def get_config(self):
            return {
                **super().get_config(),
                "dataset_size": self.dataset_size,
                "beta": self.beta,
                "pixels": self.pixels,
            }

    return {"TotalCorrelationLoss": TotalCorrelationLoss}


def build_beta_tcvae(cfg) -> Any:
    """Flatten -> [noise] -> Dense(hidden...) -> (mean, log_var) -> Sampling -> TotalCorrelationLoss
    | Dense(hidden..., reversed) -> the image."""
    import keras

    from aetrain.models.dense import build_dense_decoder, dense_trunk
    from aetrain.models.vae import Sampling, assemble_vae, gaussian_head

    variant, spec = cfg.variant, spec_for(cfg.data)
    inputs = keras.Input(shape=spec.image_shape)
    x = inputs
    for layer in dense_trunk(cfg):
        x = layer(x)
    mean, log_var = gaussian_head(cfg, x)
    codings = Sampling(seed=cfg.seed, name="codings", dtype="float32")([mean, log_var])
    loss = keras_objects()["TotalCorrelationLoss"](
        training_images(cfg.data),
        variant.beta,
        spec.pixels,
        name="total_correlation_loss",
        dtype="float32",
    )
    encoder = keras.Model(inputs, list(loss([mean, log_var, codings])), name="encoder")
    decoder = build_dense_decoder(cfg, list(reversed(variant.hidden_units)))
    return assemble_vae(encoder, decoder, "beta_tcvae")


def parts_on_images(model, images: np.ndarray, batch_size: int, seed: int) -> dict[str, float]:
    """The three parts on ``images``, in minibatches of ``batch_size`` (the training's M) with the
    model's N, one coding per image drawn from q(z|x) by a NumPy generator seeded with ``seed``;
    each part averaged over the images."""
    from keras import ops

    encoder = model.get_layer("encoder")
    dataset_size = encoder.get_layer("total_correlation_loss").dataset_size
    mean, log_var, _ = encoder.predict(images, batch_size=512, verbose=0)
    rng = np.random.default_rng(seed)
    codings = mean + np.exp(0.5 * log_var) * rng.standard_normal(mean.shape).astype(np.float32)
    sums = dict.fromkeys(PARTS, 0.0)
    for start in range(0, len(images), batch_size):
        batch = slice(start, start + batch_size)
        parts = tc_decomposition(mean[batch], log_var[batch], codings[batch], dataset_size)
        for part, value in zip(PARTS, parts, strict=True):
            sums[part] += float(ops.convert_to_numpy(value)) * len(mean[batch])
    return {part: total / len(images) for part, total in sums.items()}


@dataclass(frozen=True)
class TotalCorrelationFamily(VariationalFamily):
    """The VAE's family (figures, N(0, I) samples, evaluation, export) with beta-TCVAE's loss terms,
    no KL warm-up, and the three KL parts on the test images."""

    def register_keras_objects(self) -> None:
        keras_objects()

    def loss_terms(self, cfg) -> list[str]:
        beta = cfg.variant.beta
        middle = [f"{beta:g} x total correlation"] if beta else []
        return ["mutual information", *middle, "dimension-wise KL"]

    def training_callbacks(self, cfg, steps_per_epoch: int) -> list:
        return []

    def test_figures(self, model, images: np.ndarray, cfg) -> dict[str, Any]:
        """The VAE's (latent_loss: the exact KL per image; active_units) and the three parts, estimated
        as in training (minibatches of ``trainer.batch_size``, codings drawn with the run's seed)."""
        figures = super().test_figures(model, images, cfg)
        return {**figures, **parts_on_images(model, images, cfg.trainer.batch_size, cfg.seed)}


TOTAL_CORRELATION = TotalCorrelationFamily()

declare("variant", "beta_tcvae", BetaTCVAEVariant, build=build_beta_tcvae, family=TOTAL_CORRELATION)
