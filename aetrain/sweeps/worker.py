"""The process one job of a sweep runs in, away from the sweep's own: a parallel sweep's worker
(``hydra/launcher=parallel``) and a SLURM job (``hydra/launcher=slurm``, :func:`run_slurm_job`).

``python -m aetrain.sweeps.worker PAYLOAD RESULT PARENT_PID``: reads the job (cloudpickled, as joblib
sends it), runs it as Hydra's joblib launcher would, writes the cloudpickled JobReturn to RESULT.
A fresh process per job: TensorFlow's thread caps are set before its first op, and a worker that
dies (kill -9, out of memory) takes only its own job with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to send SIGTERM when the sweep's process dies (even by kill -9): the job then stops
    at its next batch end, as on Ctrl-C, instead of training on alone."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the sweep's stop request still reaches the job
        return
    if os.getppid() != parent_pid:  # it died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def main(payload: str, result: str, parent_pid: str) -> int:
    die_with_parent(int(parent_pid))
    import cloudpickle
    from hydra_plugins.hydra_joblib_launcher._core import execute_job

    from aetrain.run_folder.atomic_files import atomic_path
    from aetrain.training.stop_request import AbortNow

    arguments = cloudpickle.loads(Path(payload).read_bytes())
    try:
        job_return = execute_job(*arguments)
    except AbortNow as abort:  # a second signal: files on disk are whole
        return abort.exit_code
    with atomic_path(Path(result)) as partial:
        partial.write_bytes(cloudpickle.dumps(job_return))
    return 0


# --- one job of a SLURM sweep, in the process submitit starts on a node ----------------------------

log = logging.getLogger("aetrain")

RESTART_COUNT = "SLURM_RESTART_COUNT"  # how often SLURM requeued this job; unset before the first time
REQUEUED = 255  # the exit status of a job that leaves no result because SLURM runs it again


def run_slurm_job(
    run: Callable[[list[str]], Any], overrides: list[str], job_dir: Path, sweep_dir: Path
) -> Any:
    """Run one SLURM job of a sweep, ``run(OVERRIDES)`` (Hydra's submitit ``__call__``), so that
    preemption, requeueing and time limits lose nothing.

    SLURM signals a job before it kills it: SIGUSR2 (submitit's ``--signal``, ``signal_delay_s``
    before the time limit, or a preemption) and SIGTERM (``scontrol requeue``, preemption,
    ``scancel``, the time limit itself). Either stops the run at its next batch end, as a single run
    stops (whole checkpoints, ``interrupted``), and only this job: it is SLURM's word to this one.
    Then a job stopped by SIGUSR2 requeues itself as submitit does (a time limit at most
    ``hydra.launcher.max_num_timeout`` times) and one SLURM requeues leaves for its next start; both
    leave no result, so the sweep waits for them. Otherwise (``scancel``, out of requeues) the job ends
    ``interrupted``, with its resume line. A requeued job resumes from its own
    ``checkpoints/last.keras`` at the epoch it reached (or starts again in an emptied folder when it
    had none); one that had already finished does nothing again.
    """
    from aetrain.run_folder.record import run_outcome
    from aetrain.training.stop_request import keep_signals_to_this_job, read_stop_request

    keep_signals_to_this_job()
    started = time.time()
    restarts = int(os.environ.get(RESTART_COUNT) or 0)
    if restarts:
        finished = _finished_return(overrides, job_dir)
        if finished is not None:
            _say(f"SLURM started this job again (restart {restarts}); it had finished: nothing to do")
            return finished
        overrides = _continued(overrides, job_dir, restarts)
    preemption = _Preemption()
    try:
        job_return = run(overrides)
    finally:
        preemption.over()
    if run_outcome(job_dir)[0] != "interrupted" or read_stop_request(sweep_dir) is not None:
        return job_return  # finished, or stopped with the whole sweep (Ctrl-C on its process)
    if preemption.signalled:
        return _requeue_or(job_return, preemption.signal_number, started)
    if _slurm_requeues_this_job(restarts):
        log.info("SLURM requeues this job: it resumes from its checkpoint when it starts again")
        raise SystemExit(REQUEUED)
    return job_return


def _finished_return(overrides: list[str], job_dir: Path) -> Any:
    """What the sweep gets for a requeued job whose earlier start finished it (completed, refused,
    failed on its own, diverged), or None if it did not."""
    from hydra.core.utils import JobReturn, JobStatus

    from aetrain.run_folder.record import FINISHED, read_metrics_or_empty

    metrics = read_metrics_or_empty(job_dir)
    if metrics.get("status") not in FINISHED:
        return None
    value = metrics.get("best_val_loss") if metrics.get("status") == "completed" else None
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=value)


def _continued(overrides: list[str], job_dir: Path, restarts: int) -> list[str]:
    """The overrides of a requeued job: ``trainer.resume`` at its own folder when it has a
    checkpoint; else its folder emptied (what an epoch never finished left), to start again."""
    from aetrain.run_folder import layout
    from aetrain.sweeps.control import hydra_quote

    if any(override.startswith("trainer.resume=") for override in overrides):
        return overrides  # a job of a resumed sweep: the same folder
    if (job_dir / layout.LAST_CHECKPOINT).is_file():
        _say(f"SLURM started this job again (restart {restarts}): resuming from {job_dir}")
        return [*overrides, f"trainer.resume={hydra_quote(str(job_dir.absolute()))}"]
    if job_dir.is_dir():
        _say(f"SLURM started this job again (restart {restarts}): no epoch to resume, starting over")
        shutil.rmtree(job_dir)
    return overrides


def _say(text: str) -> None:
    """A line in the job's SLURM log (its stderr), before the run's own log exists."""
    print(f"aetrain: {text}", file=sys.stderr, flush=True)


class _Preemption:
    """SIGUSR2 (submitit's ``--signal``) handed to the run's own stop (commands/train.py's SIGTERM
    handler, while a run is on): it stops at its next batch end. One that comes before the run has
    that handler (Python and TensorFlow still loading) is handed on as soon as it has."""

    def __init__(self) -> None:
        from submitit.slurm.slurm import SlurmJobEnvironment

        self.signal_number = int(SlurmJobEnvironment._usr_sig())
        self.signalled = False
        self._outside = signal.getsignal(signal.SIGTERM)  # submitit's own, while no run is on
        self._over = threading.Event()
        self._waiting = False
        signal.signal(self.signal_number, self._handle)

    def _handle(self, number: int, frame: Any) -> None:
        self.signalled = True
        stop = signal.getsignal(signal.SIGTERM)
        if stop is not self._outside and callable(stop):
            stop(number, frame)  # the run's: "SIGUSR2 received: stopping after this batch"
        elif not self._waiting and not self._over.is_set():
            self._waiting = True
            threading.Thread(target=self._hand_on_when_ready, daemon=True).start()

    def _hand_on_when_ready(self) -> None:
        while not self._over.wait(0.2):
            if signal.getsignal(signal.SIGTERM) is not self._outside:
                self._waiting = False
                os.kill(os.getpid(), self.signal_number)  # now the run's handler takes it
                return

    def over(self) -> None:
        self._over.set()


def _requeue_or(job_return: Any, signal_number: int, started: float) -> Any:
    """Requeue this job as submitit does on its ``--signal`` (``scontrol requeue``, its count of time
    limits in the submitted pickle), and leave without a result; or, after ``max_num_timeout`` time
    limits, end it ``interrupted`` (``job_return``)."""
    from submitit.core import utils as submitit_utils
    from submitit.core.job_environment import JobEnvironment, SignalHandler

    environment = JobEnvironment()
    delayed = submitit_utils.DelayedSubmission.load(environment.paths.submitted_pickle)
    handler = SignalHandler(environment, environment.paths, delayed)
    handler._start_time = started  # its time-limit test counts from the job's start
    try:
        handler.checkpoint_and_try_requeue(signal_number)  # requeues, then sys.exit(-1)
    except submitit_utils.UncompletedJobError as not_requeued:
        log.warning(f"{not_requeued} The job ends interrupted; resume_sweep=true continues it.")
        return job_return
    raise SystemExit(REQUEUED)  # not reached: submitit exits itself


def _slurm_requeues_this_job(restarts: int) -> bool:
    """Whether SLURM is requeueing this job (``scontrol requeue``, a preemption that requeues): it
    counts the restart when it signals the job, so ``Restarts`` is above this start's."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return False
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        shown = subprocess.run(
            ["scontrol", "show", "job", "--oneliner", job_id], capture_output=True, text=True, timeout=30
        ).stdout
        fields = dict(field.split("=", 1) for field in shown.split() if "=" in field)
        return int(fields.get("Restarts", 0)) > restarts
    return False


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
