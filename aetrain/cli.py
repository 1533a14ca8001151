"""The ``aetrain`` command: compose the Hydra config, check it, train. Process concerns live here only.

Exit codes: 0 done, 2 a config value aetrain refuses, 3 a data problem, 4 training diverged,
5 the run folder cannot be written (permissions, full disk), 130 / 143 stopped by SIGINT / SIGTERM
(resumable with trainer.resume). Hydra's own composition errors keep Hydra's exit code 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before anything imports TensorFlow
# Before anything imports NumPy: its madvise(MADV_HUGEPAGE) on big arrays made the kernel compact
# memory on every first touch here; the 188 MB float32 training set took 0.47 s to fill instead of
# 0.10 s (transparent hugepages in "madvise" mode, measured). Set it to 1 to keep NumPy's default.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax

from aetrain.config import ConfigError, RunConfig, TrainerConfig, unresolved_value, validate
from aetrain.run_folders import RunFolderUnwritable, check_writable, claim_unique_dir, run_dir_or_resumed
from aetrain.runtime import available_cores, threads_per_job
from aetrain.stop_request import StopRequest

log = logging.getLogger("aetrain")

EXIT_CONFIG, EXIT_DATA, EXIT_DIVERGED, EXIT_OUTPUT = 2, 3, 4, 5

# conf/config.yaml names run folders through these: a folder no other run has, or the resumed one.
OmegaConf.register_new_resolver("aetrain.unique_dir", claim_unique_dir, use_cache=True, replace=True)
OmegaConf.register_new_resolver("aetrain.run_dir", run_dir_or_resumed, use_cache=True, replace=True)


def config_dir() -> Path:
    """The configs: packaged as aetrain/conf in a wheel, the repo's top-level conf/ in a checkout."""
    packaged = Path(__file__).resolve().parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf"


# What a sweep records in a failed job's metrics.json, by exit code.
FAILURE_STATUS = {
    EXIT_CONFIG: "refused",
    EXIT_DATA: "failed",
    EXIT_DIVERGED: "diverged",
    EXIT_OUTPUT: "failed",
}


class RunFailed(Exception):
    """A run that cannot go on, with the exit code it should end the process with."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RunInterrupted(RunFailed):
    """Training stopped on a signal; the sweep, if any, stops too. ``resume`` continues it."""

    def __init__(self, message: str, exit_code: int, resume: str | None) -> None:
        super().__init__(message, exit_code)
        self.resume = resume


class AbortNow(BaseException):
    """A second Ctrl-C / SIGTERM: leave at once (files on disk are whole: every write is atomic)."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    console = Console(stderr=False)
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        with stop_on_signals() as stop:
            return _train(cfg, output_dir, console, in_sweep, stop)
    except RunInterrupted as interruption:  # a signal stops the sweep too
        console.print(Panel(str(interruption), title="aetrain: stopped", border_style="yellow"))
        log.warning(str(interruption))
        if interruption.resume:  # unwrapped, to copy and paste
            console.print(
                f"Resume with:\n{interruption.resume}", soft_wrap=True, markup=False, highlight=False
            )
            log.info(f"resume with: {interruption.resume}")
        sys.exit(interruption.exit_code)
    except RunFailed as failure:
        console.print(Panel(str(failure), title="aetrain: run failed", border_style="red"))
        log.error(str(failure))
        if not in_sweep:
            sys.exit(failure.exit_code)
        _record_failed_job(output_dir, FAILURE_STATUS[failure.exit_code], str(failure))
    except Exception as error:
        if not in_sweep:
            raise
        # Hydra's launchers re-raise a job's exception and end the sweep: record it, go on.
        log.exception(f"job {hydra_cfg.job.num} failed")
        _record_failed_job(output_dir, "failed", f"{type(error).__name__}: {error}")
    return None  # the sweep goes on; an Optuna sweeper counts the trial as failed


def _record_failed_job(output_dir: Path, status: str, message: str) -> None:
    from aetrain.train import record_failure

    record_failure(output_dir, status, message)


def _train(
    cfg: DictConfig, output_dir: Path, console: Console, in_sweep: bool, stop: StopRequest | None = None
) -> float:
    try:
        run_cfg = validate(cfg)
    except ConfigError as error:
        raise RunFailed(str(error), EXIT_CONFIG) from None
    if in_sweep:
        run_cfg.trainer = _share_cores(run_cfg.trainer, HydraConfig.get().launcher)
    console.print(
        Panel(
            Syntax(OmegaConf.to_yaml(run_cfg.to_dict()), "yaml", background_color="default"),
            title="aetrain: resolved config",
            subtitle=str(output_dir),
        )
    )

    from aetrain.atomic_files import RunFolderWriteError
    from aetrain.checkpoints import CheckpointRefused
    from aetrain.data import DataError
    from aetrain.train import TrainingDiverged, TrainingInterrupted, run

    try:
        return run(run_cfg, output_dir, console, stop)
    except (ConfigError, CheckpointRefused) as error:  # trainer.resume: the folder, its config, its files
        raise RunFailed(str(error), EXIT_CONFIG) from None
    except DataError as error:
        raise RunFailed(str(error), EXIT_DATA) from None
    except TrainingDiverged as error:
        raise RunFailed(str(error), EXIT_DIVERGED) from None
    except RunFolderWriteError as error:
        raise RunFailed(str(error), EXIT_OUTPUT) from None
    except TrainingInterrupted as error:
        resume = resume_command(output_dir) if error.epochs_completed else None
        raise RunInterrupted(str(error), error.exit_code, resume) from None


# --- process edges: signals, the run folder before Hydra writes it, the console script ----------


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """SIGINT / SIGTERM ask training to stop at the next batch end (it saves, then exits 130 / 143);
    a second signal aborts at once. The previous handlers come back afterwards (multirun, tests)."""
    stop = StopRequest()

    def handle(signal_number: int, frame) -> None:
        if stop.requested:
            raise AbortNow(128 + signal_number)
        stop.ask(signal_number)
        print(
            f"\naetrain: {signal.Signals(signal_number).name} received: stopping after this batch "
            "(send it again to abort at once).",
            file=sys.stderr,
            flush=True,
        )

    previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def resume_command(output_dir: Path) -> str:
    """The command line that continues this run: its own overrides plus trainer.resume."""
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("trainer.resume=")]
    return shlex.join(["aetrain", *overrides, f"trainer.resume={output_dir}"])


class RunFolderCheck(Callback):
    """Hydra callback (conf/config.yaml): before Hydra creates or writes the run folder, check the
    config (a refused one leaves no folder behind), that the folder can be written and, for
    trainer.resume, that the folder holds a run this config may continue."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        run_dir = _folder_path(config, "hydra.run.dir")
        try:
            run_cfg = validate(OmegaConf.masked_copy(config, [key for key in config if key != "hydra"]))
            if run_cfg.trainer.resume:
                _check_resume(run_cfg, Path(run_cfg.trainer.resume), run_dir)
            check_writable(run_dir)
        except ConfigError as error:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # claimed by the run-dir resolver, still empty: leave nothing behind
            _exit_before_run(str(error), EXIT_CONFIG)
        except RunFolderUnwritable as error:
            _exit_before_run(str(error), EXIT_OUTPUT)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            check_writable(_folder_path(config, "hydra.sweep.dir"), "hydra.sweep.dir")
        except RunFolderUnwritable as error:
            _exit_before_run(str(error), EXIT_OUTPUT)


def _folder_path(config: DictConfig, key: str) -> Path:
    """The folder ``key`` names; an interpolation in it that does not resolve is exit 2, naming it."""
    try:
        return Path(str(OmegaConf.select(config, key)))
    except OmegaConfBaseException as error:
        raw = unresolved_value(config, key)
        why = str(error).strip().splitlines()[0]
        _exit_before_run(str(ConfigError(key, raw, "a folder path that resolves", why)), EXIT_CONFIG)
        raise  # unreachable: _exit_before_run exits


def _check_resume(run_cfg: RunConfig, resume: Path, run_dir: Path) -> None:
    from aetrain.resume import check_resumable, read_saved_run

    check_resumable(run_cfg, read_saved_run(resume))
    if run_dir.resolve() != resume.expanduser().resolve():
        raise ConfigError(
            "hydra.run.dir",
            str(run_dir),
            f"the resumed folder {resume} (leave hydra.run.dir unset)",
            "A resumed run writes into the folder it continues.",
        )


def _exit_before_run(message: str, exit_code: int) -> None:
    Console(stderr=False).print(Panel(message, title="aetrain: run refused", border_style="red"))
    sys.exit(exit_code)


HYDRA_ERROR_HINT = (
    "aetrain: Hydra refused the command line `{command}` (its reason is above). `aetrain --help` "
    "lists the config groups and their options; `aetrain --cfg job` prints every key with its value. "
    "Override keys that exist (key=value): aetrain refuses keys its schema does not have."
)


def entry() -> None:
    """The console script: Hydra's main, a hint after Hydra's own errors, a quiet exit on abort."""
    try:
        main()
    except AbortNow as abort:
        print("aetrain: aborted; the checkpoints on disk are whole (every write is atomic).", file=sys.stderr)
        sys.exit(abort.exit_code)
    except KeyboardInterrupt:  # Ctrl-C before training started
        print("aetrain: interrupted before training started.", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    except SystemExit as exit_:
        if hydra_refused(exit_):
            print(HYDRA_ERROR_HINT.format(command=shlex.join(sys.argv[1:])), file=sys.stderr)
        raise


def hydra_refused(exit_: SystemExit) -> bool:
    """Whether Hydra ended the process over its own error (composition, an override, the grammar).

    Hydra reports an error and calls ``sys.exit(1)`` inside its handler, so the exception it
    reported is the exit's ``__context__``: one of Hydra's or OmegaConf's own, not a crash of the run.
    """
    return exit_.code == 1 and isinstance(exit_.__context__, (HydraException, OmegaConfBaseException))


def _share_cores(trainer: TrainerConfig, launcher: DictConfig) -> TrainerConfig:
    """Cap TF's thread pools when the launcher runs jobs side by side (unless set explicitly)."""
    cap = threads_per_job(launcher, available_cores())
    if cap is None:
        return trainer
    return dataclasses.replace(
        trainer,
        intra_op_threads=trainer.intra_op_threads or cap,
        inter_op_threads=trainer.inter_op_threads or cap,
    )


if __name__ == "__main__":
    entry()
