"""Sparsity penalties on the coding layer: L1 on the codings, or KL toward a target activation."""

from __future__ import annotations

import keras
from keras import ops

from aetrain.config import KLSparsity, L1Sparsity, NoSparsity, Sparsity
from aetrain.config.registry import build


def kl_sparsity_penalty(codings, target: float):
    """sum_j [p log(p/q_j) + (1-p) log((1-p)/(1-q_j))], q_j = mean activation of unit j over the batch.

    ``codings`` are sigmoid activations, shape (batch, units); ``p`` is ``target``. q is clipped away
    from 0 and 1 so a dead or saturated unit gives a large, finite penalty instead of inf.
    """
    epsilon = keras.config.epsilon()
    q = ops.clip(ops.mean(ops.cast(codings, "float32"), axis=0), epsilon, 1.0 - epsilon)
    p = target
    return ops.sum(p * ops.log(p / q) + (1.0 - p) * ops.log((1.0 - p) / (1.0 - q)))


@keras.saving.register_keras_serializable(package="aetrain")
class KLSparsityRegularization(keras.layers.Layer):
    """Adds ``weight * kl_sparsity_penalty(codings, target)`` to the loss, divided by the batch size
    when ``divide_by_batch_size`` (as Keras divides an activity regularizer's penalty: the book's KL
    regularizer is one); passes codings through.

    A layer rather than an activity regularizer, so that the division is a choice: a checkpoint made
    before it existed (no ``divide_by_batch_size`` in its config) keeps the undivided penalty it
    trained with.
    """

    def __init__(self, target: float, weight: float, divide_by_batch_size: bool = False, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < target < 1.0:
            raise ValueError(f"target must lie strictly between 0 and 1, got {target}")
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.target = float(target)
        self.weight = float(weight)
        self.divide_by_batch_size = bool(divide_by_batch_size)

    def call(self, codings):
        penalty = self.weight * kl_sparsity_penalty(codings, self.target)
        if self.divide_by_batch_size:
            penalty = penalty / ops.cast(ops.shape(codings)[0], penalty.dtype)
        self.add_loss(penalty)
        return codings

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "target": self.target,
            "weight": self.weight,
            "divide_by_batch_size": self.divide_by_batch_size,
        }


# The builders make float32 layers: under mixed precision the codings arrive in bfloat16/float16, but a
# penalty is a loss term, summed with the others in float32 (and a sum of 300 codings in bfloat16 loses
# digits).


def no_sparsity_layers(cfg: NoSparsity) -> list[keras.layers.Layer]:
    return []


def l1_sparsity_layers(cfg: L1Sparsity) -> list[keras.layers.Layer]:
    return [keras.layers.ActivityRegularization(l1=cfg.weight, name="l1_sparsity", dtype="float32")]


def kl_sparsity_layers(cfg: KLSparsity) -> list[keras.layers.Layer]:
    return [
        KLSparsityRegularization(
            cfg.target, cfg.weight, cfg.divide_by_batch_size, name="kl_sparsity", dtype="float32"
        )
    ]


def build_sparsity_layers(cfg: Sparsity) -> list[keras.layers.Layer]:
    """The layers that follow the coding layer (none when sparsity is off): the builder the sparsity's
    declaration names."""
    return build("sparsity", cfg.name)(cfg)


def coding_activation(cfg: Sparsity, default: str) -> str:
    """Sparse codings are sigmoid activations (a unit is 'on' near 1, 'off' near 0), as in the seed."""
    return default if isinstance(cfg, NoSparsity) else "sigmoid"
