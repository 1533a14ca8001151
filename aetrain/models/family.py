"""What makes a family of autoencoders what it is, asked by everything that trains, evaluates, draws,
exports or compares runs, so that none of them tests a variant's class or a layer's name.

A variant's declaration names its family (``declare("variant", NAME, Schema, build=..., family=...)``,
a :class:`Family` or a ``"module:attribute"`` reference to one); a variant that names none is a plain
autoencoder. A new family with its own figures, sampling or callbacks subclasses :class:`Family` in
its own module and overrides what differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aetrain.config.registry import option

if TYPE_CHECKING:
    import keras
    import numpy as np

    from aetrain.config.schema import RunConfig


@dataclass(frozen=True)
class Family:
    """A deterministic autoencoder trained on the reconstruction MSE (plus the sparsity penalty, the
    sparsity option's own): its encoder outputs its codings, and it draws no samples.

    ``convolutional``: its steps are convolutions. Three ``auto`` settings follow it, each measured on a
    CPU (docs/performance.md): ``trainer.batch_splits`` splits its batches (one batch leaves a small
    CPU's cores idle), ``trainer.backend`` keeps it on TensorFlow (XLA's CPU convolutions are slower),
    and ``trainer.precision`` computes it in bfloat16 where the CPU has bfloat16 instructions.
    """

    convolutional: bool = False
    #: The loss Keras compiles beside the terms the model's own layers add (``add_loss``): the
    #: per-pixel MSE; None where those layers add the whole objective (an importance-weighted bound).
    compiled_loss: str | None = "mse"
    #: What the encoder's output is called in pictures of the codings (aetrain-look).
    coding_kind: str = "codings"
    #: Whether it decodes codings drawn from a prior (samples.png, aetrain-generate).
    samples_from_prior: bool = False

    def loss_terms(self, cfg: RunConfig) -> list[str]:
        """The terms its training loss adds to the reconstruction MSE, weights included, as a person
        reads them (metrics.json ``loss_terms``; the report compares runs by them)."""
        return []

    def register_keras_objects(self) -> None:
        """Register the Keras classes its models are made of (before a build or a checkpoint load).

        aetrain's own seed families define theirs in modules aetrain.models.build imports; a family
        module that keeps its Keras code inside functions (so that declaring it loads no TensorFlow)
        registers it here.
        """

    def training_callbacks(self, cfg: RunConfig, steps_per_epoch: int) -> list[keras.callbacks.Callback]:
        """Callbacks its training needs, run before the metrics are recorded each epoch."""
        return []

    def test_figures(self, model: keras.Model, images: np.ndarray, cfg: RunConfig) -> dict[str, Any]:
        """Its own figures on the test images, for metrics.json's ``test`` at the end of a run."""
        return {}

    def test_warnings(self, test: dict[str, Any], cfg: RunConfig) -> list[str]:
        """What the user should be told about its ``test`` figures (none: all is well)."""
        return []

    def evaluation_report(
        self, model: keras.Model, images: np.ndarray, *, seed: int, elbo_samples: int, iw_samples: int
    ) -> dict[str, Any]:
        """Its section of aetrain-evaluate's eval.json (keys beside ``mse``, ``psnr_db``, ...)."""
        return {}

    def evaluation_rows(self, report: dict[str, Any]) -> list[tuple[str, str]]:
        """aetrain-evaluate's table rows (label, value) for its section of ``report`` (eval.json)."""
        return []

    def sample(self, model: keras.Model, count: int, latent_size: int, seed: int) -> np.ndarray:
        """``count`` new images decoded from its prior, the same for the same ``seed``."""
        raise NotImplementedError(f"{type(self).__name__} draws no samples")

    def prior_description(self, latent_size: int) -> str:
        """What :meth:`sample` draws from, for the pictures' captions."""
        return ""

    def export_encoder_outputs(self, encoder: keras.Model) -> Any:
        """The tensors aetrain-export's standalone encoder outputs; None: the encoder's own output."""
        return None


PLAIN = Family()
CONVOLUTIONAL = Family(convolutional=True)


def family_of(cfg: RunConfig) -> Family:
    """The family of ``cfg.variant``, as its declaration names it."""
    return family_named(cfg.variant.name)


def family_named(variant: str) -> Family:
    """The family the declaration of the variant ``variant`` names (PLAIN when it names none)."""
    declared = option("variant", variant).family
    if declared is None:
        return PLAIN
    if isinstance(declared, str):
        from aetrain.config.registry import resolve

        declared = resolve(declared)
    if not isinstance(declared, Family):
        raise TypeError(
            f"the variant {variant!r} names {declared!r} as its family, not an aetrain.models.family.Family"
        )
    return declared
