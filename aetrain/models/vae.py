"""Variational autoencoder: Gaussian codings, the reparameterization trick, and the latent loss."""

from __future__ import annotations

import keras
from keras import ops

from aetrain.config import RunConfig
from aetrain.config.data_spec import spec_for
from aetrain.models.dense import build_dense_decoder, dense_trunk
from aetrain.models.term_reporting import TermLayer, TermReportingModel


def latent_loss_log_var(mean, log_var):
    """-1/2 sum_i [1 + gamma_i - exp(gamma_i) - mu_i^2], gamma = log sigma^2: KL(N(mu, sigma^2) || N(0, I)).

    The seed's stable form; one value per example (sum over coding units).
    """
    return -0.5 * ops.sum(1.0 + log_var - ops.exp(log_var) - ops.square(mean), axis=-1)


def latent_loss_sigma(mean, sigma):
    """-1/2 sum_i [1 + log(sigma_i^2) - sigma_i^2 - mu_i^2]: the seed's first form, same value."""
    variance = ops.square(sigma)
    return -0.5 * ops.sum(1.0 + ops.log(variance) - variance - ops.square(mean), axis=-1)


LATENT_LOSSES = {
    "log_var": lambda mean, log_var: latent_loss_log_var(mean, log_var),
    "sigma": lambda mean, log_var: latent_loss_sigma(mean, ops.exp(0.5 * log_var)),
}


def latent_loss_weight(beta: float, pixels: int) -> float:
    """beta / pixels: the latent loss (nats per image) against the per-pixel reconstruction MSE, the
    book's scaling; the one place the VAE's loss weighs its terms."""
    return beta / pixels


def kl_warmup_scale(step: int, warmup_steps: float) -> float:
    """min(1, step / warmup_steps): the share of beta in force at training step ``step`` (0-based).

    Beta rises linearly from 0 at the first step to its full value after ``warmup_steps`` steps
    (KL annealing, Bowman et al. 2016); ``warmup_steps`` <= 0 means no warm-up.
    """
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)


class KLWarmup(keras.callbacks.Callback):
    """A VAE's beta, step by step: ``beta * min(1, step / warmup_steps)`` with ``variant.kl_warmup_epochs``.

    Before each step it sets the latent-loss layer's ``beta_scale`` from the optimizer's step count,
    which a resumed run restores, so the ramp continues exactly where it stopped. With
    ``trainer.steps_per_execution`` = k the scale moves every k steps. Each epoch it logs ``beta`` (the
    value in force at the epoch's last step) and, while warming up, rewrites ``val_loss`` as the loss
    at the full beta (``val_reconstruction_loss + beta / pixels * val_kl_loss``): ``best.keras`` then
    compares epochs on one objective instead of favouring the early ones, whose beta was small.
    """

    def __init__(self, beta: float, warmup_steps: float, pixels: int) -> None:
        super().__init__()
        self.beta, self.warmup_steps = beta, warmup_steps
        self.full_weight = latent_loss_weight(beta, pixels)
        self.scale = 1.0 if warmup_steps <= 0 else 0.0

    def _latent_loss_layer(self):
        return self.model.get_layer("encoder").get_layer("latent_loss")

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.warmup_steps <= 0:
            return
        self.scale = kl_warmup_scale(int(self.model.optimizer.iterations), self.warmup_steps)
        self._latent_loss_layer().beta_scale.assign(self.scale)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        logs["beta"] = self.beta * self.scale
        if self.warmup_steps > 0 and "val_reconstruction_loss" in logs and "val_kl_loss" in logs:
            logs["val_loss"] = float(logs["val_reconstruction_loss"]) + self.full_weight * float(
                logs["val_kl_loss"]
            )


@keras.saving.register_keras_serializable(package="aetrain")
class LatentLoss(TermLayer):
    """Adds ``weight * batch-mean latent loss`` to the model's loss; passes (mean, log_var) through.

    Keras 3 refuses ``add_loss`` on a functional model's symbolic tensors, so the loss lives in a layer
    on the path from the encoder to the codings. The latent loss itself (nats per image, before the
    weight) is reported as the ``kl_loss`` metric. With ``annealed``, the weight is multiplied by the
    non-trainable ``beta_scale`` (0..1) that :class:`KLWarmup` sets before each step.
    """

    def __init__(self, form: str = "log_var", weight: float = 1.0, annealed: bool = False, **kwargs):
        super().__init__(**kwargs)
        if form not in LATENT_LOSSES:
            raise ValueError(f"form must be one of {sorted(LATENT_LOSSES)}, got {form!r}")
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.form = form
        self.weight = float(weight)
        self.annealed = bool(annealed)
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")

    def build(self, input_shape):
        if self.annealed:
            self.beta_scale = self.add_weight(
                name="beta_scale", shape=(), initializer="zeros", trainable=False, dtype="float32"
            )

    def call(self, inputs):
        mean, log_var = inputs
        per_example = LATENT_LOSSES[self.form](ops.cast(mean, "float32"), ops.cast(log_var, "float32"))
        kl = ops.mean(per_example)
        weight = self.weight * self.beta_scale if self.annealed else self.weight
        self.add_loss(weight * kl)
        self.report({"kl_loss": kl}, batch_size=ops.cast(ops.shape(mean)[0], "float32"))
        return mean, log_var

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "form": self.form,
            "weight": self.weight,
            "annealed": self.annealed,
        }


@keras.saving.register_keras_serializable(package="aetrain")
class Sampling(keras.layers.Layer):
    """Codings = mean + sigma * eps, eps ~ N(0, I) while training; the mean at inference.

    Using the mean outside training makes reconstructions, validation loss and reloaded
    checkpoints deterministic; new images come from decoding N(0, I) samples instead.
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        mean, log_var = inputs
        if not training:
            return mean
        epsilon = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * epsilon

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def gaussian_head(cfg: RunConfig, features):
    """features -> (mean, log_var), each a float32 Dense of ``latent_size``: under mixed precision
    exp(log_var) and the latent terms need more than bfloat16's 8 bits, and the codings are what the
    evaluation and generation read."""
    mean = keras.layers.Dense(cfg.latent_size, name="codings_mean", dtype="float32")(features)
    log_var = keras.layers.Dense(cfg.latent_size, name="codings_log_var", dtype="float32")(features)
    return mean, log_var


def build_gaussian_codings(cfg: RunConfig, features):
    """features -> (mean, log_var) -> LatentLoss -> Sampling: the coding head every VAE variant shares.

    Returns the symbolic ``[mean, log_var, codings]``, the encoder's outputs. The latent loss is
    weighted ``beta / pixels`` (784 on Fashion-MNIST) because the reconstruction loss is a per-pixel
    MSE (the book's scaling).
    """
    variant = cfg.variant
    mean, log_var = gaussian_head(cfg, features)
    latent_loss = LatentLoss(
        variant.latent_loss,
        latent_loss_weight(variant.beta, spec_for(cfg.data).pixels),
        annealed=variant.kl_warmup_epochs > 0,
        name="latent_loss",
        dtype="float32",
    )
    mean, log_var = latent_loss([mean, log_var])
    codings = Sampling(seed=cfg.seed, name="codings", dtype="float32")([mean, log_var])
    return [mean, log_var, codings]


def assemble_vae(encoder: keras.Model, decoder: keras.Model, name: str) -> keras.Model:
    """image -> encoder -> sampled codings -> decoder, as one model with both sub-models inside."""
    inputs = keras.Input(shape=encoder.input_shape[1:])
    _, _, codings = encoder(inputs)
    return TermReportingModel(inputs, decoder(codings), name=name)


def build_vae_encoder(cfg: RunConfig) -> keras.Model:
    """Flatten -> [noise] -> Dense(hidden...) -> (mean, log_var) -> LatentLoss -> Sampling."""
    inputs = keras.Input(shape=spec_for(cfg.data).image_shape)
    x = inputs
    for layer in dense_trunk(cfg):
        x = layer(x)
    return keras.Model(inputs, build_gaussian_codings(cfg, x), name="encoder")


def build_vae(cfg: RunConfig) -> keras.Model:
    encoder = build_vae_encoder(cfg)
    decoder = build_dense_decoder(cfg, list(reversed(cfg.variant.hidden_units)))
    return assemble_vae(encoder, decoder, "variational_autoencoder")
