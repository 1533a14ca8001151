"""The trainer's settings (conf/trainer/), and the optimizers, schedules and strategies they name, each
declared once beside its builder (named lazily, so checking never imports Keras or TensorFlow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aetrain.config.checks import MAX_COUNT, is_count, is_finite_at_least, require
from aetrain.config.registry import declare, names

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
#: A step holds one sub-graph per slice (aetrain.training.batch_splits): one per core of a big CPU.
MAX_BATCH_SPLITS = 64

# An optimizer's builder takes the keyword arguments of a Keras optimizer (learning_rate, weight_decay).
declare("optimizer", "adam", build="keras.optimizers:Adam")
declare("optimizer", "adamw", build="keras.optimizers:AdamW")
declare("optimizer", "nadam", build="keras.optimizers:Nadam")
declare("optimizer", "rmsprop", build="keras.optimizers:RMSprop")
declare("optimizer", "sgd", build="keras.optimizers:SGD")

# A schedule's builder: (TrainerConfig, total_steps, warmup_steps) -> a rate or a Keras schedule.
declare("schedule", "constant", build="aetrain.training.optimization:constant_rate")
declare("schedule", "cosine", build="aetrain.training.optimization:cosine_rate")
declare("schedule", "one_cycle", build="aetrain.training.optimization:one_cycle_rate")

#: Keras backends a run may train on (``trainer.backend``); ``auto`` chooses per run.
BACKENDS = ("auto", "tensorflow", "jax")

# A strategy's builder: () -> a tf.distribute.Strategy.
declare("strategy", "default", build="aetrain.training.distribution:default_strategy")
declare("strategy", "mirrored", build="aetrain.training.distribution:mirrored_strategy")


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 1e-2
    schedule: str = "one_cycle"
    warmup_epochs: float = 0.0
    weight_decay: float = 0.0
    ema: float | None = None  # momentum of the weights' moving average (aetrain.training.optimization)
    precision: str = "auto"
    jit_compile: bool = False
    run_eagerly: bool = False
    steps_per_execution: int = 1
    batch_splits: Any = "auto"  # "auto" or an integer >= 1 (aetrain.training.batch_splits)
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    deterministic: bool = False
    progress: bool = True
    grid_images: int = 10
    resume: str | None = None
    strategy: str = "default"
    backend: str = "auto"  # Keras's backend (aetrain.training.backend): auto | tensorflow | jax
    compilation_cache: bool = True  # JAX: compiled steps kept in the cache folder for later runs

    def check(self) -> None:
        """Value ranges, and names that no declaration above declares, refused naming the key."""
        require(is_count(self.epochs), "trainer.epochs", self.epochs, f"an integer from 1 to {MAX_COUNT}")
        require(
            is_count(self.batch_size),
            "trainer.batch_size",
            self.batch_size,
            f"an integer from 1 to {MAX_COUNT}",
        )
        optimizers = names("optimizer")
        require(self.optimizer in optimizers, "trainer.optimizer", self.optimizer, f"one of {optimizers}")
        require(
            is_finite_at_least(self.learning_rate, 0) and self.learning_rate > 0,
            "trainer.learning_rate",
            self.learning_rate,
            "a number > 0",
        )
        schedules = names("schedule")
        require(self.schedule in schedules, "trainer.schedule", self.schedule, f"one of {schedules}")
        require(
            0 <= self.warmup_epochs < self.epochs,
            "trainer.warmup_epochs",
            self.warmup_epochs,
            "a number >= 0 and below trainer.epochs",
        )
        require(
            is_finite_at_least(self.weight_decay, 0),
            "trainer.weight_decay",
            self.weight_decay,
            "a finite number >= 0",
        )
        require(
            self.ema is None or (isinstance(self.ema, int | float) and 0 < self.ema < 1),
            "trainer.ema",
            self.ema,
            "null (no average) or a number between 0 and 1, e.g. 0.99",
            "Each step keeps ema of the average and adds 1 - ema of the new weights.",
        )
        require(
            self.precision in PRECISIONS, "trainer.precision", self.precision, f"one of {list(PRECISIONS)}"
        )
        require(
            is_count(self.steps_per_execution),
            "trainer.steps_per_execution",
            self.steps_per_execution,
            f"an integer from 1 to {MAX_COUNT}",
        )
        splits = self.batch_splits
        most = min(MAX_BATCH_SPLITS, self.batch_size)
        require(
            splits == "auto"
            or (isinstance(splits, int) and not isinstance(splits, bool) and 1 <= splits <= most),
            "trainer.batch_splits",
            splits,
            f"auto (one slice per CPU core) or an integer from 1 to {most} (each slice at least one "
            f"image of trainer.batch_size={self.batch_size}, and at most {MAX_BATCH_SPLITS} slices)",
        )
        for key in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, key)
            require(
                value is None or is_count(value),
                f"trainer.{key}",
                value,
                f"null (TensorFlow decides) or an integer from 1 to {MAX_COUNT}",
            )
        require(
            is_count(self.grid_images),
            "trainer.grid_images",
            self.grid_images,
            f"an integer from 1 to {MAX_COUNT}",
        )
        require(
            self.resume is None or self.resume.strip() != "",
            "trainer.resume",
            self.resume,
            "null (a new run) or the folder of a run to continue",
        )
        require(
            self.backend in BACKENDS,
            "trainer.backend",
            self.backend,
            f"one of {list(BACKENDS)}",
            "Keras's backend: auto follows KERAS_BACKEND when set, else the faster for the model on this "
            "machine (docs/performance.md).",
        )
        strategies = names("strategy")
        require(
            self.strategy in strategies,
            "trainer.strategy",
            self.strategy,
            f"one of {strategies}",
            "`mirrored` copies the model onto every GPU (or every logical CPU device) of one machine.",
        )
