"""Sweeps through the real ``aetrain -m`` command: grid, parallel (joblib), Optuna search, submitit, report.

Every job trains ``trainer=smoke`` on the tiny IDX files (256 images), a few seconds each.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from aetrain.training.runtime import available_cores

from cli_runs import AETRAIN, aetrain, smoke_args

AETRAIN_REPORT = shutil.which("aetrain-report", path=str(Path(sys.executable).parent)) or "aetrain-report"


def command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "AETRAIN_CACHE_DIR": str(cwd / "cache"), "COLUMNS": "160"}
    return subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)


def sweep(data_dir: Path, sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """``aetrain -m`` on the tiny data; the sweep's folder is ``sweep_dir``."""
    return aetrain(
        "-m", *smoke_args(data_dir, f"hydra.sweep.dir={sweep_dir}", *overrides), cwd=sweep_dir.parent
    )


def job_metrics(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))}


def overrides_of(job: Path) -> dict[str, str]:
    return dict(o.split("=", 1) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml"))


@pytest.fixture(scope="module")
def grid_sweep(tiny_data_dir, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """variant=dense,vae x sparsity=none,l1: three runs train, vae+l1 is refused."""
    sweep_dir = tmp_path_factory.mktemp("grid") / "sweep"
    result = sweep(tiny_data_dir, sweep_dir, "variant=dense,vae", "sparsity=none,l1")
    return sweep_dir, result


@pytest.mark.slow
def test_grid_sweep_runs_every_combination_and_records_the_refused_one(grid_sweep):
    sweep_dir, result = grid_sweep
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = job_metrics(sweep_dir)
    assert sorted(metrics) == ["0", "1", "2", "3"]
    combos = {
        (overrides_of(sweep_dir / job)["variant"], overrides_of(sweep_dir / job)["sparsity"]): job
        for job in metrics
    }
    assert set(combos) == {("dense", "none"), ("dense", "l1"), ("vae", "none"), ("vae", "l1")}
    refused = metrics[combos[("vae", "l1")]]
    assert refused["status"] == "refused" and "`sparsity`" in refused["error"]
    assert not (sweep_dir / combos[("vae", "l1")] / "checkpoints").exists()
    for combo in [("dense", "none"), ("dense", "l1"), ("vae", "none")]:
        job = sweep_dir / combos[combo]
        assert metrics[combos[combo]]["status"] == "completed", combo
        assert (
            metrics[combos[combo]]["variant"] == combo[0] and metrics[combos[combo]]["sparsity"] == combo[1]
        )
        assert (job / "checkpoints" / "best.keras").is_file() and (job / "reconstructions.png").is_file()


@pytest.mark.slow
def test_report_on_the_grid_sweep_ranks_runs_and_compares_reconstructions(grid_sweep):
    import matplotlib.image

    sweep_dir, _ = grid_sweep
    result = command(AETRAIN_REPORT, str(sweep_dir), "--sort", "best_val_loss", cwd=sweep_dir.parent)
    assert result.returncode == 0, result.stderr
    with open(sweep_dir / "report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    metrics = job_metrics(sweep_dir)
    completed = sorted((m["best_val_loss"], job) for job, m in metrics.items() if m["status"] == "completed")
    assert [row["run"] for row in rows[:3]] == [job for _, job in completed]
    assert [float(row["best_val_loss"]) for row in rows[:3]] == [loss for loss, _ in completed]
    assert rows[3]["status"] == "refused" and rows[3]["variant"] == "vae" and rows[3]["sparsity"] == "l1"
    for row in rows[:3]:
        assert float(row["test_mse"]) == metrics[row["run"]]["test"]["mse"]
    assert float(next(r for r in rows if r["sparsity"] == "l1")["mean_activation"]) > 0
    assert float(next(r for r in rows if r["variant"] == "vae")["latent_loss"]) > 0
    assert "refused" in result.stdout and "best val" in result.stdout
    picture = matplotlib.image.imread(sweep_dir / "report.png")
    grid_images = 10  # trainer.grid_images; rows: the test images + three completed runs
    assert picture.shape[:2] == (round((1.45 * 4 + 0.3) * 110), round(1.3 * grid_images * 110))


@pytest.mark.slow
def test_parallel_sweep_runs_jobs_in_worker_processes_with_capped_threads(tiny_data_dir, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = sweep(
        tiny_data_dir, sweep_dir, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "variant=dense,conv"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Parallel launcher: n_jobs=2" in result.stdout
    metrics = job_metrics(sweep_dir)
    assert sorted(m["variant"] for m in metrics.values()) == ["conv", "dense"]
    cap = max(available_cores() // 2, 1)
    for job in metrics.values():
        assert job["status"] == "completed"
        assert job["thread_pools"] == {"intra_op": cap, "inter_op": cap}  # what TF really got
        assert job["config"]["trainer"]["intra_op_threads"] == cap


@pytest.mark.slow
def test_optuna_search_of_three_trials_writes_the_best_parameters(tiny_data_dir, tmp_path):
    sweep_dir = tmp_path / "search"
    result = sweep(tiny_data_dir, sweep_dir, "hparams_search=optuna", "hydra.sweeper.n_trials=3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = job_metrics(sweep_dir)
    assert len(metrics) == 3 and all(m["status"] == "completed" for m in metrics.values())
    best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    best_job = min(metrics, key=lambda job: metrics[job]["best_val_loss"])
    assert best.best_value == pytest.approx(metrics[best_job]["best_val_loss"])
    params = dict(best.best_params)
    assert set(params) == {"trainer.learning_rate", "latent_size", "noise.stddev", "sparsity.weight"}
    tried = metrics[best_job]["config"]
    assert tried["trainer"]["learning_rate"] == pytest.approx(params["trainer.learning_rate"])
    assert tried["latent_size"] == params["latent_size"] in (8, 16, 32, 64)
    assert tried["noise"]["stddev"] == pytest.approx(params["noise.stddev"])
    assert 0.05 <= params["noise.stddev"] <= 0.5
    assert 1e-6 <= params["sparsity.weight"] <= 1e-3


@pytest.mark.slow
def test_submitit_local_launcher_runs_the_same_sweep(tiny_data_dir, tmp_path):
    """What hydra/launcher=slurm does on a cluster, with submitit's local executor."""
    sweep_dir = tmp_path / "sweep"
    result = sweep(
        tiny_data_dir,
        sweep_dir,
        "hydra/launcher=submitit_local",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.timeout_min=5",
        "variant=dense,vae",
        "sparsity=l1",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = job_metrics(sweep_dir)
    assert {job: m["status"] for job, m in metrics.items()} == {"0": "completed", "1": "refused"}
    assert metrics["0"]["thread_pools"] == {"intra_op": 1, "inter_op": 1}  # cpus_per_task
    assert list((sweep_dir / ".submitit").glob("*/*_result.pkl"))  # submitit ran them


def test_slurm_launcher_config_composes_for_submitit(tmp_path):
    result = command(
        AETRAIN, "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    launcher = OmegaConf.create(result.stdout).hydra.launcher
    assert launcher._target_ == "hydra_plugins.aetrain_launchers.SlurmLauncher"  # submitit's, recorded
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurm

    from hydra_plugins.aetrain_launchers import SlurmLauncher

    # By name: Hydra's plugin scan re-executes plugin modules, so class objects may differ by test order.
    assert any(
        (base.__module__, base.__name__) == (SubmititSlurm.__module__, SubmititSlurm.__name__)
        for base in SlurmLauncher.__mro__[1:]
    )
    assert launcher.partition == "gpu" and launcher.cpus_per_task >= 1 and launcher.gpus_per_node >= 1


CRASHING_RUN = """
import sys
import aetrain.training.loop

def run(cfg, output_dir, console, stop=None, checked_resume=None):
    if cfg.seed == 2:
        raise RuntimeError("out of memory on purpose")
    return 0.5

aetrain.training.loop.run = run
import aetrain.commands.train
sys.argv = ["aetrain", *sys.argv[1:]]
aetrain.commands.train.main()
"""


def test_an_unexpected_error_in_one_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    """Hydra's launchers would re-raise it and stop the sweep; aetrain records it instead."""
    sweep_dir = tmp_path / "sweep"
    result = command(
        sys.executable, "-c", CRASHING_RUN, "-m", "seed=2,1", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    failed = json.loads((sweep_dir / "0" / "metrics.json").read_text())
    assert failed.pop("wall_seconds") > 0
    assert failed == {"status": "failed", "error": "RuntimeError: out of memory on purpose"}
    assert "Traceback" in (sweep_dir / "0" / "aetrain.log").read_text()  # the details, for the user
    assert (sweep_dir / "1" / ".hydra").is_dir()  # the next job ran


def test_an_unexpected_error_in_a_single_run_is_not_hidden(tmp_path):
    result = command(
        sys.executable, "-c", CRASHING_RUN, "seed=2", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "out of memory on purpose" in result.stderr
