"""Optimizer and learning-rate schedule from the trainer config: the builders that the declarations in
aetrain.config.trainer name (no string chains, no second list)."""

from __future__ import annotations

import keras

from aetrain.config import TrainerConfig
from aetrain.config.registry import build

# One-cycle (Smith & Topin 2018, as fastai runs it): start at peak/25, rise linearly to the peak over
# the warm-up (30% of the run unless trainer.warmup_epochs says otherwise), cosine-anneal to ~0.
ONE_CYCLE_START_DIVISOR = 25.0
ONE_CYCLE_WARMUP_FRACTION = 0.3


def constant_rate(trainer: TrainerConfig, total_steps: int, warmup_steps: int):
    return trainer.learning_rate


def cosine_rate(trainer: TrainerConfig, total_steps: int, warmup_steps: int):
    """Cosine decay to 0 over the run, after ``warmup_steps`` of linear warm-up from 0."""
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(trainer.learning_rate, decay_steps=total_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=trainer.learning_rate,
        warmup_steps=warmup_steps,
    )


def one_cycle_rate(trainer: TrainerConfig, total_steps: int, warmup_steps: int):
    """Linear from peak/25 to the peak, then cosine to 0: a high rate early, a fine finish."""
    if warmup_steps == 0:
        warmup_steps = max(round(ONE_CYCLE_WARMUP_FRACTION * total_steps), 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=trainer.learning_rate / ONE_CYCLE_START_DIVISOR,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=trainer.learning_rate,
        warmup_steps=warmup_steps,
    )


def learning_rate_schedule(trainer: TrainerConfig, steps_per_epoch: int):
    """The rate (a float or a Keras schedule) that ``trainer.schedule`` names, over the whole run."""
    total_steps = trainer.epochs * steps_per_epoch
    warmup_steps = round(trainer.warmup_epochs * steps_per_epoch)
    return build("schedule", trainer.schedule)(trainer, total_steps, warmup_steps)


def build_optimizer(trainer: TrainerConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    kwargs = {"learning_rate": learning_rate_schedule(trainer, steps_per_epoch)}
    if trainer.weight_decay > 0:
        kwargs["weight_decay"] = trainer.weight_decay
    if trainer.ema is not None:  # the average lives in the optimizer; UseAveragedWeights swaps it in
        kwargs.update(use_ema=True, ema_momentum=trainer.ema)
    return build("optimizer", trainer.optimizer)(**kwargs)
