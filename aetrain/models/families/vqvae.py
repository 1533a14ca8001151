"""VQ-VAE (van den Oord et al., 2017, "Neural Discrete Representation Learning"): a conv encoder's
grid of vectors, each snapped to its nearest entry of a learned codebook, decoded by transposed convs.

Loss per batch (the paper's eq. 3, each term a per-element mean like the reconstruction MSE):

    MSE(x, x') + ||sg[z_e] - e||^2 + commitment_cost * ||z_e - sg[e]||^2

with ``sg`` the stop-gradient, ``z_e`` the encoder's output and ``e`` its nearest codebook entry. The
decoder sees ``z_e + sg[e - z_e]`` (the straight-through estimator): the forward pass uses ``e``, the
gradient flows to the encoder as if quantization were the identity. ``latent_size`` is the codebook
vectors' dimension; the codes lie on the encoder's last grid (7x7 on Fashion-MNIST with two stages).
It samples from the prior it is trained under: each grid position's code drawn uniformly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from aetrain.config.checks import (
    MAX_LAYERS,
    MAX_UNITS,
    are_layer_sizes,
    is_count,
    is_finite_at_least,
    require,
)
from aetrain.config.registry import declare
from aetrain.config.variants import Variant, check_decoder_filters, check_stages_fit_images
from aetrain.models.family import Family

BATCH = 512
#: How much the exported encoder sharpens its code scores into a one-hot choice: a gap of 1e-7
#: between the best two scores already leaves the runner-up a weight of exp(-100).
SHARPEN = 1e9
MAX_CODEBOOK = 65536


@dataclass
class VQVAEVariant(Variant):
    """Conv stages (``encoder_filters``; the decoder mirrors them with ``decoder_filters``) around a
    codebook of ``codebook_size`` vectors of ``latent_size`` numbers."""

    name: str = "vqvae"
    takes_sparsity: ClassVar[bool] = False  # its codes are codebook entries: no activation to penalize
    encoder_filters: list[int] = field(default_factory=lambda: [32, 64])
    decoder_filters: list[int] = field(default_factory=lambda: [32])
    activation: str = "relu"
    output_activation: str = "sigmoid"
    codebook_size: int = 64
    commitment_cost: float = 0.25

    def check(self, run) -> None:
        super().check(run)
        require(
            are_layer_sizes(self.encoder_filters),
            "variant.encoder_filters",
            self.encoder_filters,
            f"a list of 1 to {MAX_LAYERS} integers from 1 to {MAX_UNITS}",
            "Each stage halves the image; the codes lie on the last grid.",
        )
        check_stages_fit_images(run, self.encoder_filters)
        check_decoder_filters(self.encoder_filters, self.decoder_filters)
        require(
            is_count(self.codebook_size, 2, MAX_CODEBOOK),
            "variant.codebook_size",
            self.codebook_size,
            f"an integer from 2 to {MAX_CODEBOOK}",
            "A codebook of one vector maps every image to the same codes.",
        )
        require(
            is_finite_at_least(self.commitment_cost, 0),
            "variant.commitment_cost",
            self.commitment_cost,
            "a number >= 0 (the paper's 0.25)",
        )


def vq_loss_terms(encoded, quantized):
    """(codebook loss, commitment loss): mean((sg[z_e] - e)^2) and mean((z_e - sg[e])^2).

    Equal in value (both are the mean squared distance from each vector to its code); they differ in
    where their gradient goes: the first moves the codebook, the second the encoder.
    """
    from keras import ops

    codebook_loss = ops.mean(ops.square(ops.stop_gradient(encoded) - quantized))
    commitment_loss = ops.mean(ops.square(encoded - ops.stop_gradient(quantized)))
    return codebook_loss, commitment_loss


def code_scores(vectors, codebook):
    """2 v.c - ||c||^2 for each vector v (rows of ``vectors``, (n, D)) and codebook column c ((D, K)):
    ||v - c||^2 less ||v||^2, so the largest score is the nearest entry. The exported encoder computes
    the same numbers with a Dense layer (kernel 2C, bias -||c||^2), so both choose alike."""
    from keras import ops

    return ops.matmul(vectors, 2.0 * codebook) - ops.sum(ops.square(codebook), axis=0, keepdims=True)


def nearest_codes(vectors, codebook):
    """The index of each vector's nearest codebook column (squared Euclidean distance)."""
    from keras import ops

    return ops.argmax(code_scores(vectors, codebook), axis=1)


def codebook_usage(indices: np.ndarray, codebook_size: int) -> dict[str, Any]:
    """Perplexity exp(-sum p_k log p_k) of the codes' frequencies (codebook_size when every code is
    used equally, 1 when one code takes all) and the dead codes, never chosen."""
    counts = np.bincount(np.asarray(indices).ravel(), minlength=codebook_size).astype(np.float64)
    shares = counts / counts.sum()
    used = shares[shares > 0]
    return {
        "codebook_perplexity": float(np.exp(-np.sum(used * np.log(used)))),
        "dead_codes": int(np.sum(counts == 0)),
        "codebook_size": codebook_size,
    }


@functools.cache
def keras_objects() -> dict[str, type]:
    """The family's Keras layer, defined (and registered) on the first call: declaring the family
    loads no TensorFlow."""
    import keras
    from keras import ops

    from aetrain.models.term_reporting import TermLayer

    @keras.saving.register_keras_serializable(package="aetrain")
    class VectorQuantizer(TermLayer):
        """Snaps each vector of the last axis to its nearest codebook entry (straight-through), and
        adds the codebook and commitment terms to the model's loss, reporting each as a metric."""

        def __init__(self, codebook_size: int, commitment_cost: float = 0.25, **kwargs):
            super().__init__(**kwargs)
            if codebook_size < 2:
                raise ValueError(f"codebook_size must be >= 2, got {codebook_size}")
            self.codebook_size = int(codebook_size)
            self.commitment_cost = float(commitment_cost)
            self.codebook_tracker = keras.metrics.Mean(name="codebook_loss")
            self.commitment_tracker = keras.metrics.Mean(name="commitment_loss")

        def build(self, input_shape):
            self.codebook = self.add_weight(
                name="codebook",
                shape=(input_shape[-1], self.codebook_size),
                initializer=keras.initializers.RandomUniform(
                    -1.0 / self.codebook_size, 1.0 / self.codebook_size
                ),
                trainable=True,
                dtype="float32",
            )

        def nearest_entries(self, encoded):
            """The nearest codebook entry of each vector, in ``encoded``'s shape."""
            flat = ops.reshape(encoded, (-1, ops.shape(encoded)[-1]))
            indices = nearest_codes(flat, self.codebook)
            return ops.reshape(ops.take(ops.transpose(self.codebook), indices, axis=0), ops.shape(encoded))

        def call(self, inputs):
            encoded = ops.cast(inputs, "float32")
            quantized = self.nearest_entries(encoded)
            codebook_loss, commitment_loss = vq_loss_terms(encoded, quantized)
            self.add_loss(codebook_loss + self.commitment_cost * commitment_loss)
            self.report({"codebook_loss": codebook_loss, "commitment_loss": commitment_loss})
            return encoded + ops.stop_gradient(quantized - encoded)

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {
                **super().get_config(),
                "codebook_size": self.codebook_size,
                "commitment_cost": self.commitment_cost,
            }

    return {"VectorQuantizer": VectorQuantizer}


def build_vqvae(cfg) -> Any:
    """Conv stages -> Conv2D(latent_size, 1x1) -> VectorQuantizer | ConvT per stage -> the image."""
    import keras

    from aetrain.config.data_spec import spec_for
    from aetrain.models.conv import build_conv_stages, encoder_grids, transposed_conv_stages
    from aetrain.models.term_reporting import TermReportingSequential
    from aetrain.models.xla_cpu_layers import PatchConv2D

    variant, spec = cfg.variant, spec_for(cfg.data)
    quantizer = keras_objects()["VectorQuantizer"](
        variant.codebook_size, variant.commitment_cost, name="vector_quantizer", dtype="float32"
    )
    encoder = keras.Sequential(
        [
            keras.Input(shape=spec.image_shape),
            *build_conv_stages(cfg),
            PatchConv2D(cfg.latent_size, 1, name="codings"),
            quantizer,
        ],
        name="encoder",
    )
    grids = encoder_grids(spec.height, spec.width, len(variant.encoder_filters))
    layers = [keras.Input(shape=(*grids[-1], cfg.latent_size)), *transposed_conv_stages(cfg, grids)]
    decoder = keras.Sequential(layers, name="decoder")
    return TermReportingSequential([keras.Input(shape=spec.image_shape), encoder, decoder], name="vq_vae")


def _codebook(model) -> np.ndarray:
    from keras import ops

    return ops.convert_to_numpy(model.get_layer("encoder").get_layer("vector_quantizer").codebook)


def code_indices(model, images: np.ndarray) -> np.ndarray:
    """The code chosen at each grid position of each image: (images, height, width)."""
    import keras

    encoder = model.get_layer("encoder")
    before_quantizing = keras.Model(encoder.inputs, encoder.get_layer("codings").output)
    encoded = before_quantizing.predict(images, batch_size=BATCH, verbose=0)
    flat = np.asarray(encoded, dtype="float32").reshape(-1, encoded.shape[-1])
    codebook = _codebook(model)
    indices = keras.ops.convert_to_numpy(nearest_codes(flat, codebook))
    return indices.reshape(encoded.shape[:-1])


@dataclass(frozen=True)
class VectorQuantizedFamily(Family):
    """Reconstruction MSE plus the codebook and commitment terms; samples from a uniform prior over
    the codes; reports how much of the codebook the test images use."""

    convolutional: bool = True
    coding_kind: str = "quantized codings"
    samples_from_prior: bool = True

    def register_keras_objects(self) -> None:
        keras_objects()

    def loss_terms(self, cfg) -> list[str]:
        return ["codebook loss", f"{cfg.variant.commitment_cost:g} x commitment loss"]

    def test_figures(self, model, images: np.ndarray, cfg) -> dict[str, Any]:
        return codebook_usage(code_indices(model, images), cfg.variant.codebook_size)

    def test_warnings(self, test: dict[str, Any], cfg) -> list[str]:
        if "dead_codes" in test and test["dead_codes"] * 2 > test["codebook_size"]:
            return [
                f"codebook collapse: {test['dead_codes']} of {test['codebook_size']} codes are never chosen "
                "for the test images. Use a smaller variant.codebook_size or a lower trainer.learning_rate."
            ]
        return []

    def evaluation_report(self, model, images: np.ndarray, **_: Any) -> dict[str, Any]:
        """``vqvae``: the codebook's perplexity and dead codes on the images evaluated."""
        codebook_size = int(_codebook(model).shape[1])
        return {"vqvae": codebook_usage(code_indices(model, images), codebook_size)}

    def evaluation_rows(self, report: dict[str, Any]) -> list[tuple[str, str]]:
        usage = report.get("vqvae")
        if not usage:
            return []
        return [
            ("codebook perplexity", f"{usage['codebook_perplexity']:.1f} of {usage['codebook_size']}"),
            ("dead codes", f"{usage['dead_codes']} of {usage['codebook_size']}"),
        ]

    def sample(self, model, count: int, latent_size: int, seed: int) -> np.ndarray:
        """Decodings of ``count`` grids of codes, each position's code drawn uniformly (the prior the
        VQ-VAE trains under), with a NumPy generator seeded by ``seed``."""
        codebook = _codebook(model)
        decoder = model.get_layer("decoder")
        grid = tuple(decoder.input_shape[1:-1])
        indices = np.random.default_rng(seed).integers(codebook.shape[1], size=(count, *grid))
        return decoder.predict(codebook.T[indices], batch_size=BATCH, verbose=0)

    def prior_description(self, latent_size: int) -> str:
        return "uniform codes"

    def export_encoder_outputs(self, encoder) -> list:
        """The quantized codings, computed by Keras's built-in layers from the same codebook C:
        Dense scores 2 z.c - ||c||^2 (code_scores), a softmax sharpened by SHARPEN into a one-hot
        choice, and a bias-free Dense holding C^T that reads the entry out."""
        import keras
        from keras import ops

        codebook = ops.convert_to_numpy(encoder.get_layer("vector_quantizer").codebook)
        scores = keras.layers.Dense(codebook.shape[1], name="code_scores", dtype="float32")
        read_out = keras.layers.Dense(codebook.shape[0], use_bias=False, name="code_entries", dtype="float32")
        encoded = encoder.get_layer("codings").output
        scores.build(encoded.shape)
        # the bias through keras.ops, as code_scores sums it: the same float32 numbers
        bias = ops.convert_to_numpy(-ops.sum(ops.square(codebook), axis=0))
        scores.set_weights([2.0 * codebook, bias])
        choice = keras.layers.Softmax(name="code_choice", dtype="float32")(
            keras.layers.Rescaling(SHARPEN, dtype="float32")(scores(encoded))
        )
        read_out.build(choice.shape)
        read_out.set_weights([codebook.T])
        return [read_out(choice)]


VECTOR_QUANTIZED = VectorQuantizedFamily()

declare("variant", "vqvae", VQVAEVariant, build=build_vqvae, family=VECTOR_QUANTIZED)
