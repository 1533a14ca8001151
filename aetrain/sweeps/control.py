"""A sweep a user can stop, resume and trust: what ``aetrain -m``'s own process does.

conf/hydra/launcher/ names the launchers: ``basic`` (the default: :class:`SequentialLauncher`, one job
after another in this process), ``parallel`` and ``submitit_local`` (aetrain.sweeps.launchers) and
``slurm`` (aetrain.sweeps.slurm), which need the ``sweeps`` extra. They share one
:class:`SweepControl`, in the sweep's own process:

- records every job in ``SWEEP_DIR/sweep.json`` (aetrain.sweeps.record) as it starts and ends;
- on SIGINT / SIGTERM writes the sweep's stop request: every running job stops at its next batch
  end as a single run does (whole checkpoints, ``metrics.json`` with ``status: interrupted``), no
  queued job starts, and the sweep exits 130 / 143 with a summary. A second signal aborts: the jobs'
  processes get SIGTERM and leave at once (every write is atomic), then SIGKILL after
  :data:`ABORT_GRACE_S`;
- counts a job whose process died from outside (kill -9, the out-of-memory killer) as ``failed``
  with the reason, goes on with the others, and ends the sweep with exit code ``exit_codes.LOST_WORKER`` (6);
- with ``resume_sweep=true`` and the same ``hydra.sweep.dir``, leaves finished jobs alone, resumes
  stopped ones from their checkpoints and runs those that never started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.panel import Panel

from aetrain import exit_codes
from aetrain.config import ConfigError
from aetrain.errors import AetrainError
from aetrain.run_folder import layout
from aetrain.run_folder.claim import holds_run, remove_created_folders
from aetrain.run_folder.lock import busy_message, is_locked, read_holder, release_run_folder, this_process
from aetrain.run_folder.record import FINISHED, record_failure, run_outcome
from aetrain.sweeps.record import SweepJob, SweepRecord
from aetrain.training.stop_request import clear_stop_request, read_stop_request, request_stop, signal_number

log = logging.getLogger("aetrain")

ABORT_GRACE_S = 10.0
POLL_S = 0.1
RESUME_SWITCH = "resume_sweep=true"
ABORTED = "aborted by a second signal, before its batch ended (its checkpoints are whole)"


class SweepStopped(BaseException):
    """Ends the sweep (past the sweeper, which would start more jobs) with ``exit_code``."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


class SweepRefused(AetrainError):
    """A sweep folder that this command may not write into; the message says why and what to do."""

    exit_code = exit_codes.CONFIG


# --- the sweep folder, checked before Hydra writes into it ----------------------------------------


def check_sweep_folder(sweep_dir: Path, resume: bool) -> None:
    """Refuse a folder that holds an earlier sweep (or runs) unless resuming it; refuse resuming a
    folder that holds no sweep. Raises SweepRefused; writes nothing."""
    run = next((folder for folder in (sweep_dir, *sweep_dir.parents) if holds_run(folder)), None)
    if run is not None:
        raise SweepRefused(
            f"hydra.sweep.dir={sweep_dir} is {'' if run == sweep_dir else 'inside '}the run folder {run} "
            f"(it has {', '.join(holds_run(run))}): a sweep's jobs would be written among that run's "
            "files. Choose a hydra.sweep.dir outside every run folder (or leave it unset for a fresh one)."
        )
    record = SweepRecord.read(sweep_dir)
    if resume:
        if record is None:
            raise SweepRefused(
                f"resume_sweep=true, but {sweep_dir} holds no sweep.json, so there is no sweep to "
                "continue there. Give hydra.sweep.dir the folder of the stopped sweep, or leave out "
                "resume_sweep to start a new sweep."
            )
        return
    used = sorted(str(child.name) for child in _subfolders(sweep_dir) if holds_run(child))
    if record is not None or used:
        what = "an earlier sweep (sweep.json)" if record is not None else f"runs ({', '.join(used[:5])})"
        raise SweepRefused(
            f"hydra.sweep.dir={sweep_dir} already holds {what}; a new sweep would overwrite its jobs. "
            f"To continue that sweep, run the same command with {RESUME_SWITCH}; to start a new one, "
            "choose another hydra.sweep.dir (or leave it unset for a fresh folder)."
        )


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [child for child in folder.iterdir() if child.is_dir()]
    except OSError:
        return []


# --- the sweep's process side ----------------------------------------------------------------------


# --- the sweep's own settings, checked before anything launches -----------------------------------

#: hydra.* counts and how they are bounded: (key, lowest, what is allowed). joblib's n_jobs counts
#: back from the cores when negative (-1: one job per core), so only 0 is refused there.
SWEEP_COUNTS = (
    ("hydra.sweeper.n_trials", 0, "an integer >= 0: trials this search adds (0: the study only)"),
    ("hydra.sweeper.n_jobs", 1, "an integer >= 1: trials asked for per batch"),
    ("hydra.launcher.array_parallelism", 1, "an integer >= 1: array jobs at once"),
    ("hydra.launcher.cpus_per_task", 1, "an integer >= 1"),
    ("hydra.launcher.tasks_per_node", 1, "an integer >= 1"),
)


def check_sweep_settings(config: DictConfig) -> None:
    """Refuse a sweep count out of its range (hydra.sweeper.n_trials=-1, hydra.launcher.n_jobs=0)
    with ConfigError naming the key, before the sweep folder is written."""
    for key, lowest, allowed in SWEEP_COUNTS:
        value = OmegaConf.select(config, key, default=None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < lowest):
            raise ConfigError(key, value, allowed)
    n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs", default=None)
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0):
        raise ConfigError(
            "hydra.launcher.n_jobs",
            n_jobs,
            "a non-zero integer: jobs at once (-1: one per core, -2: all cores but one)",
        )


@dataclass
class PlannedJob:
    """A job of this launch: its record, the config it runs with, and what to do with it."""

    record: SweepJob
    config: DictConfig
    overrides: list[str]  # the sweep's, as sweep.json lists them
    action: str  # "run", "resume" or "skip" (finished in the sweep being resumed)
    run_overrides: list[str]  # what the job runs with: + trainer.resume=FOLDER when resumed


class SweepControl:
    """One per sweep, in the sweep's own process (see the module docstring)."""

    def __init__(self, config: DictConfig) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.resuming = config.get("resume_sweep") is True
        previous = SweepRecord.read(self.sweep_dir) if self.resuming else None
        self.previous = previous.jobs if previous else {}
        self.record = SweepRecord(self.sweep_dir, process=this_process())
        self.processes: dict[int, int] = {}  # job num -> pid of its process group (parallel, submitit)
        self.signals: list[int] = []
        self.abort_deadline: float | None = None  # then SIGKILL what is left (ABORT_GRACE_S)
        self.refused = 0  # the exit code of a refusal
        clear_stop_request(self.sweep_dir)
        self.previous_handlers = {n: signal.signal(n, self._handle) for n in (signal.SIGINT, signal.SIGTERM)}

    # signals
    def _handle(self, number: int, frame: Any) -> None:
        self.signals.append(number)
        if len(self.signals) == 1 and not self.abort_requested:
            request_stop(self.sweep_dir, number)
            _say(
                f"aetrain: {signal.Signals(number).name} received: every job of the sweep stops after "
                "its current batch and no new job starts (send it again to abort at once)."
            )
            return
        request_stop(self.sweep_dir, number, abort=True)
        _say("aetrain: aborting every job of the sweep now; the files on disk stay whole.")
        self.abort_deadline = time.monotonic() + ABORT_GRACE_S
        self.signal_processes(signal.SIGTERM)

    def kill_overdue(self) -> None:
        """While aborting: SIGKILL the job processes still there ABORT_GRACE_S after the signal."""
        if self.abort_deadline is not None and time.monotonic() > self.abort_deadline:
            self.signal_processes(signal.SIGKILL)
            self.abort_deadline = time.monotonic() + ABORT_GRACE_S

    def signal_processes(self, number: int) -> None:
        for pid in list(self.processes.values()):
            with contextlib.suppress(OSError):
                os.killpg(pid, number)

    @property
    def stop(self) -> dict[str, Any] | None:
        return read_stop_request(self.sweep_dir)

    @property
    def stopping(self) -> bool:
        return self.stop is not None

    @property
    def abort_requested(self) -> bool:
        stop = self.stop
        return bool(stop and stop["abort"])

    # jobs
    def plan(self, launcher: Any, job_overrides: Sequence[Sequence[str]], first: int) -> list[PlannedJob]:
        """The jobs of one launch, recorded as never started (and checked against a resumed sweep)."""
        planned = []
        for num, overrides in enumerate(job_overrides, start=first):
            overrides = [o for o in overrides if not o.startswith("resume_sweep=")]  # not the job's
            config = sweep_job_config(launcher, overrides, num)
            job = SweepJob(num, overrides, str(OmegaConf.select(config, "hydra.sweep.subdir")))
            planned.append(PlannedJob(job, config, overrides, self._action(job), overrides))
        if self.resuming and first == 0 and _plans_every_job_at_once(launcher.config):
            self._refuse_other_job_list([job.record.num for job in planned])
        for job in planned:
            job_dir = self.record.job_dir(job.record)
            if job.action != "skip" and is_locked(job_dir):
                busy = busy_message(job_dir, read_holder(job_dir))
                self._refuse(f"job {job.record.num}: {busy}", exit_codes.OUTPUT)
        for job in planned:  # every job checked: now change what the resumed sweep left
            job_dir = self.record.job_dir(job.record)
            if job.action == "resume":
                resume = f"trainer.resume={hydra_quote(str(job_dir.absolute()))}"
                job.run_overrides = [*job.overrides, resume]
                job.config = sweep_job_config(launcher, job.run_overrides, job.record.num)
            elif job.action == "skip":
                job.record.status, job.record.reason = run_outcome(job_dir)
            elif job.record.num in self.previous and job_dir.is_dir():
                shutil.rmtree(job_dir)  # no epoch to resume from: start again in an empty folder
            self.record.jobs[job.record.num] = job.record
        self.record.write()
        return planned

    def _action(self, job: SweepJob) -> str:
        job_dir = self.record.job_dir(job)
        previous = self.previous.get(job.num)
        if previous is None:
            if holds_run(job_dir):
                self._refuse(f"{job_dir} already holds a run, and sweep.json does not list job {job.num}.")
            return "run"
        if previous.overrides != job.overrides:
            self._refuse(
                f"job {job.num} of the stopped sweep ran {' '.join(previous.overrides)}; this command "
                f"gives it {' '.join(job.overrides)}. Repeat the stopped sweep's command line."
            )
        if previous.status in FINISHED and not previous.lost_worker:
            return "skip"
        if run_outcome(job_dir)[0] == "completed":  # resumed by hand with its "Resume with:" line
            return "skip"
        return "resume" if (job_dir / layout.LAST_CHECKPOINT).is_file() else "run"

    def _refuse_other_job_list(self, nums: list[int]) -> None:
        """A resumed sweep whose command line gives another list of jobs than the stopped one's:
        it would drop jobs from sweep.json or add new ones."""
        before, now = sorted(self.previous), sorted(nums)
        if before == now:
            return
        dropped, added = sorted(set(before) - set(now)), sorted(set(now) - set(before))
        change = "; ".join(
            part
            for part in (
                f"it would drop job(s) {', '.join(map(str, dropped))}" if dropped else "",
                f"add job(s) {', '.join(map(str, added))}" if added else "",
            )
            if part
        )
        self._refuse(
            f"the stopped sweep has {len(before)} job(s), this command line gives {len(now)}: {change}. "
            "Repeat the stopped sweep's command line (sweep.json lists each job's overrides), or start "
            "a new sweep in another hydra.sweep.dir."
        )

    def _refuse(self, why: str, exit_code: int = exit_codes.CONFIG) -> None:
        self.refused = exit_code
        _refuse(f"Cannot continue the sweep in {self.sweep_dir}: {why} Nothing was changed.", exit_code)

    def started(self, job: SweepJob, pid: int | None = None) -> None:
        job.status, job.reason = "running", None
        if pid is not None:
            self.processes[job.num] = pid
        self.record.write()

    def never_ran(self, job: SweepJob, reason: str) -> None:
        """Record a job that ended before it started (a cluster cancelled it while it waited)."""
        self.processes.pop(job.num, None)
        job.status, job.reason = "never_started", reason
        self.record.write()

    def ended(self, job: SweepJob, lost: str | None = None) -> None:
        """Record how ``job`` ended: from its metrics.json, or ``lost`` when its process died."""
        self.processes.pop(job.num, None)
        job_dir = self.record.job_dir(job)
        if lost is not None and self.abort_requested:  # killed while the sweep was aborting
            job.status, job.reason = "interrupted", ABORTED
            if not (job_dir / layout.METRICS).is_file():
                with contextlib.suppress(OSError):
                    record_failure(job_dir, "interrupted", job.reason)
        elif lost is not None:
            job.status, job.reason, job.lost_worker = "failed", lost, True
            with contextlib.suppress(OSError):
                record_failure(job_dir, "failed", lost, lost_worker=True)
            log.error(f"job {job.num}: {lost}")
        else:
            job.status, job.reason = run_outcome(job_dir)
            if job.status == "failed" and self.abort_requested and not (job_dir / layout.METRICS).is_file():
                job.status, job.reason = "interrupted", ABORTED  # no metrics.json
        self.record.write()

    def end_of_launch(self) -> None:
        """After a launch: stop the sweeper (which would launch more) when the sweep is stopping."""
        if self.stopping:
            raise SweepStopped(finish_sweep())

    def finish(self, aborted_by: int | None = None) -> int:
        for number, handler in self.previous_handlers.items():
            signal.signal(number, handler)
        stop = self.stop
        jobs = self.record.jobs.values()
        if self.refused:
            return self.refused
        if stop is not None or aborted_by is not None:
            name = stop["signal"] if stop else signal.Signals(aborted_by - 128).name
            self.record.status, self.record.signal = "interrupted", name
            code = exit_codes.stopped_by(signal_number(name))
            for job in jobs:
                if job.status == "running":
                    job.status, job.reason = "interrupted", ABORTED
        elif any(job.lost_worker for job in jobs):
            self.record.status, code = "failed", exit_codes.LOST_WORKER
        elif any(job.status in ("interrupted", "never_started") for job in jobs):
            # stopped from outside while the sweep went on: a SLURM job cancelled (scancel), or out
            # of requeues after its time limit. resume_sweep=true continues them.
            self.record.status, code = "interrupted", exit_codes.LOST_WORKER
        else:
            self.record.status, code = "completed", exit_codes.OK
        self.record.write()
        clear_stop_request(self.sweep_dir)
        _print_summary(self.record, code)
        return code


_control: SweepControl | None = None


def current_sweep() -> SweepControl | None:
    """This process's sweep, once its first launch began; None before."""
    return _control


def sweep_control(config: DictConfig) -> SweepControl:
    """The sweep's control, created at its first launch (a sweeper like Optuna's launches often)."""
    global _control
    if _control is None:
        _control = SweepControl(config)
    return _control


def finish_sweep(aborted_by: int | None = None) -> int:
    """Write the final sweep.json and print the summary; the sweep's exit code (0 if no sweep ran)."""
    global _control
    control, _control = _control, None
    return control.finish(aborted_by) if control else 0


def refuse_before_any_job(
    message: str, exit_code: int, sweep_dir: Path, resuming: bool, written: Sequence[Path] = ()
) -> None:
    """Refuse a sweep whose jobs cannot be launched (a cluster that refuses them or cannot be
    reached), before any job ran. A new sweep leaves no half-made folder: what this process wrote
    there goes (sweep.json, Hydra's multirun.yaml, the folders in ``written`` inside it, its lock),
    and so does the folder if this process made it. A resumed sweep's folder stays as it was."""
    if not resuming:
        for name in (layout.SWEEP_RECORD, "multirun.yaml"):
            with contextlib.suppress(OSError):
                (sweep_dir / name).unlink()
        for folder in written:
            if folder.resolve().is_relative_to(sweep_dir.resolve()):
                shutil.rmtree(folder, ignore_errors=True)
        release_run_folder(leave_no_trace=True)
        remove_created_folders()
    _refuse(message, exit_code)


def discard_sweep() -> None:
    """Forget this process's sweep without a summary (it was refused or has finished already): its
    signal handlers go back, and the next command run in this process starts with no sweep."""
    global _control
    control, _control = _control, None
    if control is not None:
        for number, handler in control.previous_handlers.items():
            signal.signal(number, handler)


def sweep_job_config(launcher: Any, overrides: list[str], num: int) -> DictConfig:
    config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, overrides)
    with open_dict(config):
        config.hydra.job.id = f"{config.hydra.job.name}_{num}"
        config.hydra.job.num = num
    return config


def skipped_return(planned: PlannedJob) -> JobReturn:
    """What the sweeper gets for a job finished in the sweep being resumed."""
    return JobReturn(overrides=planned.overrides, status=JobStatus.COMPLETED, _return_value=None)


def lost_return(planned: PlannedJob) -> JobReturn:
    """A job whose process died: failed, like a job that failed in aetrain (its main returns None).
    The reason is recorded in sweep.json by ``SweepControl.ended``."""
    return JobReturn(overrides=planned.overrides, status=JobStatus.COMPLETED, _return_value=None)


# --- the launchers --------------------------------------------------------------------------------


def log_plan(planned: list[PlannedJob], sweep_dir: Path, how: str) -> None:
    log.info(f"{how}, sweep output dir: {sweep_dir}")
    for job in planned:
        note = {"skip": " (finished: left alone)", "resume": " (resumed)"}.get(job.action, "")
        log.info(f"\t#{job.record.num} : {' '.join(filter_overrides(job.overrides))}{note}")


class SequentialLauncher(BasicLauncher):
    """Hydra's basic launcher (one job after another, in this process), stoppable and resumable."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        control = sweep_control(self.config)
        planned = control.plan(self, job_overrides, initial_job_idx)
        log_plan(planned, control.sweep_dir, f"Launching {len(planned)} jobs one after another")
        returns = []
        for job in planned:
            if job.action == "skip":
                returns.append(skipped_return(job))
                continue
            if control.stopping:
                break
            control.started(job.record)
            try:
                returns.append(
                    run_job(
                        hydra_context=self.hydra_context,
                        task_function=self.task_function,
                        config=job.config,
                        job_dir_key="hydra.sweep.dir",
                        job_subdir_key="hydra.sweep.subdir",
                    )
                )
            finally:  # also when a second signal aborts the job (stop_request.AbortNow)
                control.ended(job.record)
                configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        control.end_of_launch()
        return returns


# --- what the user sees ---------------------------------------------------------------------------


def hydra_quote(value: str) -> str:
    """``value`` as one Hydra override value: unquoted when plain, else single-quoted."""
    if re.fullmatch(r"[\w./@:+-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def continue_command(sweep_dir: Path) -> str:
    """This sweep's command line with its folder and the resume switch, quoted for Hydra inside and
    for the shell outside (a folder with a space and a comma pastes as one path)."""
    kept = [a for a in sys.argv[1:] if not a.startswith(("hydra.sweep.dir=", "resume_sweep="))]
    if "-m" not in kept and "--multirun" not in kept:
        kept.insert(0, "-m")
    folder = hydra_quote(str(sweep_dir.absolute()))
    return shlex.join(["aetrain", *kept, f"hydra.sweep.dir={folder}", RESUME_SWITCH])


def _print_summary(record: SweepRecord, code: int) -> None:
    counts = record.counts()
    order = ["completed", "interrupted", "never_started", "failed", "refused", "diverged", "running"]
    parts = ", ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in order if counts.get(s))
    headline = {
        "interrupted": f"sweep stopped by {record.signal}"
        if record.signal
        else "sweep finished, but the cluster stopped or cancelled a job before its end",
        "failed": "sweep finished, but the process of a job died",
    }.get(record.status, "sweep finished")
    lines = [f"aetrain: {headline}: {parts} ({record.path})"]
    shared = set.intersection(*(set(job.overrides) for job in record.jobs.values())) if counts else set()
    for _, job in sorted(record.jobs.items()):
        own = [o for o in job.overrides if o not in shared or len(record.jobs) == 1]  # what differs
        reason = f" - {job.reason}" if job.reason else ""
        lines.append(f"  job {job.num} [{job.dir}] {job.status}: {' '.join(own)}{reason}")
    if record.status in ("interrupted", "failed"):
        lines.append(f"Continue it with:\n{continue_command(record.folder)}")
    lines.append(f"exit code {code}")
    _say("\n".join(lines), stdout=True)


def _say(text: str, stdout: bool = False) -> None:
    print(text, file=sys.stdout if stdout else sys.stderr, flush=True)


def _refuse(message: str, exit_code: int = exit_codes.CONFIG) -> None:
    Console(stderr=False).print(Panel(message, title="aetrain: sweep refused", border_style="red"))
    raise SweepStopped(exit_code)


def _plans_every_job_at_once(config: DictConfig) -> bool:
    """Whether the sweeper hands the launcher every job in its first launch (Hydra's basic sweeper
    without max_batch_size): only then can a resumed sweep's job list be compared whole."""
    sweeper = OmegaConf.select(config, "hydra.sweeper", default=None) or {}
    target = str(sweeper.get("_target_", ""))
    return target.endswith("BasicSweeper") and sweeper.get("max_batch_size") is None
