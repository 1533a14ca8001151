"""The ``aetrain`` command: compose the Hydra config, check it, train. Process concerns live here only.

Exit codes: 0 done, 2 a config value aetrain refuses (or a run folder that already holds a run),
3 a data problem, 4 training diverged, 5 the run folder cannot be written (permissions, full disk) or
is in use by another process, 130 / 143 stopped by SIGINT / SIGTERM (resumable with trainer.resume).
Hydra's own composition errors keep Hydra's exit code 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shlex
import signal
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before anything imports TensorFlow
# Before anything imports NumPy: its madvise(MADV_HUGEPAGE) on big arrays makes the kernel compact
# memory on every first touch (docs/performance.md). Set it to 1 to keep NumPy's default.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import Quote, QuotedString
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, read_write
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from aetrain import exit_codes
from aetrain.config import ConfigError, RunConfig, TrainerConfig, unresolved_value, validate
from aetrain.errors import AetrainError, failure
from aetrain.run_folder.claim import (
    RunFolderUnwritable,
    check_writable,
    claim_unique_dir,
    refuse_if_holds_run,
    refuse_symlinks_written_through,
    remove_created_folders,
    resolve_user_path,
    run_dir_or_resumed,
)
from aetrain.run_folder.lock import (
    RunFolderBusy,
    hold_run_folder,
    lock_until_exit,
    refuse_if_busy,
    release_run_folder,
)
from aetrain.run_folder.record import record_failure
from aetrain.training.runtime import available_cores, threads_per_job
from aetrain.training.stop_request import AbortNow, StopRequest, read_stop_request, request_stop

if TYPE_CHECKING:
    from aetrain.run_folder.resume import SavedRun

log = logging.getLogger("aetrain")

# conf/hydra/launcher/submitit_local.yaml gives submitit's local launcher config aetrain's launcher;
# Hydra checks it against the plugin's schema of the same name (what we want) and warns each time.
warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/submitit_local' is validated against ConfigStore schema"
)

# conf/config.yaml names run folders through these: a folder no other run has, or the resumed one.
OmegaConf.register_new_resolver("aetrain.unique_dir", claim_unique_dir, use_cache=True, replace=True)
OmegaConf.register_new_resolver("aetrain.run_dir", run_dir_or_resumed, use_cache=True, replace=True)


def config_dir() -> Path:
    """The configs: packaged as aetrain/conf in a wheel, the repo's top-level conf/ in a checkout."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "conf"
    return packaged if packaged.is_dir() else package.parent / "conf"


# What a sweep records in a failed job's metrics.json, by exit code.
FAILURE_STATUS = {
    exit_codes.CONFIG: "refused",
    exit_codes.DATA: "failed",
    exit_codes.DIVERGED: "diverged",
    exit_codes.OUTPUT: "failed",
}


@dataclasses.dataclass
class CheckedRun:
    """What RunFolderCheck found at the door of this process's single run: the validated config and,
    for trainer.resume, the stopped run it continues (checked against that config). The run uses
    them as they are: each check runs once per run."""

    folder: Path
    config: RunConfig
    saved: SavedRun | None


_checked_run: list[CheckedRun] = []  # this process's single run, once checked


class RunInterrupted(Exception):
    """Training stopped on a signal; the sweep, if any, stops too. ``resume`` continues it."""

    def __init__(self, message: str, exit_code: int, resume: str | None) -> None:
        super().__init__(message)
        self.exit_code, self.resume = exit_code, resume


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    console = Console(stderr=False)
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    sweep_dir = Path(hydra_cfg.sweep.dir) if in_sweep else None
    if sweep_dir is not None and (stopped := read_stop_request(sweep_dir)):  # started as the sweep stopped
        record_failure(output_dir, "never_started", f"the sweep was stopped by {stopped['signal']} first")
        return None
    # A sweep job holds its folder's lock while it runs (a single run's is taken by RunFolderCheck), so
    # `aetrain trainer.resume=` or a companion command on that folder is refused meanwhile.
    try:
        with hold_run_folder(output_dir) if in_sweep else contextlib.nullcontext():
            return _main(cfg, output_dir, console, in_sweep, sweep_dir)
    except (RunFolderBusy, RunFolderUnwritable) as error:  # taking the lock: _main keeps its own errors
        # Another process took the folder after the sweep checked it: the job writes nothing there.
        console.print(Panel(Text(str(error)), title="aetrain: job refused", border_style="red"))
        log.error(str(error))
        return None


def _main(cfg: DictConfig, output_dir: Path, console: Console, in_sweep: bool, sweep_dir: Path | None):
    hydra_cfg = HydraConfig.get()
    try:
        with stop_on_signals(sweep_dir) as stop:
            return _train(cfg, output_dir, console, in_sweep, stop)
    except RunInterrupted as interruption:  # a signal stops the sweep too (aetrain.sweeps.control)
        console.print(Panel(str(interruption), title="aetrain: stopped", border_style="yellow"))
        log.warning(str(interruption))
        if interruption.resume:  # unwrapped, to copy and paste
            console.print(
                f"Resume with:\n{interruption.resume}", soft_wrap=True, markup=False, highlight=False
            )
            log.info(f"resume with: {interruption.resume}")
        if not in_sweep:
            sys.exit(interruption.exit_code)
    except AetrainError as error:
        message, exit_code = failure(error)
        console.print(Panel(message, title="aetrain: run failed", border_style="red"))
        log.error(message)
        if not in_sweep:
            sys.exit(exit_code)
        record_failure(output_dir, FAILURE_STATUS.get(exit_code, "failed"), message)
    except Exception as error:
        if not in_sweep:
            raise
        # Hydra's launchers re-raise a job's exception and end the sweep: record it, go on.
        log.exception(f"job {hydra_cfg.job.num} failed")
        record_failure(output_dir, "failed", f"{type(error).__name__}: {error}")
    return None  # the sweep goes on; an Optuna sweeper counts the trial as failed


def _train(
    cfg: DictConfig, output_dir: Path, console: Console, in_sweep: bool, stop: StopRequest | None = None
) -> float:
    checked = _checked_run[-1] if _checked_run and not in_sweep else None
    if checked is not None and checked.folder == output_dir.resolve():
        run_cfg, saved = checked.config, checked.saved
    else:
        run_cfg, saved = validate(cfg), None
    if in_sweep:
        run_cfg.trainer = _share_cores(run_cfg.trainer, HydraConfig.get().launcher)
    console.print(
        Panel(
            Syntax(OmegaConf.to_yaml(run_cfg.to_dict()), "yaml", background_color="default"),
            title="aetrain: resolved config",
            subtitle=str(output_dir),
        )
    )

    from aetrain.training.loop import TrainingInterrupted, run

    try:  # any other AetrainError ends the run with its own exit code (_main)
        return run(run_cfg, output_dir, console, stop, checked_resume=saved)
    except TrainingInterrupted as error:
        resume = resume_command(output_dir) if error.epochs_completed else None
        raise RunInterrupted(str(error), error.exit_code, resume) from None


# --- process edges: signals, the run folder before Hydra writes it, the console script ----------


@contextlib.contextmanager
def stop_on_signals(sweep_dir: Path | None = None) -> Iterator[StopRequest]:
    """SIGINT / SIGTERM ask training to stop at the next batch end (it saves, then exits 130 / 143);
    a second signal aborts at once. The previous handlers come back afterwards (multirun, tests).
    In a sweep, the job also obeys the sweep's stop request, and a signal it gets stops the sweep."""
    stop = StopRequest(sweep_dir)

    def handle(signal_number: int, frame) -> None:
        if stop.take_nudge():  # a stop delivered again (see StopRequest.stop_now_if_safe)
            stop.stop_now_if_safe(frame)
            return
        if stop.requested:
            raise AbortNow(exit_codes.stopped_by(signal_number))
        when = f"stopping the {stop.phase} now" if stop.stops_at_once else "stopping after this batch"
        print(
            f"\naetrain: {signal.Signals(signal_number).name} received: {when} "
            "(send it again to abort at once).",
            file=sys.stderr,
            flush=True,
        )
        if sweep_dir is not None:
            request_stop(sweep_dir, signal_number)
        stop.ask(signal_number, frame)  # after training, this raises StopNow here and now

    previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        stop.close()
        for number, handler in previous.items():
            signal.signal(number, handler)


def resume_command(output_dir: Path) -> str:
    """The command line that continues this run: its own overrides plus trainer.resume."""
    return resume_command_line(HydraConfig.get().overrides.task, output_dir)


def resume_command_line(overrides: list[str], folder: Path) -> str:
    """``aetrain OVERRIDES trainer.resume=FOLDER`` that works when pasted into a shell, for any
    folder: quoted for Hydra's override grammar (:func:`hydra_value`), then for the shell."""
    kept = [o for o in overrides if not o.startswith("trainer.resume=")]
    return shlex.join(["aetrain", *kept, f"trainer.resume={hydra_value(str(folder))}"])


# Characters Hydra's override grammar takes in an unquoted string value (a subset: no `$`, which
# could start an interpolation, and nothing the grammar reads as a number, bool or null alone).
_HYDRA_PLAIN_PATH = re.compile(r"/[\w/.+@%-]*", re.ASCII)
# Backslashes before `${`: OmegaConf reads `\${` as a literal `${` and `\\` there as one backslash.
_BEFORE_INTERPOLATION = re.compile(r"(\\*)\$\{")


def hydra_value(text: str) -> str:
    """``text`` as a Hydra override value that reads back as exactly ``text``: as is when it is a
    plain absolute path, else in single quotes with Hydra's escapes (a quote, or backslashes before
    one), ``${`` escaped so that OmegaConf reads no interpolation."""
    if _HYDRA_PLAIN_PATH.fullmatch(text):
        return text
    literal = _BEFORE_INTERPOLATION.sub(lambda m: "\\" * (2 * len(m.group(1)) + 1) + "${", text)
    return QuotedString(text=literal, quote=Quote.single).with_quotes()


class RunFolderCheck(Callback):
    """Hydra callback (conf/config.yaml): before Hydra creates or writes the run folder, check the
    config, that the folder is this run's to write (not another run's, not in use by another
    process; for trainer.resume, a run this config may continue) and that it can be written; then
    lock it for the rest of the process (aetrain.run_folder.lock). A refused run leaves no folder it
    created behind and removes none it found."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        typed_dir = _folder_path(config, "hydra.run.dir")  # exit 2 if it does not resolve
        try:
            run_dir = resolve_user_path(str(typed_dir))  # the resolver claimed it above
            run_cfg = validate(OmegaConf.masked_copy(config, [key for key in config if key != "hydra"]))
            refuse_if_busy(run_dir)
            refuse_symlinks_written_through(run_dir)
            saved = None
            if run_cfg.trainer.resume:
                saved = _check_resume(run_cfg, resolve_user_path(run_cfg.trainer.resume), run_dir)
            else:
                refuse_if_holds_run(run_dir)
            check_writable(run_dir)
            lock_until_exit(run_dir)
            if not run_cfg.trainer.resume:  # a run that finished between the first look and the lock
                refuse_if_holds_run(run_dir)
            _checked_run[:] = [CheckedRun(run_dir.resolve(), run_cfg, saved)]
        except AetrainError as error:
            _exit_before_run(*failure(error))
        if str(config.hydra.run.dir) != str(run_dir):
            with read_write(config.hydra.run):  # Hydra writes where the checks looked: `~` expanded
                config.hydra.run.dir = str(run_dir)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        _checked_run.clear()
        release_run_folder()

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from aetrain.sweeps.control import check_sweep_folder, check_sweep_settings

        sweep_dir = resolve_user_path(str(_folder_path(config, "hydra.sweep.dir")))  # exit 2 if unresolved
        resume = config.get("resume_sweep") is True
        try:
            check_sweep_settings(config)
            refuse_if_busy(sweep_dir)
            check_sweep_folder(sweep_dir, resume)
            check_writable(sweep_dir, "hydra.sweep.dir")
            lock_until_exit(sweep_dir)  # the sweep's: one process writes sweep.json
            check_sweep_folder(sweep_dir, resume)  # a sweep that started between the first look and the lock
        except AetrainError as error:
            _exit_before_run(*failure(error))


def _folder_path(config: DictConfig, key: str) -> Path:
    """The folder ``key`` names; an interpolation in it that does not resolve is exit 2, naming it."""
    try:
        return Path(str(OmegaConf.select(config, key)))
    except OmegaConfBaseException as error:
        raw = unresolved_value(config, key)
        why = str(error).strip().splitlines()[0]
        _exit_before_run(*failure(ConfigError(key, raw, "a folder path that resolves", why)))
        raise  # unreachable: _exit_before_run exits


def _check_resume(run_cfg: RunConfig, resume: Path, run_dir: Path) -> SavedRun:
    """The stopped run ``trainer.resume`` names, checked against ``run_cfg``, or ConfigError."""
    from aetrain.run_folder.resume import check_resumable, read_saved_run

    saved = read_saved_run(resume)
    check_resumable(run_cfg, saved)
    if run_dir.resolve() != resume.expanduser().resolve():
        raise ConfigError(
            "hydra.run.dir",
            str(run_dir),
            f"the resumed folder {resume} (leave hydra.run.dir unset)",
            "A resumed run writes into the folder it continues.",
        )
    return saved


def _exit_before_run(message: str, exit_code: int) -> None:
    """Refuse the run: unlock, remove the folders this process created (none it found), exit."""
    # Text: a message may hold brackets (`logger=[csv,mlflow]`) that rich would read as markup
    release_run_folder(leave_no_trace=True)
    remove_created_folders()
    Console(stderr=False).print(Panel(Text(message), title="aetrain: run refused", border_style="red"))
    sys.exit(exit_code)


HYDRA_ERROR_HINT = (
    "aetrain: Hydra refused the command line `{command}` (its reason is above). `aetrain --help` "
    "lists the config groups and their options; `aetrain --cfg job` prints every key with its value. "
    "Override keys that exist (key=value): aetrain refuses keys its schema does not have."
)


def entry() -> None:
    """The console script: Hydra's main, a hint after Hydra's own errors, a quiet exit on abort;
    after a sweep, its summary and exit code (aetrain.sweeps.control)."""
    from aetrain.commands.extras import command_line_refusal
    from aetrain.sweeps.control import SweepStopped, discard_sweep, finish_sweep

    refusal = command_line_refusal(sys.argv[1:])
    if refusal:
        _exit_before_run(refusal, exit_codes.CONFIG)
    try:
        main()
    except SweepStopped as stopped:
        discard_sweep()
        sys.exit(stopped.exit_code)
    except AbortNow as abort:
        finish_sweep(aborted_by=abort.exit_code)
        print("aetrain: aborted; the checkpoints on disk are whole (every write is atomic).", file=sys.stderr)
        sys.exit(abort.exit_code)
    except KeyboardInterrupt:  # Ctrl-C before training started
        print("aetrain: interrupted before training started.", file=sys.stderr)
        sys.exit(exit_codes.SIGINT)
    except SystemExit as exit_:
        if hydra_refused(exit_):
            print(HYDRA_ERROR_HINT.format(command=shlex.join(sys.argv[1:])), file=sys.stderr)
        raise
    finally:
        release_run_folder()  # the kernel would too, at exit: this also removes the holder file
        if printing_only(sys.argv[1:]):
            remove_created_folders()  # `--cfg hydra --resolve` resolved a run folder it never uses
    sys.exit(finish_sweep())


def printing_only(arguments: list[str]) -> bool:
    """Whether Hydra only prints (``--cfg``, ``--info``, ``--help``) and runs nothing."""
    return any(
        argument in ("-c", "--cfg", "-i", "--info", "-h", "--help", "--hydra-help") for argument in arguments
    )


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
