"""The launchers that run a sweep's jobs on this machine, each in a process of its own:
``hydra/launcher=parallel`` and ``submitit_local`` (Hydra's joblib and submitit plugins,
``pip install 'aetrain[sweeps]'``), and :class:`SubmititLauncherMixin`, the submitit base that
``submitit_local`` shares with ``slurm`` (aetrain.sweeps.slurm).

What they share with the default sequential launcher (the sweep's record, signals, lost jobs,
resuming) is aetrain.sweeps.control. Their jobs' processes start in sessions of their own, so a
terminal's Ctrl-C reaches only the sweep's process, which passes it on once: a job never sees one
Ctrl-C twice (which would abort it).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, setup_globals
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from omegaconf import OmegaConf

from aetrain.run_folder.record import run_outcome
from aetrain.sweeps.control import (
    POLL_S,
    PlannedJob,
    SweepControl,
    log,
    log_plan,
    lost_return,
    skipped_return,
    sweep_control,
)


class ParallelLauncher(JoblibLauncher):
    """``n_jobs`` jobs at once, each in a fresh process of its own (aetrain.sweeps.worker).

    It keeps the joblib launcher's config (``hydra.launcher.n_jobs``; -1: one job per core, -2: all
    cores but one) but not joblib's pool: a loky pool whose worker dies breaks, and takes every
    running job with it.
    """

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        control = sweep_control(self.config)
        control.sweep_dir.mkdir(parents=True, exist_ok=True)
        planned = control.plan(self, job_overrides, initial_job_idx)
        at_once = _jobs_at_once(int(self.joblib.get("n_jobs") or 1))
        log_plan(planned, control.sweep_dir, f"Parallel launcher: n_jobs={at_once}, {len(planned)} jobs")
        returns: dict[int, JobReturn] = {}
        queue = [job for job in planned if job.action != "skip"]
        returns.update({job.record.num: skipped_return(job) for job in planned if job.action == "skip"})
        running: dict[int, tuple[PlannedJob, subprocess.Popen, Path]] = {}
        with tempfile.TemporaryDirectory(prefix="aetrain-sweep-") as scratch:
            while queue or running:
                while queue and len(running) < at_once and not control.stopping:
                    job = queue.pop(0)
                    running[job.record.num] = self._start(job, Path(scratch))
                    control.started(job.record, running[job.record.num][1].pid)
                for num, (job, process, result) in list(running.items()):
                    if process.poll() is None:
                        continue
                    del running[num]
                    returns[num] = self._collect(control, job, process, result)
                if control.stopping:
                    queue.clear()
                    control.kill_overdue()
                time.sleep(POLL_S)
        control.end_of_launch()
        return [returns[job.record.num] for job in planned]

    def _start(self, job: PlannedJob, scratch: Path) -> tuple[PlannedJob, subprocess.Popen, Path]:
        import cloudpickle

        payload, result = scratch / f"{job.record.num}.job", scratch / f"{job.record.num}.result"
        arguments = (
            job.record.num,
            job.run_overrides,
            self.hydra_context,
            self.config,
            self.task_function,
            Singleton.get_state(),
        )
        payload.write_bytes(cloudpickle.dumps(arguments))
        command = [sys.executable, "-m", "aetrain.sweeps.worker", str(payload), str(result), str(os.getpid())]
        return job, subprocess.Popen(command, start_new_session=True), result

    def _collect(
        self, control: SweepControl, job: PlannedJob, process: subprocess.Popen, result: Path
    ) -> JobReturn:
        import cloudpickle

        if result.is_file():
            control.ended(job.record)
            job_return = cloudpickle.loads(result.read_bytes())
            if job_return.status == JobStatus.FAILED:  # an error outside aetrain's own handling
                log.error(f"job {job.record.num} failed: {job_return._return_value!r}")
                return lost_return(job)
            return job_return
        reason = _death_of(process.returncode)
        control.ended(job.record, lost=reason)
        return lost_return(job)


def _jobs_at_once(n_jobs: int) -> int:
    """joblib's count: n_jobs > 0 as given; -1 one per core, -2 all cores but one, ..."""
    from aetrain.training.runtime import available_cores

    return n_jobs if n_jobs > 0 else max(available_cores() + 1 + n_jobs, 1)


def _death_of(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        oom = " (as the kernel's out-of-memory killer does)" if -returncode == signal.SIGKILL else ""
        return f"the process running this job was killed by {name}{oom} before the job finished"
    return f"the process running this job exited with code {returncode} before the job finished"


class SubmititLauncherMixin:
    """Submitit's launchers (SubmititLocalLauncher here, aetrain.sweeps.slurm.SlurmLauncher), watching
    their jobs instead of waiting for all results in order."""

    _EXECUTOR: str

    def _executor(self, params: dict[str, Any]) -> Any:
        """Submitit's executor for these parameters, as Hydra's launcher builds it."""
        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        params = dict(params)
        init = {"folder": params.pop("submitit_folder")}
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{k if k in generic else f"{self._EXECUTOR}_{k}": v for k, v in params.items()}
        )
        return executor

    def _ready_executor(self, jobs: int) -> Any:
        """The executor, once the jobs can be submitted (SlurmLauncher asks the cluster first)."""
        return self._executor(self.params)

    def _submit(self, executor: Any, control: SweepControl, to_run: list[PlannedJob]) -> list[Any]:
        return executor.map_array(
            self,
            [job.run_overrides for job in to_run],
            ["hydra.sweep.dir"] * len(to_run),
            [job.record.num for job in to_run],
            [f"job_id_for_{job.record.num}" for job in to_run],
            [Singleton.get_state()] * len(to_run),
        )

    def _follow(self, submitted: list[tuple[PlannedJob, Any]]) -> None:
        """Before watching the submitted jobs (SlurmLauncher: through squeue)."""

    def _stopping(self, running: dict[int, tuple[PlannedJob, Any]]) -> None:
        """While the sweep stops (SlurmLauncher: cancel the jobs that have not started)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        executor = self._ready_executor(len(job_overrides))
        control = sweep_control(self.config)
        control.sweep_dir.mkdir(parents=True, exist_ok=True)
        planned = control.plan(self, job_overrides, initial_job_idx)
        log_plan(planned, control.sweep_dir, f"Submitit '{self._EXECUTOR}' launcher, {len(planned)} jobs")
        returns = {job.record.num: skipped_return(job) for job in planned if job.action == "skip"}
        to_run = [job for job in planned if job.action != "skip"]
        submitted = list(zip(to_run, self._submit(executor, control, to_run), strict=True))
        self._follow(submitted)
        running, cancelled = {}, False
        for job, handle in submitted:
            process = getattr(handle, "_process", None)
            control.started(job.record, process.pid if process is not None else None)
            running[job.record.num] = (job, handle)
        while running:
            for num, (job, handle) in list(running.items()):
                if not handle.done():
                    continue
                del running[num]
                returns[num] = self._collect(control, job, handle)
            control.kill_overdue()
            if control.stopping:
                self._stopping(running)
            if control.abort_requested and not cancelled:  # cluster jobs: no process here to signal
                cancelled = True
                for _, handle in running.values():
                    if getattr(handle, "_process", None) is None:
                        handle.cancel(check=False)
            time.sleep(POLL_S)
        control.end_of_launch()
        return [returns[job.record.num] for job in planned]

    def _collect(self, control: SweepControl, job: PlannedJob, handle: Any) -> JobReturn:
        try:
            job_return = handle.results()[0]
            control.ended(job.record)
            return job_return
        except Exception as error:  # its process died without a result
            death = _death_of_task(handle, control.record.job_dir(job.record))
            reason = f"{death}; submitit: {str(error).splitlines()[0]}"
            control.ended(job.record, lost=reason)
            return lost_return(job)


def _death_of_task(handle: Any, job_dir: Path) -> str:
    """How a submitit job's task ended without a result. Submitit's local controller exits 0 whatever
    became of its task and records no exit status, so a task killed from outside is told by what
    the job itself left (aetrain.run_folder.record.run_outcome: metrics.json still ``running`` in a
    folder no process holds, or no metrics.json)."""
    code = _returncode(handle)
    if code is not None:
        return _death_of(code)
    status, reason = run_outcome(job_dir)
    if status == "failed" and reason:
        return f"the process running this job ended without a result: {reason}"
    return "the process running this job ended without a result, and submitit does not say how (killed?)"


def _returncode(handle: Any) -> int | None:
    """The exit status of a submitit job's task when anything records it: a signal or exit code in
    its stderr, else the controller's own death by a signal; None when unknown."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        text = Path(handle.paths.stderr).read_text(errors="replace")
        if match := re.search(r"exit code (-?\d+)|Signals\.(SIG\w+)", text):
            return int(match[1]) if match[1] else -int(signal.Signals[match[2]])
    process = getattr(handle, "_process", None)
    code = process.poll() if process is not None else None
    return code if code is not None and code != 0 else None


class SubmititLocalLauncher(SubmititLauncherMixin, submitit_launcher.LocalLauncher):
    """``hydra/launcher=submitit_local``: what the SLURM launcher does, on this machine."""

    def _executor(self, params: dict[str, Any]) -> Any:
        executor = _own_session_local_executor(params["submitit_folder"])
        settings = {
            k: v
            for k, v in params.items()
            if v is not None and k not in ("submitit_folder", "max_num_timeout")
        }
        executor.update_parameters(**settings)
        return executor


def _own_session_executor_class() -> type:
    from submitit.local import local

    class OwnSessionLocalExecutor(local.LocalExecutor):
        """Submitit's local executor, its job controllers in sessions of their own: a terminal's
        Ctrl-C reaches only the sweep's process (a controller would kill its task at once)."""

        def _submit_command(self, command: str) -> Any:
            original = local.subprocess.Popen

            def popen(*args: Any, **kwargs: Any) -> Any:
                return original(*args, start_new_session=True, **kwargs)

            local.subprocess = _SubprocessWith(popen)
            try:
                return super()._submit_command(command)
            finally:
                local.subprocess = subprocess

    return OwnSessionLocalExecutor


class _SubprocessWith:
    """The subprocess module with another Popen (for submitit's start_controller only)."""

    def __init__(self, popen: Any) -> None:
        self.Popen = popen

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)


def _own_session_local_executor(folder: str) -> Any:
    return _own_session_executor_class()(folder=folder)
