"""Submitting and following a sweep on a SLURM cluster: ``hydra/launcher=slurm`` (Hydra's submitit
plugin, ``pip install 'aetrain[sweeps]'``).

What the launcher shares with ``submitit_local`` (submitting an array, watching the jobs, telling how
one died) is aetrain.sweeps.launchers.SubmititLauncherMixin; the sweep's record, signals and resuming
are aetrain.sweeps.control. Here is what only a cluster needs: asking it first whether it would take
the jobs (``sbatch --test-only``), following them through squeue, cancelling those not yet started
when the sweep stops, and reading what SLURM left when a job ended without a result.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, setup_globals
from hydra_plugins.hydra_submitit_launcher import submitit_launcher

from aetrain import exit_codes
from aetrain.run_folder.record import run_outcome
from aetrain.sweeps.control import (
    PlannedJob,
    SweepControl,
    current_sweep,
    log,
    lost_return,
    refuse_before_any_job,
    sweep_job_config,
)
from aetrain.sweeps.launchers import SubmititLauncherMixin


class SlurmLauncher(SubmititLauncherMixin, submitit_launcher.SlurmLauncher):
    """``hydra/launcher=slurm``: one SLURM job per sweep job, submitted as one array (their stop
    request: the shared folder).

    Before anything is written, ``sbatch --test-only`` asks the cluster whether it would take the
    jobs: a request it refuses (an unknown partition, more CPUs or memory than a node has) is exit 2
    with SLURM's own message, a cluster that cannot be reached exit 5. The jobs are followed through
    squeue, so a cluster without accounting (sacct) works as well. Each job runs in
    aetrain.sweeps.worker.run_slurm_job: preempted, requeued or out of time, it stops whole and
    resumes from its own checkpoint.
    """

    _cancelled_pending = False

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        """One job, on a node of the cluster (submitit's process there)."""
        from aetrain.sweeps.worker import run_slurm_job

        Singleton.set_state(singleton_state)
        setup_globals()
        config = sweep_job_config(self, list(sweep_overrides), job_num)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        job_dir = sweep_dir / str(config.hydra.sweep.subdir)
        run = super().__call__

        def run_with(overrides: list[str]) -> JobReturn:
            return run(overrides, job_dir_key, job_num, job_id, singleton_state)

        return run_slurm_job(run_with, list(sweep_overrides), job_dir, sweep_dir)

    def _ready_executor(self, jobs: int) -> Any:
        first = current_sweep() is None  # later launches (an Optuna search's) were checked with the first
        if first and shutil.which("sbatch") is None:
            self._refuse(
                "hydra/launcher=slurm submits the sweep's jobs with SLURM's sbatch, which is not on this "
                "machine's PATH. Run the sweep where SLURM's commands are (a cluster's login node), or "
                "run it here with hydra/launcher=submitit_local or hydra/launcher=parallel.",
                exit_codes.OUTPUT,
            )
        executor = self._executor(self.params)
        if first:
            problem = slurm_refusal(executor, jobs, self.params)
            if problem is not None:
                self._refuse(*problem)
        return executor

    def _submit(self, executor: Any, control: SweepControl, to_run: list[PlannedJob]) -> list[Any]:
        from submitit.core.utils import FailedJobError

        try:
            return super()._submit(executor, control, to_run)
        except FailedJobError as error:  # accepted by --test-only, refused now (a limit on queued jobs)
            self._refuse(*_refusal_of(str(error), self.params, what="refused the sweep's jobs"))
            raise  # not reached

    def _refuse(self, message: str, exit_code: int) -> None:
        """Refuse the sweep before any job ran; a new sweep leaves no folder (see control)."""
        folder = Path(str(self.params.get("submitit_folder", ""))).parent
        sweep_dir, resuming = Path(str(self.config.hydra.sweep.dir)), self.config.get("resume_sweep") is True
        refuse_before_any_job(message, exit_code, sweep_dir, resuming, [folder] if folder.name else [])

    def _follow(self, submitted: list[tuple[PlannedJob, Any]]) -> None:
        watcher = squeue_watcher()
        for _, handle in submitted:
            handle.watcher = watcher  # instead of submitit's sacct (see squeue_watcher)
            watcher.register_job(handle.job_id)
        if submitted:
            log.info(
                "SLURM jobs: " + ", ".join(f"#{job.record.num} {handle.job_id}" for job, handle in submitted)
            )

    def _stopping(self, running: dict[int, tuple[PlannedJob, Any]]) -> None:
        """The sweep stops: cancel its jobs that have not started (they would only start to stop)."""
        if self._cancelled_pending or not running:
            return
        self._cancelled_pending = True
        handles = [handle for _, handle in running.values()]
        handles[0].watcher.update()
        for handle in handles:
            if handle.state in NOT_STARTED:
                handle.cancel(check=False)

    def _collect(self, control: SweepControl, job: PlannedJob, handle: Any) -> JobReturn:
        """A SLURM job over: its result, or, when SLURM ended it without one (``scancel`` before it
        started or while it was requeued, killed past ``KillWait``, a node lost), what its folder
        records."""
        from aetrain.run_folder.record import FINISHED, read_metrics_or_empty

        job_dir = control.record.job_dir(job.record)
        if _result_appears(handle, wait_s=RESULT_GRACE_S if job_dir.is_dir() else 0):
            return super()._collect(control, job, handle)
        ended = _how_it_ended(handle)
        if not job_dir.is_dir():
            stop = control.stop
            first = f"the sweep was stopped by {stop['signal']} first: " if stop else ""
            control.never_ran(job.record, f"{first}{ended} before it started")
        elif read_metrics_or_empty(job_dir).get("status") in FINISHED | {"interrupted"}:
            control.ended(job.record)  # as it recorded: an interrupted job resumes with resume_sweep
        else:
            control.ended(job.record, lost=f"{ended} without a result: {run_outcome(job_dir)[1]}")
        return lost_return(job)


# --- SLURM: the cluster's answer before a sweep, and its jobs' states ------------------------------

RESULT_GRACE_S = 3.0  # how long a result may take to show on a shared file system after its job ended
#: squeue states of a job that has not ended (submitit's list, and those of a requeued or held job).
STILL_ON = frozenset(
    {"UNKNOWN", "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD"}
    | {"RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "SPECIAL_EXIT", "PREEMPTED", "READY"}
)
NOT_STARTED = frozenset({"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD"})
#: What sbatch says when it cannot reach the cluster (rather than refusing the request).
UNREACHABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Zero Bytes were transmitted|connection failure"
    r"|Connection refused|configuration source|Unable to process configuration|[Mm]unge|authentication",
)
#: hydra.launcher.* settings that SLURM judges, as the refusal message lists them.
JUDGED = ("partition", "account", "qos", "nodes", "tasks_per_node", "cpus_per_task", "gpus_per_node")
JUDGED += ("mem_gb", "timeout_min", "constraint")


def slurm_refusal(executor: Any, jobs: int, params: dict[str, Any]) -> tuple[str, int] | None:
    """(message, exit code) when SLURM would not take the sweep's ``jobs`` as submitit submits them
    (``sbatch --test-only``: checked and scheduled, not queued); None when it would. ``params``:
    the hydra.launcher.* settings, for the message."""
    from submitit.slurm.slurm import _make_sbatch_string  # the script submitit submits

    slurm = executor._executor
    parameters = {**slurm.parameters, **({"map_count": jobs} if jobs > 1 else {})}
    script = _make_sbatch_string(command="true", folder=slurm.folder, **parameters)
    try:
        answer = subprocess.run(
            ["sbatch", "--test-only"], input=script, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        return _refusal_of("sbatch --test-only got no answer in 120 s", {}, what="cannot be reached")
    if answer.returncode == 0:
        return None
    return _refusal_of(answer.stderr or answer.stdout, params, what="refuses the sweep's jobs")


def _refusal_of(said: str, params: dict[str, Any], what: str) -> tuple[str, int]:
    """One paragraph: SLURM's own words, what was asked, and what to do; exit 5 when the cluster
    cannot be reached, else 2 (the request is wrong)."""
    words = "; ".join(line.strip() for line in said.strip().splitlines() if line.strip())
    if UNREACHABLE.search(words) or what == "cannot be reached":
        return (
            f"The SLURM cluster cannot be reached: {words}. Check that its controller runs (`scontrol "
            "ping`, `sinfo`) and that this machine may talk to it, then run the sweep again. Nothing "
            "was submitted.",
            exit_codes.OUTPUT,
        )
    asked = ", ".join(f"{key}={params[key]}" for key in JUDGED if params.get(key) is not None)
    sizes = _partition_sizes(params.get("partition"))
    return (
        f"SLURM {what}: {words}. They ask for {asked} (hydra.launcher.*){sizes}: change the setting "
        "it refuses; `sinfo -o '%P %c %m %G'` lists each partition with its nodes' CPUs, memory (MB) "
        "and GPUs. Nothing was submitted.",
        exit_codes.CONFIG,
    )


def _partition_sizes(partition: str | None) -> str:
    """``; the nodes of partition P have C CPUs, M MB, GPUs: G`` (sinfo's words: ``2+`` when they
    differ), for ``partition`` or the default one; "" when it does not exist or sinfo cannot say."""
    command = ["sinfo", "--noheader", "--format=%P|%c|%m|%G"]
    try:
        listed = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    rows = [line.split("|") for line in listed.splitlines() if line.count("|") == 3]
    for name, cpus, memory, gres in rows:
        if name.rstrip("*") == partition or (partition is None and name.endswith("*")):
            gpus = "none" if gres in ("(null)", "") else gres
            return f"; the nodes of partition {name.rstrip('*')} have {cpus} CPUs, {memory} MB, GPUs: {gpus}"
    return ""


def _how_it_ended(handle: Any) -> str:
    """``SLURM job 12_3 was cancelled`` (ended TIMEOUT, left the queue...), for a job without a result."""
    state = handle.state
    how = {"CANCELLED": "was cancelled", "GONE": "left the queue"}.get(state, f"ended {state}")
    return f"SLURM job {handle.job_id} {how}"


def _result_appears(handle: Any, wait_s: float) -> bool:
    """Whether the job's result file is there, waiting up to ``wait_s`` (a shared file system may
    show it a moment after SLURM says the job ended)."""
    deadline = time.monotonic() + wait_s
    while True:
        with contextlib.suppress(OSError):  # what submitit does: a chmod refreshes an NFS client's cache
            handle.paths.folder.chmod(handle.paths.folder.stat().st_mode)
        if handle.paths.result_pickle.exists():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


SQUEUE_EVERY_S = 5  # one squeue per sweep, not per job: a light load on any controller


def squeue_watcher() -> Any:
    """A submitit watcher of SLURM jobs that asks squeue, not sacct: squeue asks the controller, so it
    also works on clusters that keep no accounting, where every sacct poll failed and submitit
    printed "Bypassing sacct error ... status may be inaccurate" each time. A job squeue no longer
    lists has ended. It asks every 2 s at first, then less often, at most SQUEUE_EVERY_S apart:
    submitit's own cap (30 s here before) let a sweep notice a job's end up to twice its run time late."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    class SqueueWatcher(SlurmInfoWatcher):
        _failed_once = False

        def update(self) -> None:
            waiting = self._registered - self._finished
            if not waiting:
                return
            self._num_calls += 1
            self._last_status_check = time.time()
            command = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", "--me"]
            try:
                listed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
            except (OSError, subprocess.SubprocessError) as error:
                if not self._failed_once:  # one line per sweep; the states known so far stay
                    self._failed_once = True
                    log.warning(f"squeue failed ({error}); following the SLURM jobs by their results only")
                return
            states = dict(line.split("|", 1) for line in listed.stdout.splitlines() if "|" in line)
            for job_id in waiting:
                self._info_dict[job_id] = {"State": (states.get(job_id) or "GONE").split()[0]}
                if self.is_done(job_id, mode="cache"):
                    self._finished.add(job_id)

        def is_done(self, job_id: str, mode: str = "standard") -> bool:
            return self.get_state(job_id, mode=mode).upper() not in STILL_ON

    return SqueueWatcher(delay_s=SQUEUE_EVERY_S)
