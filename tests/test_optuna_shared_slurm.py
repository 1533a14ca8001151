"""Workers of one Optuna study as SLURM jobs, each job one ``aetrain -m hparams_search=optuna`` worker
on one SQLite study (one node: tests/slurm/start-cluster.sh). A job cancelled mid-trial, as
preemption or a time limit does, leaves a trial that the other job marks failed and runs again.
Skipped, saying why, where no cluster can be reached.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState
from slurm.cluster import PARTITION, require_cluster, slurm, state_of

from cli_runs import AETRAIN, environment, smoke_args

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(autouse=True)
def cluster() -> None:
    require_cluster()


def submit_worker(data_dir: Path, cwd: Path, name: str, *overrides: str) -> str:
    """sbatch one worker (one CPU) on cwd/optuna.db; its SLURM job id."""
    args = [
        "-m", "hparams_search=optuna", f"hydra.sweeper.storage=sqlite:///{cwd / 'optuna.db'}",
        "hydra.sweeper.n_trials=2", "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=5",
        *smoke_args(data_dir, f"hydra.sweep.dir={cwd / name}", "trainer.grid_images=4", *overrides),
    ]  # fmt: skip
    script = cwd / f"{name}.sh"
    script.write_text(f"#!/bin/bash\nexec {shlex.join([AETRAIN, *args])}\n")
    submitted = subprocess.run(
        ["sbatch", "--parsable", f"--partition={PARTITION}", "--cpus-per-task=1", "--mem=1G",
         "--time=5", f"--output={cwd / name}.out", f"--chdir={cwd}", str(script)],
        env=environment(cwd), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return submitted.stdout.strip().split(";")[0]


def wait_for_file(path: Path, job: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert state_of(job) in ("PENDING", "RUNNING"), f"job {job} ended before writing {path}"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.2)


def test_a_cancelled_worker_jobs_trial_is_run_again_by_the_other_job(tiny_data_dir, tmp_path):
    started = time.monotonic()
    slow = submit_worker(
        tiny_data_dir,
        tmp_path,
        "slow",
        "trainer.batch_size=8",
        "trainer.epochs=40",
        "trainer.run_eagerly=false",
    )
    wait_for_file(tmp_path / "slow" / "0" / "checkpoints" / "last.keras", slow)
    fast = submit_worker(tiny_data_dir, tmp_path, "fast")
    slurm("scancel", slow)  # SIGTERM, as preemption: its trial stops, and no heartbeat follows
    deadline = time.monotonic() + 240
    while state_of(fast) not in ("", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
        assert time.monotonic() < deadline, (tmp_path / "fast.out").read_text()[-3000:]
        time.sleep(0.5)
    output = (tmp_path / "fast.out").read_text()
    assert "joins the search in progress" in output, output[-3000:]

    trials = optuna.load_study(study_name="aetrain", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    (lost,) = [t for t in trials if t.state == TrialState.FAIL]
    assert lost.user_attrs["lost_worker"] is True and lost.user_attrs["trainer.epochs"] == "40"
    (retry,) = [t for t in trials if t.user_attrs.get("aetrain.retry_of") == lost.number]
    assert retry.state == TrialState.COMPLETE and retry.params == lost.params
    assert retry.user_attrs["run_dir"].startswith(str(tmp_path / "fast"))
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2 and len(trials) == 3
    results = OmegaConf.load(tmp_path / "fast" / "optimization_results.yaml")
    assert results.trials_this_run == 2 and results.states == {"complete": 2, "fail": 1}
    print(f"SLURM jobs {slow} (cancelled) and {fast}: {time.monotonic() - started:.1f} s")
