"""Sweeps on a real SLURM cluster (``hydra/launcher=slurm``; tests/slurm/start-cluster.sh starts a
one-node one): one job array, its limits, what SLURM does to a job (requeue, preemption and time-limit
signals, scancel) and resuming. Skipped, saying why, where no cluster can be reached.

Each job trains ``trainer=smoke`` on the tiny IDX files; a job that must be stopped mid-run trains
40 short epochs (traced), so it is still training when the test acts on its first checkpoint.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from slurm.cluster import LAUNCHER, job_times, release_requeued, require_cluster, slurm

from cli_runs import (
    is_whole_checkpoint,
    partial_files,
    printed_resume_command,
    run_in_shell,
    smoke_args,
    start_aetrain,
    wait_for,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

LONG_RUN = ["trainer.batch_size=8", "trainer.epochs=40", "trainer.run_eagerly=false"]
AETRAIN_REPORT = shutil.which("aetrain-report", path=str(Path(sys.executable).parent)) or "aetrain-report"


@pytest.fixture(autouse=True)
def cluster() -> None:
    require_cluster()


class SlurmSweep:
    """``aetrain -m`` on the cluster, in a session of its own, on the tiny data."""

    def __init__(self, data_dir: Path, sweep_dir: Path, *overrides: str) -> None:
        self.sweep_dir = sweep_dir
        self.args = ["-m", *smoke_args(data_dir, f"hydra.sweep.dir={sweep_dir}", *LAUNCHER, *overrides)]
        self.process = start_aetrain(*self.args, cwd=sweep_dir.parent)

    def again(self, *extra: str) -> subprocess.CompletedProcess:
        """The same command line with ``extra`` (``resume_sweep=true``), to its end."""
        process = start_aetrain(*self.args, *extra, cwd=self.sweep_dir.parent)
        stdout, stderr = process.communicate(timeout=240)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def wait_for_checkpoint(self, job: str) -> None:
        wait_for(self.sweep_dir / job / "checkpoints" / "last.keras", self.process, timeout=240)

    def finish(self) -> str:
        stdout, stderr = self.process.communicate(timeout=240)
        return stdout + stderr

    def slurm_id(self, job: str) -> str:
        """The SLURM job id of a sweep job (ARRAY_TASK), as the job recorded it (hydra.job.id)."""
        return str(OmegaConf.load(self.sweep_dir / job / ".hydra" / "hydra.yaml").hydra.job.id)

    def statuses(self) -> dict[str, str]:
        return {job["dir"]: job["status"] for job in self.record()["jobs"]}

    def record(self) -> dict:
        return json.loads((self.sweep_dir / "sweep.json").read_text())

    def metrics(self, job: str) -> dict:
        return json.loads((self.sweep_dir / job / "metrics.json").read_text())

    def wait_until_interrupted(self, job: str) -> int:
        """Wait for the job to record its stop; the epochs it completed."""
        metrics_file = self.sweep_dir / job / "metrics.json"
        wait_for(metrics_file, self.process)
        while self.metrics(job)["status"] != "interrupted":
            assert self.process.poll() is None, self.process.communicate()
            time.sleep(0.1)
        return self.metrics(job)["epochs_completed"]

    def logged_epochs(self, job: str) -> list[int]:
        """The epochs the job's runs logged as done, in order, across every start of the job."""
        log = (self.sweep_dir / job / "aetrain.log").read_text()
        return [int(line.split("epoch ")[1].split("/")[0]) for line in log.splitlines() if "] epoch " in line]

    def slurm_log(self, slurm_id: str, stream: str = "err") -> str:
        return (self.sweep_dir / ".submitit" / slurm_id / f"{slurm_id}_0_log.{stream}").read_text()


def assert_resumed_where_it_stopped(sweep: SlurmSweep, job: str, stopped_after: int) -> None:
    """Every epoch trained once: the job's second start went on from the epoch its first reached."""
    metrics = sweep.metrics(job)
    assert metrics["status"] == "completed" and metrics["resumed_from_epoch"] == stopped_after >= 1
    assert metrics["epochs_completed"] == len(metrics["history"]["loss"]) == 40
    assert sweep.logged_epochs(job) == list(range(1, 41))  # none twice, none lost
    again = f"SLURM started this job again (restart 1): resuming from {sweep.sweep_dir / job}"
    assert again in sweep.slurm_log(sweep.slurm_id(job))


def test_requeue_and_a_time_limit_signal_resume_each_job_where_it_stopped(tiny_data_dir, tmp_path):
    """scontrol requeue (SIGTERM, SLURM requeues) and the signal SLURM sends before a time limit or
    a preemption (submitit's --signal SIGUSR2; the job requeues itself): each job stops whole,
    starts again and resumes from its own checkpoint; scancel of a third job stops only that one,
    and its printed resume line finishes it."""
    sweep = SlurmSweep(tiny_data_dir, tmp_path / "sweep", "seed=1,2,3", *LONG_RUN)
    ids = {}
    for job, action in [
        ("0", ["scontrol", "requeue"]),
        ("1", ["scancel", "--signal=USR2"]),  # what SLURM sends signal_delay_s before the time limit
        ("2", ["scancel"]),
    ]:
        sweep.wait_for_checkpoint(job)  # each acted on while it trains (an epoch done, 39 to go)
        ids[job] = sweep.slurm_id(job)
        slurm(*action, ids[job])
    assert len({slurm_id.split("_")[0] for slurm_id in ids.values()}) == 1  # one array
    stopped_after = {job: sweep.wait_until_interrupted(job) for job in ("0", "1")}
    for job in ("0", "1"):
        release_requeued(ids[job])
    output = sweep.finish()

    assert sweep.process.returncode == 6, output[-3000:]  # a job stopped from outside: resumable
    assert "Traceback" not in output and "Bypassing sacct" not in output
    assert sweep.statuses() == {"0": "completed", "1": "completed", "2": "interrupted"}
    for job in ("0", "1"):
        assert_resumed_where_it_stopped(sweep, job, stopped_after[job])
    assert "DUE TO JOB REQUEUE" in sweep.slurm_log(ids["0"])
    stopped = f"Training stopped by SIGTERM during epoch {stopped_after['0'] + 1} of 40"
    assert stopped in (sweep.sweep_dir / "0" / "aetrain.log").read_text()
    assert "SIGUSR2 received: stopping after this batch" in sweep.slurm_log(ids["1"])
    log_1 = (sweep.sweep_dir / "1" / "aetrain.log").read_text()
    assert f"Training stopped by SIGUSR2 during epoch {stopped_after['1'] + 1} of 40" in log_1
    assert f"Requeued job {ids['1']} (2 remaining timeouts)" in log_1  # max_num_timeout=3, one used

    cancelled = sweep.metrics("2")
    assert cancelled["status"] == "interrupted" and cancelled["interruption"].startswith(
        "SIGTERM during epoch"
    )
    for checkpoint in (sweep.sweep_dir / "2" / "checkpoints").glob("*.keras"):
        assert is_whole_checkpoint(checkpoint)
    assert partial_files(sweep.sweep_dir) == []
    assert "sweep finished, but the cluster stopped or cancelled a job" in output
    assert "resume_sweep=true" in output
    resume = printed_resume_command(sweep.slurm_log(ids["2"], "out"))
    pasted = run_in_shell(resume, tmp_path)
    assert pasted.returncode == 0, pasted.stdout[-3000:] + pasted.stderr[-3000:]
    finished = sweep.metrics("2")
    assert (
        finished["status"] == "completed" and finished["resumed_from_epoch"] == cancelled["epochs_completed"]
    )


def test_one_array_its_limits_and_scancel_of_it_then_resume_sweep_finishes_what_is_missing(
    tiny_data_dir, tmp_path
):
    """seed=1,2,3 as one job array, one job at a time (array_parallelism=1), each capped at one
    thread (cpus_per_task=1); scancel of the whole array while job 1 trains: job 0 completed, job 1
    interrupted, job 2 never started; resume_sweep=true runs only jobs 1 (resumed) and 2; the report
    groups the three seeds."""
    sweep = SlurmSweep(
        tiny_data_dir, tmp_path / "sweep", "seed=1,2,3", "hydra.launcher.array_parallelism=1", *LONG_RUN
    )
    sweep.wait_for_checkpoint("1")
    array = sweep.slurm_id("1").split("_")[0]
    slurm("scancel", array)
    stopped_after = sweep.wait_until_interrupted("1")
    output = sweep.finish()

    assert sweep.process.returncode == 6, output[-3000:]
    assert "Traceback" not in output
    assert "Bypassing sacct" not in output and "accounting storage is disabled" not in output
    assert sweep.statuses() == {"0": "completed", "1": "interrupted", "2": "never_started"}
    never = next(job for job in sweep.record()["jobs"] if job["dir"] == "2")
    assert never["reason"] == f"SLURM job {array}_2 was cancelled before it started"
    assert not (sweep.sweep_dir / "2").exists()
    assert [sweep.slurm_id(job) for job in ("0", "1")] == [f"{array}_0", f"{array}_1"]
    script = (sweep.sweep_dir / ".submitit" / array / f"{array}_submission.sh").read_text()
    assert "#SBATCH --array=0-2%1" in script and "#SBATCH --cpus-per-task=1" in script
    job_0, job_1 = job_times(f"{array}_0"), job_times(f"{array}_1")
    assert job_0[1] <= job_1[0], (job_0, job_1)  # one at a time: job 1 started after job 0 ended
    assert sweep.metrics("0")["thread_pools"] == {"intra_op": 1, "inter_op": 1}  # cpus_per_task

    finished_0 = (sweep.sweep_dir / "0" / "metrics.json").stat().st_mtime_ns
    resumed = sweep.again("resume_sweep=true", "hydra.launcher.array_parallelism=2")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert sweep.statuses() == {"0": "completed", "1": "completed", "2": "completed"}
    assert sweep.record()["status"] == "completed"
    assert (sweep.sweep_dir / "0" / "metrics.json").stat().st_mtime_ns == finished_0  # left alone
    assert sweep.metrics("1")["resumed_from_epoch"] == stopped_after
    assert sweep.logged_epochs("1") == list(range(1, 41))
    assert sweep.metrics("2")["resumed_from_epoch"] is None
    second_array = sweep.slurm_id("2").split("_")[0]
    assert second_array != array and sweep.slurm_id("1") == f"{second_array}_0"  # only 1 and 2 ran

    report = subprocess.run(
        [AETRAIN_REPORT, str(sweep.sweep_dir)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert report.returncode == 0, report.stderr
    with open(sweep.sweep_dir / "report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["run"] for row in rows if row["status"] == "completed") == ["0", "1", "2"]
    (group,) = [row for row in rows if row["status"] == "group"]  # the three seeds, one setting
    assert group["n"] == "3"
    assert float(group["best_val_loss"]) == pytest.approx(
        sum(sweep.metrics(job)["best_val_loss"] for job in ("0", "1", "2")) / 3
    )
