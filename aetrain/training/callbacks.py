"""Small Keras callbacks for a training run: live progress, atomic checkpoints, a divergence guard,
a stop on request (Ctrl-C).

``fit`` still calls ``on_epoch_end`` after a callback stops training in the middle of an epoch (the NaN
guard, a stop request). That epoch is partial: it is neither recorded nor checkpointed, so
``last.keras`` and the history always describe whole epochs and a resumed run can continue exactly.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import copy_atomically
from aetrain.run_folder.checkpoints import save_checkpoint
from aetrain.run_folder.record import seconds_since_process_start
from aetrain.training.stop_request import StopRequest

log = logging.getLogger("aetrain")

PROGRESS_REFRESH_SECONDS = 0.25


class RichProgress(keras.callbacks.Callback):
    """One rich progress bar per epoch with the live loss; a log line with the epoch's figures.

    The bar is redrawn at most every PROGRESS_REFRESH_SECONDS so it costs nothing measurable.
    """

    def __init__(self, epochs: int, steps_per_epoch: int, console: Console, show_bar: bool = True):
        super().__init__()
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.console, self.show_bar = console, show_bar
        self.epoch_seconds: list[float] = []
        self.epoch_ends: list[float] = []  # seconds from the process's start (what a user waits by)
        self._progress: Progress | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = self._last_draw = time.perf_counter()
        if not self.show_bar:
            return
        self._progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{self.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._task = self._progress.add_task("train", total=self.steps_per_epoch, loss="…")
        self._progress.start()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        if self._progress is None or now - self._last_draw < PROGRESS_REFRESH_SECONDS:
            return
        self._last_draw = now
        loss = (logs or {}).get("loss")
        self._progress.update(
            self._task, completed=batch + 1, loss=f"{float(loss):.5f}" if loss is not None else "…"
        )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._stop_bar()
        if self.model.stop_training:
            return  # a partial epoch (see the module docstring)
        seconds = time.perf_counter() - self._epoch_start
        self.epoch_seconds.append(seconds)
        self.epoch_ends.append(seconds_since_process_start())
        figures = "  ".join(f"{k} {float(v):.5f}" for k, v in (logs or {}).items() if k != "learning_rate")
        log.info(f"epoch {epoch + 1}/{self.epochs}  {figures}  ({seconds:.1f} s)")

    def on_train_end(self, logs: dict | None = None) -> None:
        self._stop_bar()

    def _stop_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class RecordHistory(keras.callbacks.Callback):
    """Per-epoch logs as plain floats, in a dict that checkpoints can embed while training runs."""

    def __init__(self, history: dict[str, list[float]] | None = None) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {k: list(v) for k, v in (history or {}).items()}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.model.stop_training:
            return  # a partial epoch (see the module docstring)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))


class CheckpointBestAndLast(keras.callbacks.Callback):
    """``best.keras`` when val_loss improves, ``last.keras`` every epoch; both written atomically.

    Also keeps the best weights in memory so the final evaluation uses them without a reload. A
    resumed run passes the best value and epoch so far, so ``best.keras`` is only replaced by a
    better epoch (its weights are then on disk, not in memory).
    """

    def __init__(
        self,
        directory: Path,
        metadata: Callable[[int], dict[str, Any]],
        monitor: str = "val_loss",
        best: float = math.inf,
        best_epoch: int | None = None,
    ):
        super().__init__()
        self.directory, self.metadata, self.monitor = directory, metadata, monitor
        self.best = best
        self.best_epoch = best_epoch
        self.best_weights: list | None = None

    @property
    def best_path(self) -> Path:
        return self.directory / layout.BEST_CHECKPOINT.name

    @property
    def last_path(self) -> Path:
        return self.directory / layout.LAST_CHECKPOINT.name

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.model.stop_training:
            return  # a partial epoch (see the module docstring): last.keras keeps the last whole one
        value = float((logs or {}).get(self.monitor, math.nan))
        if not (math.isfinite(value) and value < self.best):
            save_checkpoint(self.model, self.last_path, self.metadata(epoch + 1))
            return
        self.best, self.best_epoch = value, epoch + 1
        self.best_weights = self.model.get_weights()
        save_checkpoint(self.model, self.best_path, self.metadata(epoch + 1))
        copy_atomically(self.best_path, self.last_path)  # the same file: a copy costs less than a save


class UseAveragedWeights(keras.callbacks.SwapEMAWeights):
    """trainer.ema: validation, checkpoints and what follows training see the moving average of the
    weights, which reaches a given loss epochs sooner than the weights being stepped. From each epoch's
    end to the next one's start the model holds the average and the optimizer's average slots the
    stepped weights, so a checkpoint holds both, swapped, and a run resumed from one starts swapped.
    It must come before every callback that saves, evaluates or records at an epoch's end."""

    def __init__(self, resumed: bool) -> None:
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = resumed

    def _swap_variables(self) -> None:
        # Keras swaps TensorFlow variables by adding and subtracting them, which rounds the stepped weights
        self._apply_to_ema_optimizers(self._backend_swap_variables, self._backend_swap_variables)

    def on_train_begin(self, logs: dict | None = None) -> None:
        # fit ends by copying the average slots into the model: here they hold the stepped weights then
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        optimizer.finalize_variable_values = lambda var_list: None

    def on_test_end(self, logs: dict | None = None) -> None:
        """Keep the average in after validation: the epoch's end follows, which would swap it back in."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Swap the average in where no validation did; unlike Keras's callback, keep the stepped weights
        in the slots after the last epoch too, so ``last.keras`` of a finished run resumes exactly."""
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop at the first NaN/inf batch loss, or a NaN/inf validation loss at an epoch's end, and
    remember where, so the run can report it. It must come before the checkpoint callback: an epoch
    whose validation loss is not finite is not checkpointed."""

    def __init__(self) -> None:
        super().__init__()
        self.failure: str | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.failure = f"loss became {float(loss)} at epoch {self._epoch + 1}, batch {batch + 1}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        val_loss = (logs or {}).get("val_loss")
        if self.failure is None and val_loss is not None and not math.isfinite(float(val_loss)):
            self.failure = f"validation loss became {float(val_loss)} at epoch {epoch + 1}"
            self.model.stop_training = True


class StopOnRequest(keras.callbacks.Callback):
    """Stop at the end of the current batch once ``request`` is set (by a signal handler: commands/train)."""

    def __init__(self, request: StopRequest) -> None:
        super().__init__()
        self.request = request
        self.stopped_in_epoch: int | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.request.requested and self.stopped_in_epoch is None:
            self.stopped_in_epoch = self._epoch + 1
            self.model.stop_training = True


class PaceValidation(keras.callbacks.Callback):
    """Keep validation one batch ahead of its steps, not a whole split ahead. Keras hands the batch
    hooks to a thread where no callback defines ``on_test_batch_end``, and then nothing waits for a
    validation step before the next batch is sent: on JAX, whose steps run asynchronously, every
    batch of the validation split was queued in memory (18,000 images of 64x64x3: +436 MB). Defining
    the hook makes Keras read each step's figures as it ends (docs/data.md)."""

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Nothing to do: the hook's presence is the point."""


class RecordStartup(keras.callbacks.Callback):
    """Seconds from the process's start to the end of the first training step: what a user waits for.

    It covers the imports, the config, loading the data, building the model and tracing the step.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds: float | None = None
        self._done = False

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not self._done:
            self._done = True
            self.seconds = seconds_since_process_start()


class LogEpochs(keras.callbacks.Callback):
    """Hands each whole epoch's figures, as plain floats, to a function: the run's loggers
    (aetrain.training.loggers), the rewrite of metrics.json."""

    def __init__(self, log_epoch: Callable[[int, dict[str, float]], None]) -> None:
        super().__init__()
        self.log_epoch = log_epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.model.stop_training:
            return  # a partial epoch (see the module docstring)
        self.log_epoch(epoch + 1, {key: float(value) for key, value in (logs or {}).items()})


class ContainedCallback(keras.callbacks.Callback):
    """A logger's own Keras callback (TensorBoard's) whose failure turns it off instead of ending
    ``fit``: ``failed(when, error)`` records it (aetrain.training.loggers.RunLoggers)."""

    HOOKS = tuple(
        f"on_{phase}_{moment}"
        for phase in ("train", "epoch", "train_batch", "test", "test_batch", "predict", "predict_batch")
        for moment in ("begin", "end")
    )

    def __init__(self, inner: keras.callbacks.Callback, failed: Callable[[str, Exception], None]) -> None:
        super().__init__()
        self.inner, self.failed, self.off = inner, failed, False
        for hook in self.HOOKS:
            setattr(self, hook, functools.partial(self._forward, hook))

    def set_model(self, model) -> None:
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params) -> None:
        super().set_params(params)
        self.inner.set_params(params)

    def _forward(self, hook: str, *args, **kwargs) -> None:
        if self.off:
            return
        try:
            getattr(self.inner, hook)(*args, **kwargs)
        except Exception as error:
            self.off = True
            epoch = f" of epoch {args[0] + 1}" if hook.startswith("on_epoch") and args else ""
            self.failed(f"{hook}{epoch}", error)
