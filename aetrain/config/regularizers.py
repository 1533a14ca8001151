"""aetrain's noises (denoising input corruption) and sparsity penalties, each declared once: its schema
(the keys of conf/noise/NAME.yaml or conf/sparsity/NAME.yaml, checked here) beside its builder.

A noise's builder is ``(settings, seed) -> keras Layer | None``; a sparsity's ``(settings) -> [Layer]``,
the layers that follow the coding layer. Both are named lazily, so checking never imports Keras.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from aetrain.config.checks import is_finite_at_least, require
from aetrain.config.registry import declare

if TYPE_CHECKING:
    from aetrain.config.schema import RunConfig


@dataclass
class Noise:
    """Base of every noise's schema; ``check`` refuses bad values naming their key.

    ``level_key``: the key that sets the noise's strength, which aetrain-evaluate's denoising curve
    (``--noise-levels``) varies through :meth:`at_level`; None: no one strength, no curve.
    """

    name: str = "?"
    level_key: ClassVar[str | None] = None
    level_label: ClassVar[str] = "noise level"

    def check(self, run: RunConfig) -> None:
        """Nothing to check for the base: a subclass checks its own keys."""

    def at_level(self, level: float) -> Noise | None:
        """This noise with its strength set to ``level`` (None: it has no one strength)."""
        if self.level_key is None:
            return None
        return dataclasses.replace(self, **{self.level_key: level})


@dataclass
class NoNoise(Noise):
    name: str = "none"
    level_label: ClassVar[str] = "Gaussian noise stddev"

    def at_level(self, level: float) -> Noise:
        """A run trained without noise is measured on Gaussian noise."""
        return GaussianNoise(stddev=level)


declare("noise", "none", NoNoise, build="aetrain.models.noise:no_noise_layer")


@dataclass
class GaussianNoise(Noise):
    name: str = "gaussian"
    stddev: float = 0.2
    level_key: ClassVar[str | None] = "stddev"
    level_label: ClassVar[str] = "Gaussian noise stddev"

    def check(self, run: RunConfig) -> None:
        require(
            is_finite_at_least(self.stddev, 0) and self.stddev > 0,
            "noise.stddev",
            self.stddev,
            "a number > 0 (use noise=none for no noise)",
        )


declare("noise", "gaussian", GaussianNoise, build="aetrain.models.noise:gaussian_noise_layer")


@dataclass
class DropoutNoise(Noise):
    name: str = "dropout"
    rate: float = 0.5
    level_key: ClassVar[str | None] = "rate"
    level_label: ClassVar[str] = "dropout rate"

    def check(self, run: RunConfig) -> None:
        require(
            0 < self.rate < 1,
            "noise.rate",
            self.rate,
            "a number strictly between 0 and 1 (the fraction of pixels dropped)",
        )


declare("noise", "dropout", DropoutNoise, build="aetrain.models.noise:dropout_noise_layer")


@dataclass
class Sparsity:
    """Base of every sparsity's schema. A penalty (any sparsity but ``none``) has a ``weight`` and
    acts on sigmoid codings, so it does not combine with a variational variant."""

    name: str = "?"

    def check(self, run: RunConfig) -> None:
        weight = getattr(self, "weight", None)
        if weight is not None:
            require(is_finite_at_least(weight, 0), "sparsity.weight", weight, "a number >= 0")
        require(
            run.variant.takes_sparsity,
            "sparsity",
            self.name,
            f"sparsity=none with variant={run.variant.name}",
            f"Sparsity penalties act on a sigmoid coding layer; {run.variant.why_no_sparsity}",
        )


@dataclass
class NoSparsity(Sparsity):
    name: str = "none"

    def check(self, run: RunConfig) -> None:
        """No penalty: nothing to check, and it goes with every variant."""


declare("sparsity", "none", NoSparsity, build="aetrain.models.sparsity:no_sparsity_layers")


@dataclass
class L1Sparsity(Sparsity):
    """``weight * sum|codings|`` per example (Keras divides activity penalties by the batch size)."""

    name: str = "l1"
    weight: float = 1e-4


declare("sparsity", "l1", L1Sparsity, build="aetrain.models.sparsity:l1_sparsity_layers")


@dataclass
class KLSparsity(Sparsity):
    """``weight * KL(target || batch-mean activation)`` summed over coding units, per batch; divided by
    the batch size as Keras divides the book's KL activity regularizer, unless ``divide_by_batch_size``
    is false (the same penalty at every batch size, as aetrain did before the key existed)."""

    name: str = "kl"
    target: float = 0.1
    weight: float = 5e-3
    divide_by_batch_size: bool = True

    def check(self, run: RunConfig) -> None:
        super().check(run)
        require(
            0 < self.target < 1,
            "sparsity.target",
            self.target,
            "a number strictly between 0 and 1",
            "It is the mean activation each sigmoid coding unit should have.",
        )
        require(
            run.trainer.batch_splits in ("auto", 1),
            "trainer.batch_splits",
            run.trainer.batch_splits,
            "auto or 1 with sparsity=kl",
            "The KL penalty is a statistic of the whole batch's mean activation, so slices of the "
            "batch would not add up to it.",
        )


declare("sparsity", "kl", KLSparsity, build="aetrain.models.sparsity:kl_sparsity_layers")
