"""One training run, start to finish: data -> model -> fit -> evaluate -> the run folder's contents.

This module owns what lands in the run folder: ``checkpoints/``, ``metrics.json``, and the pictures.
A run goes through three phases, training, evaluation (the test set) and pictures; a stop request
ends any of them, and ``metrics.json`` then says which (``interrupted_in``). Resuming a run stopped
after its training finished does only the phases it missed.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from aetrain import exit_codes
from aetrain.config import NoNoise, NoSparsity, RunConfig
from aetrain.data.idx import cache_dir
from aetrain.errors import AetrainError
from aetrain.models.family import family_of
from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import atomic_path, remove_partial_files
from aetrain.run_folder.record import write_metrics
from aetrain.run_folder.resume import SavedRun, check_resumable, read_saved_run
from aetrain.training.backend import activate, check_trains_on, choose_backend
from aetrain.training.batch_splits import resolve_batch_splits, split_steps
from aetrain.training.loggers import LoggedRun, RunLoggers
from aetrain.training.runtime import (
    configure_keras,
    describe_device,
    has_gpu,
    restore_default_precision,
    thread_budget,
    thread_pools,
)
from aetrain.training.scanned_steps import scan_steps
from aetrain.training.stop_request import EVALUATION, PICTURES, TRAINING, StopNow, StopRequest

log = logging.getLogger("aetrain")

SAMPLES = 30


class TrainingDiverged(AetrainError, RuntimeError):
    """The loss became NaN or inf; the message says when and what was kept."""

    exit_code = exit_codes.DIVERGED


class TrainingInterrupted(AetrainError, RuntimeError):
    """A stop request (Ctrl-C, SIGTERM) ended training between batches; ``last.keras`` holds the last
    whole epoch and ``metrics.json`` the history so far. ``exit_code``: 128 + the signal's number."""

    exit_code = exit_codes.SIGINT

    def __init__(self, message: str, exit_code: int, epochs_completed: int) -> None:
        super().__init__(message)
        self.exit_code, self.epochs_completed = exit_code, epochs_completed


def run(
    cfg: RunConfig,
    output_dir: Path,
    console: Console,
    stop: StopRequest | None = None,
    checked_resume: SavedRun | None = None,
) -> float:
    """Train the configured autoencoder, write the run folder, return the best validation loss.

    ``cfg.trainer.resume`` continues a stopped run (see aetrain.run_folder.resume); ``stop``, once set, ends
    training at the next batch end, or the evaluation and pictures at once, with
    :class:`TrainingInterrupted`. ``checked_resume``: the stopped run ``trainer.resume`` names, already
    read and checked against ``cfg`` by the caller (aetrain's CLI checks it at the door).
    """
    try:
        return _run(cfg, output_dir, console, stop, checked_resume)
    finally:
        restore_default_precision()  # the policy is global: what runs next in this process starts clean


def _run(
    cfg: RunConfig, output_dir: Path, console: Console, stop: StopRequest | None, checked: SavedRun | None
) -> float:
    """The run as a story: what there is to continue, the data, TensorFlow, the model, training, the
    training's figures, then the evaluation and the pictures, each phase stoppable."""
    stop = stop or StopRequest()
    saved = _saved_run_to_continue(cfg, output_dir, checked)
    # Training finished before the run was stopped: only the evaluation and pictures are missing.
    training_done = saved is not None and saved.epoch >= cfg.trainer.epochs
    data, data_seconds = _load_data(cfg)  # before TensorFlow loads: a bad file is reported at once
    backend = choose_backend(cfg.trainer.backend, run=cfg)
    # before Keras loads: it reads its backend once; TensorFlow's own kernels where runs must repeat
    activate(backend, onednn=not cfg.trainer.deterministic)
    splits = resolve_batch_splits(
        cfg, thread_budget(cfg.trainer.intra_op_threads), has_gpu=has_gpu(), backend=backend.name
    )
    precision = configure_keras(
        cfg.trainer,
        cfg.seed,
        batch_splits=splits,
        convolutional=family_of(cfg).convolutional,
        cache_folder=cache_dir(),
    )
    device = describe_device()
    log.info(f"device: {device}, precision {precision}, backend {backend.describe()}")
    manifest = _write_run_manifest(cfg, output_dir, device, precision, backend.name, data.source, saved)
    _log_data(data, data_seconds)

    from aetrain.training.distribution import build_strategy

    strategy = build_strategy(cfg.trainer.strategy)
    steps_per_epoch = math.ceil(len(data.x_train) / cfg.trainer.batch_size)
    model, first_epoch = _model_to_train(cfg, saved, strategy, steps_per_epoch, splits)
    watch = _Watchers.of(cfg, saved, model, output_dir, manifest, steps_per_epoch, console, stop)
    description = _run_description(
        cfg, model, device, strategy.num_replicas_in_sync, splits, precision, backend.name
    )
    watch.record_each_epoch(
        lambda: {
            **description,
            **_training_figures(cfg, watch, saved, first_epoch, data, data_seconds, None),
            "status": "running",
        },
        output_dir,
    )
    train_seconds = _fit(cfg, model, data, first_epoch, strategy, watch.callbacks, saved, training_done)

    metrics = {
        **description,
        **_training_figures(cfg, watch, saved, first_epoch, data, data_seconds, train_seconds),
    }
    if training_done:  # the figures of the process that trained
        metrics.update({key: saved.metrics[key] for key in TRAINING_FIGURES if key in saved.metrics})
    _end_if_diverged_or_stopped(watch, metrics, cfg, output_dir, stop)
    try:
        _evaluate(model, data, cfg, watch.checkpoints, metrics, saved if training_done else None, stop)
        _enter_phase(stop, PICTURES, f"phase pictures: writing them into {output_dir}")
        write_pictures(model, data, cfg, watch.history, output_dir, stop)
        stop.defer()
    except StopNow as stopped:
        interrupted = _stopped_after_training(stopped.phase, stop, metrics, cfg, output_dir)
        _finish_loggers(watch.loggers, metrics, output_dir)
        raise interrupted from None
    write_metrics(output_dir, metrics)  # status completed: written last, once every phase is done
    _finish_loggers(watch.loggers, metrics, output_dir)
    show_summary(console, metrics, output_dir)
    return metrics["best_val_loss"]


def _saved_run_to_continue(cfg: RunConfig, output_dir: Path, checked: SavedRun | None) -> SavedRun | None:
    """The stopped run ``trainer.resume`` names, checked against this config (here unless ``checked``
    already was), with what a kill -9 mid-write left removed; None for a new run."""
    if not cfg.trainer.resume:
        return None
    saved = checked
    if saved is None:
        saved = read_saved_run(cfg.trainer.resume)
        check_resumable(cfg, saved)
    for folder in (output_dir, output_dir / layout.CHECKPOINTS):
        remove_partial_files(folder)
    return saved


def _load_data(cfg: RunConfig):
    """The data set the config names, and the seconds it took."""
    from aetrain.data import load_data

    started = time.perf_counter()
    data = load_data(cfg.data)
    return data, time.perf_counter() - started


def _log_data(data, data_seconds: float) -> None:
    log.info(
        f"data: {len(data.x_train)} train / {len(data.x_val)} validation / {len(data.x_test)} test "
        f"images from {data.source} ({data_seconds:.2f} s)"
    )
    for note in data.clipped_notes():
        log.warning(note)


def _model_to_train(cfg: RunConfig, saved: SavedRun | None, strategy, steps_per_epoch: int, splits: int):
    """(compiled model, first epoch): built new, or the saved run's last checkpoint with its optimizer
    state and random generators restored; its steps cut into ``splits`` slices."""
    import keras

    from aetrain.models.build import build_model
    from aetrain.run_folder.checkpoints import (
        CheckpointRefused,
        copy_optimizer_state,
        load_checkpoint,
        restore_seed_generator_states,
    )
    from aetrain.training.optimization import build_optimizer

    first_epoch = 0
    with strategy.scope():  # variables (weights, optimizer slots) are created on every replica
        model = load_checkpoint(saved.last_checkpoint, expected=cfg) if saved else build_model(cfg)
        restored_optimizer = model.optimizer if saved else None
        model.compile(
            optimizer=build_optimizer(cfg.trainer, steps_per_epoch),
            loss=family_of(cfg).compiled_loss,
            metrics=_loss_term_metrics(cfg, saved),
            # trainer.jit_compile is TensorFlow's XLA switch; Keras on JAX runs unjitted only eagerly
            jit_compile=cfg.trainer.jit_compile if keras.config.backend() == "tensorflow" else True,
            run_eagerly=cfg.trainer.run_eagerly,
            # more steps than an epoch has only make Keras spin on an exhausted iterator
            steps_per_execution=min(cfg.trainer.steps_per_execution, steps_per_epoch),
        )
        if saved is not None:
            try:
                copy_optimizer_state(restored_optimizer, model.optimizer, model)
                restore_seed_generator_states(model, saved.random_state)
            except ValueError as err:
                raise CheckpointRefused(
                    saved.last_checkpoint, f"does not match its run's config: {err}."
                ) from None
            first_epoch = saved.epoch
            log.info(f"resuming {saved.folder} after epoch {saved.epoch} of {cfg.trainer.epochs}")
    check_trains_on(model, keras.config.backend(), cfg.variant.name)
    split_steps(model, splits)
    scan_steps(model, cfg.trainer.batch_size)
    log.info(
        f"model: {model.name}, {model.count_params():,} parameters; strategy {cfg.trainer.strategy} "
        f"over {strategy.num_replicas_in_sync} replica(s); each batch in {splits} slice(s)"
    )
    return model, first_epoch


@dataclass
class _Watchers:
    """The callbacks that watch training, kept by name: the figures and verdicts come from them."""

    startup: Any
    recorder: Any
    guard: Any
    stopper: Any
    checkpoints: Any
    progress: Any
    loggers: RunLoggers
    callbacks: list

    @property
    def history(self) -> dict[str, list[float]]:
        return self.recorder.history

    def record_each_epoch(self, metrics_so_far, output_dir: Path) -> None:
        """Rewrite metrics.json (status ``running``) after every whole epoch, once the checkpoints
        are saved: a run killed mid-way (kill -9) still leaves its history."""
        from aetrain.training.callbacks import LogEpochs

        self.callbacks.append(LogEpochs(lambda epoch, figures: write_metrics(output_dir, metrics_so_far())))

    @classmethod
    def of(cls, cfg, saved, model, output_dir, manifest, steps_per_epoch, console, stop) -> _Watchers:
        from aetrain.run_folder.checkpoints import seed_generator_states
        from aetrain.training.callbacks import (
            CheckpointBestAndLast,
            PaceValidation,
            RecordHistory,
            RecordStartup,
            RichProgress,
            StopOnNonFiniteLoss,
            StopOnRequest,
            UseAveragedWeights,
        )

        recorder = RecordHistory(saved.history if saved else None)
        checkpoints = CheckpointBestAndLast(
            output_dir / layout.CHECKPOINTS,
            metadata=lambda epoch: {
                "config": cfg.to_dict(),
                "epoch": epoch,
                "history": recorder.history,
                "random_state": seed_generator_states(model),
                "manifest": manifest,
            },
            **_best_so_far(saved),
        )
        watch = cls(
            startup=RecordStartup(),
            recorder=recorder,
            guard=StopOnNonFiniteLoss(),
            stopper=StopOnRequest(stop),
            checkpoints=checkpoints,
            progress=RichProgress(
                cfg.trainer.epochs, steps_per_epoch, console, show_bar=cfg.trainer.progress
            ),
            loggers=RunLoggers(
                cfg.logger,
                LoggedRun(cfg.to_dict(), output_dir, saved.history if saved else {}, saved is not None),
            ),
            callbacks=[],
        )
        watch.callbacks = [
            watch.startup, recorder, watch.guard, watch.stopper, checkpoints, watch.progress,
            PaceValidation(), *watch.loggers.callbacks(),
        ]  # fmt: skip
        # before the recorder: what they log (a VAE's beta, its val_loss at the full beta) is recorded
        watch.callbacks[1:1] = family_of(cfg).training_callbacks(cfg, steps_per_epoch)
        if cfg.trainer.ema is not None:  # first: every other callback sees the averaged weights
            watch.callbacks.insert(0, UseAveragedWeights(resumed=saved is not None))
        return watch


def _fit(cfg, model, data, first_epoch, strategy, callbacks, saved, training_done) -> float:
    """Train from ``first_epoch`` to ``trainer.epochs`` (nothing when training was done); seconds.
    Batches divide among the strategy's replicas where it needs them to (``batch_multiple``)."""
    from aetrain.data import make_dataset, make_training_dataset

    started = time.perf_counter()
    if training_done:
        log.info(f"training finished earlier ({saved.epoch} epochs): only the phases it missed")
        return time.perf_counter() - started
    multiple = getattr(strategy, "batch_multiple", 1)
    batches = make_training_dataset(
        data.x_train, cfg.trainer.batch_size, seed=cfg.seed, first_epoch=first_epoch, multiple_of=multiple
    )
    model.fit(
        batches,
        validation_data=make_dataset(data.x_val, cfg.trainer.batch_size, multiple_of=multiple),
        epochs=cfg.trainer.epochs,
        initial_epoch=first_epoch,
        verbose=0,
        shuffle=False,  # make_training_dataset shuffles, per epoch
        callbacks=[batches.follow_epochs(), *callbacks],
    )
    if hasattr(strategy, "training_ended"):  # aetrain's own strategies (not tf.distribute's)
        strategy.training_ended()
    return time.perf_counter() - started


def loss_terms(cfg: RunConfig) -> list[str]:
    """What the run's training (and validation) loss adds up, as metrics.json records it: runs whose
    terms differ are not ranked against each other (aetrain-report)."""
    family = family_of(cfg)
    terms = ["reconstruction"] if family.compiled_loss else []
    terms += family.loss_terms(cfg)
    if not isinstance(cfg.sparsity, NoSparsity):
        terms.append(f"{cfg.sparsity.weight:g} x {cfg.sparsity.name} penalty")
    return terms


def _run_description(
    cfg, model, device: str, replicas: int, splits: int, precision: str, backend: str
) -> dict[str, Any]:
    """What trained, and on what: the head of metrics.json."""
    return {
        "variant": cfg.variant.name,
        "noise": cfg.noise.name,
        "sparsity": cfg.sparsity.name,
        "latent_size": cfg.latent_size,
        "config": cfg.to_dict(),
        "loss_terms": loss_terms(cfg),
        "parameters": model.count_params(),
        "device": device,
        "replicas": replicas,
        "batch_splits": splits,
        "thread_pools": thread_pools(),
        "precision": precision,
        "backend": backend,
    }


def _training_figures(
    cfg: RunConfig, watch: _Watchers, saved, first_epoch, data, data_seconds, train_seconds
) -> dict[str, Any]:
    """How training went: history, best epoch, timings, status (``train_seconds`` None: still going)."""
    history, checkpoints, progress = watch.history, watch.checkpoints, watch.progress
    return {
        "history": history,
        "epochs_completed": len(history.get("loss", [])),
        "resumed_from_epoch": first_epoch if saved else None,
        "best_epoch": checkpoints.best_epoch,
        "best_val_loss": checkpoints.best if checkpoints.best_epoch else None,
        "data": {
            "name": cfg.data.name,
            "source": str(data.source),
            "images": data.counts(),
            "clipped": data.clipped,
        },
        "data_seconds": data_seconds,
        "startup_seconds": watch.startup.seconds,
        "train_seconds": train_seconds,
        "epoch_seconds": progress.epoch_seconds,
        "epoch_end_seconds": progress.epoch_ends,
        "images_per_second": _steady_throughput(len(data.x_train), progress.epoch_seconds),
        "status": "diverged" if watch.guard.failure else "completed",
    }


def _end_if_diverged_or_stopped(watch: _Watchers, metrics, cfg: RunConfig, output_dir: Path, stop) -> None:
    """A diverged run ends here with what it kept; a run stopped during training ends with its resume
    command. Both write metrics.json and finish the loggers first."""
    checkpoints = watch.checkpoints
    if watch.guard.failure:
        metrics["failure"] = watch.guard.failure
        write_metrics(output_dir, metrics)
        _finish_loggers(watch.loggers, metrics, output_dir)
        kept = (
            f"best.keras from epoch {checkpoints.best_epoch} is kept"
            if checkpoints.best_epoch
            else "no checkpoint was good enough to keep"
        )
        raise TrainingDiverged(
            f"Training diverged: {watch.guard.failure}; {kept}. Lower trainer.learning_rate "
            f"(now {cfg.trainer.learning_rate}) or use a smaller trainer.batch_size, then run again. "
            f"Details are in {output_dir / layout.METRICS}."
        )
    if watch.stopper.stopped_in_epoch is not None:
        interrupted = _interrupted(watch.stopper, stop, metrics, cfg, output_dir)
        _finish_loggers(watch.loggers, metrics, output_dir)
        raise interrupted


def _evaluate(model, data, cfg: RunConfig, checkpoints, metrics, finished: SavedRun | None, stop) -> None:
    """The evaluation phase: the best weights on the test set (a resumed run whose own evaluation
    finished before it was stopped keeps those figures), and the health warnings."""
    from aetrain.analysis.evaluation import evaluate_test_set
    from aetrain.run_folder.checkpoints import load_checkpoint

    _enter_phase(stop, EVALUATION, "phase evaluation: the test set")
    if checkpoints.best_weights is not None:
        model.set_weights(checkpoints.best_weights)
    elif checkpoints.best_epoch is not None:  # resumed, and no epoch since beat the saved best
        model.set_weights(load_checkpoint(checkpoints.best_path, compile=False, expected=cfg).get_weights())
    if finished is not None and "test" in finished.metrics:
        metrics["test"] = finished.metrics["test"]
        log.info("the test-set figures are those of the run's own evaluation")
    else:
        metrics["test"] = evaluate_test_set(model, data.x_test, cfg)
    metrics["warnings"] = _health_warnings(cfg, metrics["test"])


def _enter_phase(stop: StopRequest, phase: str, message: str) -> None:
    """Log the phase, then let a stop request end it at once (not while logging: a StopNow raised
    inside a log handler would garble the console)."""
    stop.defer()
    log.info(message)
    stop.enter(phase)


# What a resume that only finishes the later phases keeps from the metrics.json of the training.
TRAINING_FIGURES = (
    "startup_seconds",
    "train_seconds",
    "epoch_seconds",
    "epoch_end_seconds",
    "images_per_second",
)


def _write_run_manifest(
    cfg: RunConfig,
    output_dir: Path,
    device: str,
    precision: str,
    backend: str,
    source: Path | str,
    saved: SavedRun | None,
) -> dict[str, Any]:
    """manifest.json, before the first step, so an interrupted run has one (see aetrain.run_folder.manifest).

    The data files hashed are those directly in the folder the data came from (or the one file it
    came from); a data set that ships inside a library (digits) has none.
    """
    from aetrain.run_folder.manifest import run_manifest, write_manifest

    path = Path(source) if isinstance(source, Path) else None
    folder, names = (path.parent, [path.name]) if path is not None and path.is_file() else (path, None)
    manifest = run_manifest(
        seed=cfg.seed, device=device, precision=precision, data_dir=folder, data_names=names
    )
    manifest["data_source"] = str(source)
    manifest["backend"] = backend
    if saved is not None:
        manifest["resumed_from_epoch"] = saved.epoch
    write_manifest(output_dir, manifest)
    return manifest


def _health_warnings(cfg: RunConfig, test: dict[str, Any]) -> list[str]:
    """What the user should know about the trained model: reconstructions worse than the data's mean
    image, and what its family warns of (a VAE's latent term that exploded, its posterior collapse)."""
    from aetrain.analysis.evaluation import worse_than_mean_image_warning

    warnings = []
    if "mean_image_mse" in test:
        warnings.append(worse_than_mean_image_warning(test["mse"], test["mean_image_mse"]))
    return [warning for warning in warnings if warning] + family_of(cfg).test_warnings(test, cfg)


def _loss_term_metrics(cfg: RunConfig, saved: SavedRun | None) -> list:
    """A loss with more terms than the MSE records the MSE alone as ``reconstruction_loss``: a VAE's
    loss is reconstruction_loss (per-pixel MSE) + beta / pixels * kl_loss (nats per image, reported by
    the latent-loss layer); a sparse autoencoder's adds its penalty. A resumed run from before sparse
    runs recorded it goes on without it, so that its history stays one row per epoch."""
    sparse = not isinstance(cfg.sparsity, NoSparsity)
    if sparse and saved is not None and "reconstruction_loss" not in saved.history:
        sparse = False
    if not (family_of(cfg).loss_terms(cfg) or sparse):
        return []
    import keras

    return [keras.metrics.MeanSquaredError(name="reconstruction_loss")]


def _best_so_far(saved: SavedRun | None) -> dict[str, Any]:
    """The best validation loss and its epoch in a resumed run's history (it has a best.keras)."""
    if saved is None or not saved.best_checkpoint.is_file():
        return {}
    losses = [v if math.isfinite(v) else math.inf for v in saved.history.get("val_loss", [])]
    if not losses or min(losses) == math.inf:
        return {}
    best = min(losses)
    return {"best": best, "best_epoch": losses.index(best) + 1}


def _interrupted(stopper, stop: StopRequest, metrics: dict[str, Any], cfg: RunConfig, output_dir: Path):
    """Record the stop in metrics.json and build the exception that tells the user what was kept."""
    done = metrics["epochs_completed"]
    metrics["status"] = "interrupted"
    metrics["interrupted_in"] = TRAINING
    metrics["interruption"] = f"{stop.signal_name} during epoch {stopper.stopped_in_epoch}"
    write_metrics(output_dir, metrics)
    kept = (
        f"checkpoints/last.keras holds epoch {done}, the last complete one"
        if done
        else "no epoch was complete, so there is no checkpoint to resume from: run the same command again"
    )
    return TrainingInterrupted(
        f"Training stopped by {stop.signal_name} during epoch {stopper.stopped_in_epoch} of "
        f"{cfg.trainer.epochs}; {kept}. {output_dir / layout.METRICS} has the history so far.",
        stop.exit_code,
        done,
    )


def _stopped_after_training(
    phase: str, stop: StopRequest, metrics: dict[str, Any], cfg: RunConfig, output_dir: Path
) -> TrainingInterrupted:
    """Record a stop in the evaluation or the pictures, and say that a resume finishes them only."""
    metrics.update(status="interrupted", interrupted_in=phase)
    metrics["interruption"] = f"{stop.signal_name} during the {phase}"
    write_metrics(output_dir, metrics)
    done = metrics["epochs_completed"]
    missing = "the test-set evaluation and the pictures" if phase == EVALUATION else "the pictures"
    return TrainingInterrupted(
        f"Stopped by {stop.signal_name} during the {phase}, after training finished ({done} of "
        f"{cfg.trainer.epochs} epochs; checkpoints/best.keras and last.keras are whole). "
        f"{output_dir / layout.METRICS} records it; resuming does {missing}, without training again.",
        stop.exit_code,
        done,
    )


def _steady_throughput(images: int, epoch_seconds: list[float]) -> float | None:
    """Training images per second, leaving out the first epoch (tracing) when there are more."""
    steady = epoch_seconds[1:] or epoch_seconds
    return images / statistics.median(steady) if steady else None


def _finish_loggers(loggers: RunLoggers, metrics: dict[str, Any], output_dir: Path) -> None:
    """Tell the loggers the run ended (after metrics.json: MLflow uploads it), then record in
    metrics.json how each logger fared (one that failed at any point of the run is named there)."""
    loggers.finish(metrics)
    if loggers.sessions:
        loggers.record(metrics)
        write_metrics(output_dir, metrics)


def write_pictures(
    model,
    data,
    cfg: RunConfig,
    history: dict[str, list[float]],
    output_dir: Path,
    stop: StopRequest | None = None,
) -> None:
    """reconstructions.png (with the noisy inputs when noise is on), loss.png, samples.png for a VAE.

    ``stop`` is checked before each file (a request during one also stops it at once: see
    aetrain.training.stop_request).
    """
    check_stop = stop.check if stop is not None else lambda: None
    import numpy as np

    from aetrain.analysis.pictures import loss_curve, reconstruction_grid, sample_grid
    from aetrain.models.noise import corrupt

    count = min(cfg.trainer.grid_images, len(data.x_test))
    originals = data.x_test[:count]
    titles = [data.class_names[int(label)] for label in data.y_test[:count]]
    rows = [("original", originals)]
    noisy = None if isinstance(cfg.noise, NoNoise) else corrupt(model, originals)
    if noisy is not None:
        rows.append(("noisy input", noisy))
        rows.append(("reconstruction\nof noisy", model.predict(noisy, verbose=0).astype(np.float32)))
    # float32 whatever the model's output dtype (a bfloat16 array is unreadable without ml_dtypes)
    reconstructions = model.predict(originals, verbose=0).astype(np.float32)
    rows.append(("reconstruction", reconstructions))
    check_stop()
    reconstruction_grid(rows, titles, output_dir / layout.RECONSTRUCTIONS_PNG)
    check_stop()
    with atomic_path(output_dir / layout.RECONSTRUCTIONS_NPZ) as tmp:  # aetrain-report compares runs with it
        np.savez_compressed(
            tmp,
            originals=originals,
            reconstructions=reconstructions,
            labels=data.y_test[:count],
            class_names=np.array(data.class_names, dtype=str),
        )
    check_stop()
    loss_curve(history, output_dir / layout.LOSS_PNG)
    family = family_of(cfg)
    if family.samples_from_prior:
        check_stop()
        sample_grid(
            family.sample(model, SAMPLES, cfg.latent_size, cfg.seed),
            output_dir / layout.SAMPLES_PNG,
            f"decoded from codings drawn from {family.prior_description(cfg.latent_size)}",
        )


def show_summary(console: Console, metrics: dict[str, Any], output_dir: Path) -> None:
    table = Table(title="aetrain: final metrics", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = {
        "model": (
            f"{metrics['variant']} / noise {metrics['noise']} / sparsity {metrics['sparsity']}"
            f" / latent {metrics['latent_size']}"
        ),
        "best val loss": f"{metrics['best_val_loss']:.5f} (epoch {metrics['best_epoch']})",
        **{f"test {k}": f"{v:.5f}" if isinstance(v, float) else str(v) for k, v in metrics["test"].items()},
        "train time": f"{metrics['train_seconds']:.1f} s",
        "throughput": f"{metrics['images_per_second']:,.0f} images/s"
        if metrics["images_per_second"]
        else "n/a",
    }
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)
    for warning in metrics.get("warnings", []):
        console.print(f"[bold yellow]warning:[/bold yellow] {warning}")
        log.warning(warning)
    console.print(f"[bold]outputs:[/bold] {output_dir}")
    log.info(f"test metrics: {json.dumps(metrics['test'])}; outputs in {output_dir}")
