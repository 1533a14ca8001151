"""The SLURM cluster the ``slurm`` tests submit to (tests/slurm/start-cluster.sh starts a one-node one
here), and what they ask SLURM about their jobs.

Where no cluster can be reached the tests are skipped, saying why and how to start one; with
``AETRAIN_TEST_SLURM=required`` (CI, .ci/run) they fail instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time

import pytest

PARTITION = "debug"
REQUIRED = os.environ.get("AETRAIN_TEST_SLURM") == "required"
START = "sudo tests/slurm/start-cluster.sh"
# Node states (sinfo %T) that take jobs; "planned" is an idle node the backfill scheduler holds for
# a pending job, such as one a previous test left behind.
UP_STATES = ("idle", "mixed", "allocated", "completing", "planned")
# What every test sweep asks of the cluster: one CPU, no GPU, a little memory, minutes not hours.
LAUNCHER = [
    "hydra/launcher=slurm",
    f"hydra.launcher.partition={PARTITION}",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=5",
]


@functools.cache
def why_unreachable() -> str | None:
    """Why no SLURM cluster can take jobs from here, or None when partition ``debug`` has a node up.
    Asked once per test process: where no controller answers, sinfo takes 9 s to say so."""
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH"
    try:
        states = slurm("sinfo", "--noheader", f"--partition={PARTITION}", "--format=%T", timeout=20)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        return f"sinfo fails: {' '.join(str(getattr(error, 'stderr', '') or error).split())}"
    up = [state for state in states.split() if state.rstrip("*~#%!$@^-") in UP_STATES]
    return (
        None
        if up
        else f"partition {PARTITION} has no node up (sinfo: {states.strip() or 'no such partition'})"
    )


def require_cluster() -> None:
    """Skip (fail where required) unless a cluster can be reached, naming why not and the fix."""
    problem = why_unreachable()
    if problem is None:
        return
    message = f"no SLURM cluster: {problem}; start a one-node one here with `{START}`"
    if REQUIRED:
        pytest.fail(f"{message} (AETRAIN_TEST_SLURM=required)")
    pytest.skip(message)


def slurm(*command: str, timeout: float = 60) -> str:
    """A SLURM command's stdout (CalledProcessError, with its stderr, when it fails)."""
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True).stdout


def state_of(job_id: str) -> str:
    """The job's state as squeue says it (``PENDING``, ``RUNNING``, ``COMPLETED``...); "" when gone."""
    listed = slurm("squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", "--me")
    return dict(line.split("|", 1) for line in listed.splitlines() if "|" in line).get(job_id, "")


def release_requeued(job_id: str, timeout: float = 90) -> None:
    """Wait until the requeued job is pending again, then let it start now: SLURM holds a requeued
    batch job back 120 s (its BeginTime), which a test need not wait out."""
    deadline = time.monotonic() + timeout
    while (state := state_of(job_id)) != "PENDING":
        assert time.monotonic() < deadline, f"SLURM job {job_id} was not requeued (state {state!r})"
        time.sleep(0.2)
    slurm("scontrol", "update", f"JobId={job_id}", "StartTime=now")


def job_times(job_id: str) -> tuple[str, str]:
    """(StartTime, EndTime) of a job SLURM still knows (MinJobAge: 5 minutes after its end)."""
    shown = slurm("scontrol", "show", "job", "--oneliner", job_id)
    fields = dict(field.split("=", 1) for field in shown.split() if "=" in field)
    return fields["StartTime"], fields["EndTime"]
