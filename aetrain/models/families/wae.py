"""WAE-MMD (Tolstikhin et al., 2018, "Wasserstein Auto-Encoders"): a deterministic dense encoder whose
codings are pulled towards the prior N(0, I) by a maximum mean discrepancy (MMD) penalty with the
inverse multiquadratic (IMQ) kernel, and a dense decoder that mirrors it.

Loss per batch (the paper's eq. 4 with c(x, y) = ||x - y||^2, divided by the pixels like the MSE):

    MSE(x, x') + penalty_weight * MMD^2(codings of the batch, as many draws of N(0, I))

The MMD compares the batch's codings as a whole with the prior (not each image's coding, as a VAE's
KL term does), so the codings may stay apart from each other while their spread matches N(0, I). New
images are decodings of N(0, I) draws. The prior draws of the penalty come from the layer's own
``keras.random.SeedGenerator`` (saved with a checkpoint's seed states, so a resumed run goes on with
the same draws).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from aetrain.config.checks import is_finite_at_least, require
from aetrain.config.registry import declare
from aetrain.config.variants import Variant, check_hidden_units
from aetrain.models.family import Family
from aetrain.models.variational import decode_standard_normal

BATCH = 512
KERNELS = ("imq",)
#: The IMQ kernel's widths, as multiples of C = 2 * latent_size * prior variance: the paper's code sums
#: the kernels of all these (a sum of positive definite kernels is one), so that no single width has
#: to fit both the codings' early spread and the prior's.
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
#: The test figure compares the first this many test codings with as many prior draws (its kernel
#: matrices are this size squared), drawn by a NumPy generator seeded with FIGURE_SEED.
FIGURE_CODINGS = 2000
FIGURE_SEED = 0


@dataclass
class WAEVariant(Variant):
    """Dense encoder (``hidden_units``, linear codings) and its mirror as the decoder, trained on the
    per-pixel MSE plus ``penalty_weight`` times the MMD between the batch's codings and N(0, I) draws.

    ``penalty_weight`` is the paper's lambda on the per-pixel scale: per image (the squared error
    summed over the P pixels, the paper's c(x, y) = ||x - y||^2) the objective is
    ``||x - x'||^2 + P * penalty_weight * MMD``, so lambda = 784 * penalty_weight on Fashion-MNIST.
    The paper's code weighs 0.05 * ||x - x'||^2 against lambda = 10 (lambda = 200 on the unscaled
    squared error), which is penalty_weight = 10 / (0.05 * 784) = 0.255 here: the default, 0.25.
    How the weight was chosen: docs/models.md.
    """

    name: str = "wae"
    # its codings must spread like N(0, I): an activity penalty would pull them elsewhere
    takes_sparsity: ClassVar[bool] = False
    hidden_units: list[int] = field(default_factory=lambda: [150, 100])
    activation: str = "selu"
    output_activation: str = "sigmoid"
    kernel: str = "imq"
    penalty_weight: float = 0.25

    def check(self, run) -> None:
        super().check(run)
        check_hidden_units(self.hidden_units)
        require(
            self.kernel in KERNELS,
            "variant.kernel",
            self.kernel,
            f"one of {list(KERNELS)}",
            "The MMD penalty's kernel: imq, the inverse multiquadratic C / (C + ||x - y||^2).",
        )
        require(
            is_finite_at_least(self.penalty_weight, 0),
            "variant.penalty_weight",
            self.penalty_weight,
            "a number >= 0 (0: a plain autoencoder with linear codings)",
        )


def mmd_imq(codings, prior_samples, scale: float = 1.0, kernel_scales=IMQ_SCALES):
    """The unbiased (U-statistic) estimate of MMD^2 between ``codings`` (n, d) and ``prior_samples``
    (m, d), with the IMQ kernel summed over ``kernel_scales`` (the paper's code sums all IMQ_SCALES):

        k(x, y) = sum_s C_s / (C_s + ||x - y||^2),   C_s = s * 2 * d * scale^2

        MMD^2 = 1/(n(n-1)) sum_{i != j} k(q_i, q_j) + 1/(m(m-1)) sum_{i != j} k(p_i, p_j)
                - 2/(n m) sum_{i, j} k(q_i, p_j)

    ``scale`` is the prior's standard deviation (N(0, scale^2 I); aetrain's prior is N(0, I)). The
    estimate is unbiased, so it can fall below 0 when the two samples come from one distribution. A
    sample of one has no pairs: its within-sample term counts 0.
    """
    from keras import ops

    q = ops.cast(codings, "float32")
    p = ops.cast(prior_samples, "float32")
    n = ops.cast(ops.shape(q)[0], "float32")
    m = ops.cast(ops.shape(p)[0], "float32")
    base = 2.0 * float(q.shape[-1]) * float(scale) ** 2

    def squared_distances(a, b):
        # ||a||^2 + ||b||^2 - 2 a.b, clipped: rounding can make it slightly negative
        return ops.maximum(
            ops.sum(ops.square(a), axis=1, keepdims=True)
            - 2.0 * ops.matmul(a, ops.transpose(b))
            + ops.transpose(ops.sum(ops.square(b), axis=1, keepdims=True)),
            0.0,
        )

    def kernel(distances):
        return sum(base * s / (base * s + distances) for s in kernel_scales)

    def off_diagonal_mean(k, size):
        return (ops.sum(k) - ops.sum(ops.diagonal(k))) / ops.maximum(size * (size - 1.0), 1.0)

    within_codings = off_diagonal_mean(kernel(squared_distances(q, q)), n)
    within_prior = off_diagonal_mean(kernel(squared_distances(p, p)), m)
    across = ops.sum(kernel(squared_distances(q, p))) / (n * m)
    return within_codings + within_prior - 2.0 * across


@functools.cache
def keras_objects() -> dict[str, type]:
    """The family's Keras layer, defined (and registered) on the first call: declaring the family
    loads no TensorFlow."""
    import keras
    from keras import ops

    from aetrain.models.term_reporting import TermLayer

    @keras.saving.register_keras_serializable(package="aetrain")
    class MMDPenalty(TermLayer):
        """Passes the codings through; adds ``weight * MMD^2`` between them and as many N(0, I) draws
        (from its own seed generator) to the model's loss, and reports the MMD^2 as the ``mmd`` metric.

        It adds the penalty in every mode, so ``val_loss`` is the objective the training minimizes.
        """

        def __init__(self, weight: float = 1.0, seed: int | None = None, **kwargs):
            super().__init__(**kwargs)
            if weight < 0:
                raise ValueError(f"weight must be >= 0, got {weight}")
            self.weight = float(weight)
            self.seed = seed
            self.seed_generator = keras.random.SeedGenerator(seed)
            self.mmd_tracker = keras.metrics.Mean(name="mmd")

        def call(self, inputs):
            codings = ops.cast(inputs, "float32")
            prior = keras.random.normal(ops.shape(codings), dtype="float32", seed=self.seed_generator)
            mmd = mmd_imq(codings, prior)
            self.add_loss(self.weight * mmd)
            self.report({"mmd": mmd}, batch_size=ops.cast(ops.shape(codings)[0], "float32"))
            return codings

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "weight": self.weight, "seed": self.seed}

    return {"MMDPenalty": MMDPenalty}


def build_wae(cfg) -> Any:
    """Flatten -> [noise] -> Dense(hidden...) -> Dense(latent_size, linear) -> MMDPenalty | the mirror."""
    import keras

    from aetrain.config.data_spec import spec_for
    from aetrain.models.dense import build_dense_decoder, dense_trunk
    from aetrain.models.term_reporting import TermReportingSequential

    variant, spec = cfg.variant, spec_for(cfg.data)
    layers = [keras.Input(shape=spec.image_shape), *dense_trunk(cfg)]
    # float32 under mixed precision (as a VAE's coding head): the MMD's distances need more than
    # bfloat16's 8 bits, and the codings are what the evaluation and generation read
    layers.append(keras.layers.Dense(cfg.latent_size, name="codings", dtype="float32"))
    # seed + 1: the noise layer's generator starts from cfg.seed, and the same seed would make the
    # prior draws a function of the noise's
    layers.append(
        keras_objects()["MMDPenalty"](
            variant.penalty_weight, seed=cfg.seed + 1, name="mmd_penalty", dtype="float32"
        )
    )
    encoder = keras.Sequential(layers, name="encoder")
    decoder = build_dense_decoder(cfg, list(reversed(variant.hidden_units)))
    return TermReportingSequential([keras.Input(shape=spec.image_shape), encoder, decoder], name="wae")


def codings_mmd(model, images: np.ndarray, seed: int, count: int = FIGURE_CODINGS) -> dict[str, Any]:
    """MMD^2 (all IMQ_SCALES) between the codings of the first ``count`` images and as many N(0, I)
    draws of a NumPy generator seeded by ``seed``: near 0 (it can dip below) when the codings spread
    like the prior the samples are drawn from."""
    import keras

    encoder = model.get_layer("encoder")
    codings = np.asarray(encoder.predict(images[:count], batch_size=BATCH, verbose=0), dtype="float32")
    prior = np.random.default_rng(seed).standard_normal(codings.shape).astype("float32")
    return {"mmd": float(keras.ops.convert_to_numpy(mmd_imq(codings, prior))), "mmd_codings": len(codings)}


@dataclass(frozen=True)
class WassersteinFamily(Family):
    """Reconstruction MSE plus the weighted MMD penalty; samples from N(0, I); reports how far the
    test codings are from the prior (MMD^2)."""

    samples_from_prior: bool = True

    def register_keras_objects(self) -> None:
        keras_objects()

    def loss_terms(self, cfg) -> list[str]:
        weight = cfg.variant.penalty_weight
        return [f"{weight:g} x MMD penalty"] if weight else []

    def test_figures(self, model, images: np.ndarray, cfg) -> dict[str, Any]:
        """``mmd``: MMD^2 between test codings and N(0, I) draws (fixed seed: comparable across runs)."""
        return codings_mmd(model, images, FIGURE_SEED)

    def evaluation_report(self, model, images: np.ndarray, *, seed: int, **_: Any) -> dict[str, Any]:
        """``wae``: MMD^2 between the codings of the images evaluated and N(0, I) draws seeded by ``seed``."""
        return {"wae": {**codings_mmd(model, images, seed), "kernel": "imq", "prior": "N(0, I)"}}

    def evaluation_rows(self, report: dict[str, Any]) -> list[tuple[str, str]]:
        wae = report.get("wae")
        if not wae:
            return []
        return [("MMD² to N(0, I)", f"{wae['mmd']:.4f} (IMQ, {wae['mmd_codings']:,} codings)")]

    def sample(self, model, count: int, latent_size: int, seed: int) -> np.ndarray:
        """Decodings of N(0, I) draws, as a VAE's (the same images for the same seed)."""
        return decode_standard_normal(model, count, latent_size, seed)

    def prior_description(self, latent_size: int) -> str:
        return f"N(0, I), {latent_size}-D"

    def export_encoder_outputs(self, encoder) -> Any:
        """The coding layer's output: the MMD penalty (a training term, an identity on the codings)
        is left out, so the served encoder holds Keras's layers only."""
        return encoder.get_layer("codings").output


WASSERSTEIN = WassersteinFamily()

declare("variant", "wae", WAEVariant, build=build_wae, family=WASSERSTEIN)
