"""A VAE's own figures: its negative ELBO, KL per dimension, active units, an importance-weighted
likelihood, and the posterior-collapse and exploded-latent warnings (the variational family reports
them, aetrain.models.vae).

NumPy on the encoder's outputs, plus decoder calls for the sampled terms; nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

ACTIVE_VARIANCE = 0.01  # Burda et al. 2016: a unit is active when Var_x(E_q[z_i | x]) > 0.01
IW_SAMPLES = 100
ELBO_SAMPLES = 4
BATCH = 512
DECODE_ROWS = 16384  # codings per decoding call: 200 MB of decoded 32x32x3 images at most
BERNOULLI_LIKELIHOOD = (
    "Bernoulli per pixel: -log p(x|z) = -sum over the image's pixels (784 on Fashion-MNIST) of "
    "[x log y + (1-x) log(1-y)], "
    "x the test pixel in [0,1] read as a probability, y the decoder's output clipped to [1e-7, 1-1e-7]"
)


def kl_per_dimension(mean: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """-1/2 [1 + gamma_i - exp(gamma_i) - mu_i^2] per coding unit, averaged over images, in nats.

    Summed over the units it is the latent loss (KL(q(z|x) || N(0, I)) per image).
    """
    mean, log_var = mean.astype(np.float64), log_var.astype(np.float64)
    return np.mean(-0.5 * (1.0 + log_var - np.exp(log_var) - np.square(mean)), axis=0)


def latent_loss_per_image(mean: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """KL(q(z|x) || N(0, I)) per image in nats, in the codings' own precision: what the model's
    latent-loss layer computes (aetrain.models.vae.latent_loss_log_var), on NumPy arrays."""
    return -0.5 * np.sum(1.0 + log_var - np.exp(log_var) - np.square(mean), axis=-1)


def active_units(mean: np.ndarray, threshold: float = ACTIVE_VARIANCE) -> int:
    """How many coding units have an encoder mean whose variance across images exceeds ``threshold``.

    A unit whose mean does not move with the input carries no information about it (a collapsed one).
    """
    return int(np.sum(np.var(mean.astype(np.float64), axis=0) > threshold))


#: What a VAE's warnings tell the user to do; a family without beta or its warm-up says its own.
COLLAPSE_REMEDY = "Warm the KL term up (e.g. variant.kl_warmup_epochs=5) or use a smaller variant.beta."
EXPLOSION_REMEDY = (
    "Lower trainer.learning_rate or warm the KL term up (variant.kl_warmup_epochs), and train more steps."
)


def collapse_warning(active: int, units: int, remedy: str = COLLAPSE_REMEDY) -> str | None:
    """The posterior-collapse warning when fewer than half of ``units`` are active, else None."""
    if 2 * active >= units:
        return None
    return (
        f"posterior collapse: only {active} of {units} latent dimensions are active (encoder-mean variance "
        f"> {ACTIVE_VARIANCE} across test images); the others carry no information about the image. " + remedy
    )


#: nats per latent dimension above which a VAE's latent term has exploded (a trained VAE on these
#: data sets spends a few nats per dimension; a diverging one thousands).
EXPLODED_KL_PER_DIMENSION = 100.0


def exploded_latent_warning(latent_loss: float, units: int, remedy: str = EXPLOSION_REMEDY) -> str | None:
    """The warning for a latent (KL) term far above what any trained VAE spends, else None."""
    if not latent_loss > EXPLODED_KL_PER_DIMENSION * units:
        return None
    return (
        f"the latent term exploded: {latent_loss:.4g} nats per test image over {units} latent dimensions "
        f"(above {EXPLODED_KL_PER_DIMENSION:g} per dimension); the codings are far from the prior, so "
        "samples and interpolations mean nothing. " + remedy
    )


def decode_in_blocks(decoder, draws: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """``decoder``'s output for each array of codings in ``draws``, in order, decoded in as few
    ``predict`` calls as fit DECODE_ROWS rows each: each call costs a fixed overhead, which many small
    test sets times many samples would otherwise pay once per sample."""
    block: list[np.ndarray] = []
    for codings in draws:
        block.append(codings)
        if sum(map(len, block)) >= DECODE_ROWS:
            yield from _decoded_block(decoder, block)
            block = []
    if block:
        yield from _decoded_block(decoder, block)


def _decoded_block(decoder, block: list[np.ndarray]) -> list[np.ndarray]:
    decoded = decoder.predict(np.concatenate(block), batch_size=BATCH, verbose=0)
    return np.split(decoded, np.cumsum([len(codings) for codings in block])[:-1])


def bernoulli_negative_log_likelihood(images: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """-sum_pixels [x log y + (1-x) log(1-y)] per image, in nats (binary cross-entropy, summed)."""
    epsilon = 1e-7
    y = np.clip(probabilities.astype(np.float64), epsilon, 1.0 - epsilon)
    x = images.reshape(len(images), -1).astype(np.float64)
    y = y.reshape(len(images), -1)
    return -np.sum(x * np.log(y) + (1.0 - x) * np.log(1.0 - y), axis=1)


def negative_elbo(model, images: np.ndarray, seed: int, samples: int = ELBO_SAMPLES) -> dict[str, Any]:
    """-ELBO = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)) per test image, in nats.

    The KL term is exact (the encoder's mean and log-variance); the expectation is a Monte Carlo
    average over ``samples`` codings z = mu + sigma * eps per image, eps drawn from a NumPy generator
    seeded with ``seed`` (the same figure on every call). The likelihood is BERNOULLI_LIKELIHOOD.
    """
    mean, log_var, _ = model.get_layer("encoder").predict(images, batch_size=BATCH, verbose=0)
    rng = np.random.default_rng(seed)
    sigma = np.exp(0.5 * log_var)
    draws = (mean + sigma * rng.standard_normal(mean.shape).astype(np.float32) for _ in range(samples))
    reconstruction = np.zeros(len(images))
    for decoded in decode_in_blocks(model.get_layer("decoder"), draws):
        reconstruction += bernoulli_negative_log_likelihood(images, decoded) / samples
    kl = latent_loss_per_image(mean, log_var).astype(np.float64)
    return {
        "negative_elbo_nats": float(np.mean(reconstruction + kl)),
        "reconstruction_nats": float(np.mean(reconstruction)),
        "kl_nats": float(np.mean(kl)),
        "negative_elbo_bits_per_pixel": float(np.mean(reconstruction + kl) / (images[0].size * np.log(2.0))),
        "likelihood": BERNOULLI_LIKELIHOOD,
        "elbo_samples": samples,
        "elbo_seed": seed,
    }


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
    (bernoulli_negative_log_likelihood); the log-mean-exp is taken stably.
    """
    rng = np.random.default_rng(seed)
    mean64, log_var64 = mean.astype(np.float64), log_var.astype(np.float64)
    draws = [mean64 + np.exp(0.5 * log_var64) * rng.standard_normal(mean.shape) for _ in range(samples)]
    log_weights = np.empty((samples, len(images)))
    decoded_draws = decode_in_blocks(decoder, (z.astype(np.float32) for z in draws))
    for k, (z, decoded) in enumerate(zip(draws, decoded_draws, strict=True)):
        log_likelihood = -bernoulli_negative_log_likelihood(images, decoded)
        log_prior = _log_normal(z, 0.0, np.zeros_like(z))
        log_weights[k] = log_likelihood + log_prior - _log_normal(z, mean64, log_var64)
    peak = log_weights.max(axis=0)
    return -(peak + np.log(np.mean(np.exp(log_weights - peak), axis=0)))


def vae_health(
    model, images: np.ndarray, seed: int, iw_samples: int = IW_SAMPLES, collapse_remedy: str = COLLAPSE_REMEDY
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
    warning = collapse_warning(active, int(mean.shape[1]), collapse_remedy)
    return health, [warning] if warning else []
