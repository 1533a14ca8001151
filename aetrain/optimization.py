"""Optimizer and learning-rate schedule from the trainer config (a registry, no string chains)."""

from __future__ import annotations

import keras

from aetrain.config import TrainerConfig

OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "nadam": keras.optimizers.Nadam,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}


def learning_rate_schedule(trainer: TrainerConfig, steps_per_epoch: int):
    """A constant rate, or cosine decay to 0 over the run after ``warmup_epochs`` of linear warm-up."""
    if trainer.schedule == "constant":
        return trainer.learning_rate
    total_steps = trainer.epochs * steps_per_epoch
    warmup_steps = round(trainer.warmup_epochs * steps_per_epoch)
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(trainer.learning_rate, decay_steps=total_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=trainer.learning_rate,
        warmup_steps=warmup_steps,
    )


def build_optimizer(trainer: TrainerConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    kwargs = {"learning_rate": learning_rate_schedule(trainer, steps_per_epoch)}
    if trainer.weight_decay > 0:
        kwargs["weight_decay"] = trainer.weight_decay
    return OPTIMIZERS[trainer.optimizer](**kwargs)
