"""aetrain's variants, each declared once: its schema (the keys of conf/variant/NAME.yaml, checked
here) beside its builder (named lazily, so checking never imports Keras).

A variant from outside aetrain subclasses :class:`Variant` (or one of the classes below, to reuse their
keys and checks) and calls ``declare("variant", NAME, Schema, build=...)`` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from aetrain.config.checks import (
    MAX_LAYERS,
    MAX_UNITS,
    are_layer_sizes,
    check_activations,
    is_count,
    is_finite_at_least,
    require,
)
from aetrain.config.data_spec import spec_for
from aetrain.config.registry import declare

if TYPE_CHECKING:
    from aetrain.config.schema import RunConfig

LATENT_LOSS_FORMS = ("log_var", "sigma")


@dataclass
class Variant:
    """Base of every variant's schema. ``check`` refuses bad values naming their key; a subclass
    extends it (``super().check(run)``) for keys of its own.

    Every variant has ``activation`` and ``output_activation`` keys (checked here, against
    ``ACTIVATIONS`` and ``OUTPUT_ACTIVATIONS``). ``takes_sparsity`` False: a sparsity penalty is
    refused with this variant (before TensorFlow loads).
    """

    name: str = "?"
    takes_sparsity: ClassVar[bool] = True
    #: Why a variant that takes no sparsity refuses it, in the refusal's words.
    why_no_sparsity: ClassVar[str] = (
        "this variant's codings are shaped by its own loss terms, which a penalty would fight."
    )

    def check(self, run: RunConfig) -> None:
        check_activations(self)


def check_hidden_units(values: list[int], key: str = "variant.hidden_units") -> None:
    """Hidden layer sizes: up to MAX_LAYERS of them, or none (pixels -> codings -> pixels)."""
    require(
        are_layer_sizes(values, allow_none=True),
        key,
        values,
        f"a list of 0 to {MAX_LAYERS} integers from 1 to {MAX_UNITS} ([] for no hidden layer: "
        "pixels -> codings -> pixels)",
    )


@dataclass
class DenseVariant(Variant):
    """Stacked (fully connected) autoencoder; the decoder mirrors ``hidden_units``."""

    name: str = "dense"
    hidden_units: list[int] = field(default_factory=lambda: [100])
    activation: str = "relu"
    output_activation: str = "sigmoid"
    tied_weights: bool = False  # decoder Dense layers reuse the transposed encoder kernels

    def check(self, run: RunConfig) -> None:
        super().check(run)
        check_hidden_units(self.hidden_units)


declare("variant", "dense", DenseVariant, build="aetrain.models.dense:build_dense_autoencoder")


@dataclass
class ConvVariant(Variant):
    """The seed's convolutional autoencoder: three conv+pool stages, a conv coding layer, GAP."""

    name: str = "conv"
    encoder_filters: list[int] = field(default_factory=lambda: [16, 32, 64])
    decoder_start_channels: int = 16
    decoder_filters: list[int] = field(default_factory=lambda: [32, 16])
    activation: str = "relu"
    output_activation: str = "linear"

    def check(self, run: RunConfig) -> None:
        super().check(run)
        require(
            are_layer_sizes(self.encoder_filters),
            "variant.encoder_filters",
            self.encoder_filters,
            f"a list of 1 to {MAX_LAYERS} integers from 1 to {MAX_UNITS}",
            "The conv encoder halves the image once per filter count (28 -> 14 -> 7 -> 3 for three).",
        )
        check_decoder_filters(self.encoder_filters, self.decoder_filters)
        require(
            is_count(self.decoder_start_channels, 1, MAX_UNITS),
            "variant.decoder_start_channels",
            self.decoder_start_channels,
            f"an integer from 1 to {MAX_UNITS}",
        )
        check_stages_fit_images(run, self.encoder_filters)


def check_decoder_filters(encoder_filters: list[int], decoder_filters: list[int]) -> None:
    """A conv decoder's stages: one filter count fewer than the encoder's (its last stage outputs the
    image's channels)."""
    require(
        len(decoder_filters) == len(encoder_filters) - 1
        and (not decoder_filters or are_layer_sizes(decoder_filters)),
        "variant.decoder_filters",
        decoder_filters,
        f"{len(encoder_filters) - 1} integers from 1 to {MAX_UNITS} (one fewer than variant.encoder_filters)",
        "The conv decoder doubles the image once per pooling; its last stage outputs the image's "
        "channels, so it takes one filter count fewer than the encoder.",
    )


def check_stages_fit_images(run: RunConfig, encoder_filters: list[int]) -> None:
    """A conv encoder halves each side once per stage: the image must keep at least 1x1."""
    spec = spec_for(run.data)
    stages = len(encoder_filters)
    require(
        min(spec.height, spec.width) // 2**stages >= 1,
        "variant.encoder_filters",
        encoder_filters,
        f"at most {max(min(spec.height, spec.width).bit_length() - 1, 0)} stages for "
        f"{spec.height}x{spec.width} images",
        f"The conv encoder halves the image once per stage: {stages} stages shrink "
        f"{spec.height}x{spec.width} ({run.data.name}) below 1x1. Use fewer stages (and one fewer "
        "variant.decoder_filters), larger images (data.image_size), or variant=dense.",
    )


declare(
    "variant",
    "conv",
    ConvVariant,
    build="aetrain.models.conv:build_conv_autoencoder",
    family="aetrain.models.family:CONVOLUTIONAL",
)


@dataclass
class VariationalVariant(Variant):
    """What every variational variant's settings share: Gaussian codings and a latent loss weighted
    by ``beta``. How such a variant trains, evaluates and samples is its family's
    (aetrain.models.variational), which the variant's declaration names.
    """

    name: str = "vae"
    takes_sparsity: ClassVar[bool] = False
    why_no_sparsity: ClassVar[str] = (
        "a VAE's codings are Gaussian samples regularised by its own latent loss (tune variant.beta instead)."
    )
    latent_loss: str = "log_var"
    beta: float = 1.0
    kl_warmup_epochs: float = 0.0  # beta rises linearly from 0 over this many epochs, step by step

    def check(self, run: RunConfig) -> None:
        super().check(run)
        require(
            self.latent_loss in LATENT_LOSS_FORMS,
            "variant.latent_loss",
            self.latent_loss,
            f"one of {list(LATENT_LOSS_FORMS)}",
        )
        require(is_finite_at_least(self.beta, 0), "variant.beta", self.beta, "a number >= 0")
        require(
            is_finite_at_least(self.kl_warmup_epochs, 0),
            "variant.kl_warmup_epochs",
            self.kl_warmup_epochs,
            "a number of epochs >= 0 (0: the full beta from the first step)",
        )


@dataclass
class VAEVariant(VariationalVariant):
    """Dense variational autoencoder with a Gaussian coding layer (mean and log-variance)."""

    name: str = "vae"
    hidden_units: list[int] = field(default_factory=lambda: [150, 100])
    activation: str = "selu"
    output_activation: str = "sigmoid"

    def check(self, run: RunConfig) -> None:
        super().check(run)
        check_hidden_units(self.hidden_units)


declare(
    "variant",
    "vae",
    VAEVariant,
    build="aetrain.models.vae:build_vae",
    family="aetrain.models.variational:VARIATIONAL",
)


@dataclass
class ConvVAEVariant(ConvVariant, VariationalVariant):
    """The conv autoencoder's layers with Gaussian codings: conv stages -> Flatten -> (mean, log_var)."""

    name: str = "conv_vae"


declare(
    "variant",
    "conv_vae",
    ConvVAEVariant,
    build="aetrain.models.conv_vae:build_conv_vae",
    family="aetrain.models.variational:CONVOLUTIONAL_VARIATIONAL",
)
