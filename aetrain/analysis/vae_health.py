"""Is a VAE using its latent space? KL per dimension, active units, an importance-weighted likelihood,
and the posterior-collapse warning.

Pure NumPy on the encoder's outputs (plus decoder calls for the IWAE estimate); nothing is written.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ACTIVE_VARIANCE = 0.01  # Burda et al. 2016: a unit is active when Var_x(E_q[z_i | x]) > 0.01
IW_SAMPLES = 100
BATCH = 512


def kl_per_dimension(mean: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """-1/2 [1 + gamma_i - exp(gamma_i) - mu_i^2] per coding unit, averaged over images, in nats.

    Summed over the units it is the latent loss (KL(q(z|x) || N(0, I)) per image).
    """
    mean, log_var = mean.astype(np.float64), log_var.astype(np.float64)
    return np.mean(-0.5 * (1.0 + log_var - np.exp(log_var) - np.square(mean)), axis=0)


def active_units(mean: np.ndarray, threshold: float = ACTIVE_VARIANCE) -> int:
    """How many coding units have an encoder mean whose variance across images exceeds ``threshold``.

    A unit whose mean does not move with the input carries no information about it (a collapsed one).
    """
    return int(np.sum(np.var(mean.astype(np.float64), axis=0) > threshold))


def collapse_warning(active: int, units: int) -> str | None:
    """The posterior-collapse warning when fewer than half of ``units`` are active, else None."""
    if 2 * active >= units:
        return None
    return (
        f"posterior collapse: only {active} of {units} latent dimensions are active (encoder-mean variance "
        f"> {ACTIVE_VARIANCE} across test images); the others carry no information about the image. "
        "Warm the KL term up (e.g. variant.kl_warmup_epochs=5) or use a smaller variant.beta."
    )


#: nats per latent dimension above which a VAE's latent term has exploded (a trained VAE on these
#: data sets spends a few nats per dimension; a diverging one thousands).
EXPLODED_KL_PER_DIMENSION = 100.0


def exploded_latent_warning(latent_loss: float, units: int) -> str | None:
    """The warning for a latent (KL) term far above what any trained VAE spends, else None."""
    if not latent_loss > EXPLODED_KL_PER_DIMENSION * units:
        return None
    return (
        f"the latent term exploded: {latent_loss:.4g} nats per test image over {units} latent dimensions "
        f"(above {EXPLODED_KL_PER_DIMENSION:g} per dimension); the codings are far from the prior, so "
        "samples and interpolations mean nothing. Lower trainer.learning_rate or warm the KL term up "
        "(variant.kl_warmup_epochs), and train more steps."
    )


def _log_normal(z: np.ndarray, mean: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """log N(z; mean, diag(exp(log_var))), summed over the last axis."""
    return -0.5 * np.sum(
        np.log(2.0 * np.pi) + log_var + np.square(z - mean) / np.exp(log_var),
        axis=-1,
    )


def iwae_negative_log_likelihood(
    decoder, images: np.ndarray, mean: np.ndarray, log_var: np.ndarray, samples: int, seed: int
) -> np.ndarray:
    """-log (1/K sum_k p(x|z_k) p(z_k) / q(z_k|x)), z_k ~ q(z|x), per image, in nats (Burda et al. 2016).

    It is a tighter bound than the negative ELBO (K = 1 is the ELBO's one-sample estimate) and
    approaches -log p(x) as K grows. p(x|z) is the Bernoulli likelihood of the ELBO
    (aetrain.analysis.evaluation.bernoulli_negative_log_likelihood); the log-mean-exp is taken stably.
    """
    from aetrain.analysis.evaluation import bernoulli_negative_log_likelihood

    rng = np.random.default_rng(seed)
    mean64, log_var64 = mean.astype(np.float64), log_var.astype(np.float64)
    log_weights = np.empty((samples, len(images)))
    for k in range(samples):
        z = mean64 + np.exp(0.5 * log_var64) * rng.standard_normal(mean.shape)
        decoded = decoder.predict(z.astype(np.float32), batch_size=BATCH, verbose=0)
        log_likelihood = -bernoulli_negative_log_likelihood(images, decoded)
        log_prior = _log_normal(z, 0.0, np.zeros_like(z))
        log_weights[k] = log_likelihood + log_prior - _log_normal(z, mean64, log_var64)
    peak = log_weights.max(axis=0)
    return -(peak + np.log(np.mean(np.exp(log_weights - peak), axis=0)))


def vae_health(
    model, images: np.ndarray, seed: int, iw_samples: int = IW_SAMPLES
) -> tuple[dict[str, Any], list[str]]:
    """kl_per_dimension, active_units (and the threshold), iwae_nats; and the warnings, for ``images``."""
    mean, log_var, _ = model.get_layer("encoder").predict(images, batch_size=BATCH, verbose=0)
    active = active_units(mean)
    health: dict[str, Any] = {
        "kl_per_dimension": [float(v) for v in kl_per_dimension(mean, log_var)],
        "active_units": active,
        "latent_dimensions": int(mean.shape[1]),
        "active_unit_variance_threshold": ACTIVE_VARIANCE,
    }
    if iw_samples > 0:
        nll = iwae_negative_log_likelihood(
            model.get_layer("decoder"), images, mean, log_var, iw_samples, seed
        )
        health["iwae_nats"] = float(np.mean(nll))
        health["iw_samples"] = iw_samples
    warning = collapse_warning(active, int(mean.shape[1]))
    return health, [warning] if warning else []
