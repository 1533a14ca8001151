"""The variational family (variant=vae, variant=conv_vae): Gaussian codings whose latent loss is
weighted by ``variant.beta``, warmed up over ``variant.kl_warmup_epochs``, samples from N(0, I), and
the VAE's own figures (aetrain.models.vae_health). Its layers and its warm-up callback are in
aetrain.models.vae, imported when first needed: asking a run's family (aetrain-generate refusing a
plain autoencoder, aetrain-report) loads no TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from aetrain.config.data_spec import spec_for
from aetrain.models import vae_health
from aetrain.models.family import Family

if TYPE_CHECKING:
    import keras

BATCH = 512


@dataclass(frozen=True)
class VariationalFamily(Family):
    coding_kind: str = "mean codings"
    samples_from_prior: bool = True
    #: What its posterior-collapse and exploded-latent warnings tell the user to do.
    collapse_remedy: str = vae_health.COLLAPSE_REMEDY
    explosion_remedy: str = vae_health.EXPLOSION_REMEDY

    def loss_terms(self, cfg) -> list[str]:
        return [f"{cfg.variant.beta:g} x latent loss"] if cfg.variant.beta else []

    def training_callbacks(self, cfg, steps_per_epoch: int) -> list[keras.callbacks.Callback]:
        from aetrain.models.vae import KLWarmup

        warmup_steps = cfg.variant.kl_warmup_epochs * steps_per_epoch
        return [KLWarmup(cfg.variant.beta, warmup_steps, spec_for(cfg.data).pixels)]

    def test_figures(self, model, images: np.ndarray, cfg) -> dict[str, Any]:
        """The mean latent loss per image (nats) and the active units."""
        import keras

        from aetrain.models.vae import LATENT_LOSSES

        mean, log_var, _ = model.get_layer("encoder").predict(images, batch_size=BATCH, verbose=0)
        per_image = LATENT_LOSSES[cfg.variant.latent_loss](mean, log_var)
        return {
            "latent_loss": float(np.mean(keras.ops.convert_to_numpy(per_image))),
            "active_units": vae_health.active_units(mean),
        }

    def test_warnings(self, test: dict[str, Any], cfg) -> list[str]:
        warnings = []
        if "latent_loss" in test:  # a run recorded before these figures has neither
            warnings.append(
                vae_health.exploded_latent_warning(
                    test["latent_loss"], cfg.latent_size, self.explosion_remedy
                )
            )
        if "active_units" in test:
            warnings.append(
                vae_health.collapse_warning(test["active_units"], cfg.latent_size, self.collapse_remedy)
            )
        return [warning for warning in warnings if warning]

    def evaluation_report(
        self, model, images: np.ndarray, *, seed: int, elbo_samples: int, iw_samples: int
    ) -> dict[str, Any]:
        """``vae``: the negative ELBO and the latent space's health; ``warnings``: posterior collapse."""
        report = vae_health.negative_elbo(model, images, seed, elbo_samples)
        health, warnings = vae_health.vae_health(model, images, seed, iw_samples, self.collapse_remedy)
        return {"vae": {**report, **health}, "warnings": warnings}

    def evaluation_rows(self, report: dict[str, Any]) -> list[tuple[str, str]]:
        if "vae" not in report:
            return []
        vae = report["vae"]
        rows = [
            ("negative ELBO", f"{vae['negative_elbo_nats']:.2f} nats/image"),
            ("  reconstruction", f"{vae['reconstruction_nats']:.2f} nats (Bernoulli)"),
            ("  KL", f"{vae['kl_nats']:.2f} nats"),
        ]
        if "iwae_nats" in vae:
            rows.append(("IWAE NLL", f"{vae['iwae_nats']:.2f} nats/image (K={vae['iw_samples']})"))
        if "active_units" in vae:
            rows.append(("active units", f"{vae['active_units']} of {vae['latent_dimensions']}"))
        return rows

    def sample(self, model, count: int, latent_size: int, seed: int) -> np.ndarray:
        return decode_standard_normal(model, count, latent_size, seed)

    def prior_description(self, latent_size: int) -> str:
        return f"N(0, I), {latent_size}-D"

    def export_encoder_outputs(self, encoder: keras.Model) -> list:
        """``[mean, log_var]``: a served VAE encoder answers with its posterior, not one sample of it."""
        return [encoder.get_layer("codings_mean").output, encoder.get_layer("codings_log_var").output]


def decode_standard_normal(model, count: int, latent_size: int, seed: int) -> np.ndarray:
    """Decodings of ``count`` codings drawn from N(0, I) with a NumPy generator seeded by ``seed``: the
    samples.png of a run and aetrain-generate's draw the same images for the same seed. Every family
    whose prior is N(0, I) samples so."""
    codings = np.random.default_rng(seed).standard_normal((count, latent_size)).astype("float32")
    return model.get_layer("decoder").predict(codings, batch_size=BATCH, verbose=0)


VARIATIONAL = VariationalFamily()
CONVOLUTIONAL_VARIATIONAL = VariationalFamily(convolutional=True)
