"""A sweep folder has one owner: the sweep's process holds its lock, each job holds its own folder's,
a resumed sweep runs the stopped sweep's jobs and no others, a killed sweep is seen as dead and its
jobs stop instead of training on alone."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from test_sweep_signals import SUBMITIT, Sweep

from aetrain.run_folder.lock import RunFolderLock

from cli_runs import aetrain, command, plain_text, smoke_args, wait_for


def stopped_sweep(folder: Path, seeds: list[int], data_dir: Path) -> None:
    """A sweep.json as a sweep of ``seed=...`` stopped before any job started would leave it."""
    # as the basic sweeper writes them: its job overrides spell booleans as Python does
    overrides = [o.replace("=false", "=False").replace("=true", "=True") for o in smoke_args(data_dir)]
    jobs = [
        {"num": num, "overrides": [*overrides, f"seed={seed}"], "dir": str(num), "status": "never_started"}
        for num, seed in enumerate(seeds)
    ]
    folder.mkdir(parents=True)
    record = {"status": "interrupted", "signal": "SIGINT", "jobs": jobs}
    (folder / "sweep.json").write_text(json.dumps(record))


def single_run_args(sweep: Sweep) -> list[str]:
    return [a for a in sweep.args if not a.startswith(("seed=", "hydra.sweep.dir="))]


def snapshot(folder: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*")}


def test_a_second_process_is_refused_a_sweep_folder_that_a_live_sweep_holds(tiny_data_dir, tmp_path):
    sweep_dir = tmp_path / "sweep"
    stopped_sweep(sweep_dir, [1, 2], tiny_data_dir)
    owner = RunFolderLock(sweep_dir)
    owner.acquire()  # the first sweep, still running
    before = snapshot(sweep_dir)
    try:
        sweep = ["-m", *smoke_args(tiny_data_dir), f"hydra.sweep.dir={sweep_dir}"]
        second = aetrain(*sweep, "seed=1,2", "resume_sweep=true", cwd=tmp_path)
        after = snapshot(sweep_dir)
    finally:
        owner.release()
    assert second.returncode == 5, second.stdout + second.stderr
    text = plain_text(second.stdout)
    assert f"{sweep_dir} is in use by process {os.getpid()}" in text
    assert after == before  # nothing written, nothing removed


@pytest.mark.parametrize(
    ("seeds", "change"), [("1,2", "it would drop job(s) 2"), ("1,2,3,4", "add job(s) 3")]
)
def test_resuming_with_another_list_of_jobs_is_refused(tiny_data_dir, tmp_path, seeds, change):
    sweep_dir = tmp_path / "sweep"
    stopped_sweep(sweep_dir, [1, 2, 3], tiny_data_dir)
    before = snapshot(sweep_dir)
    sweep = ["-m", *smoke_args(tiny_data_dir), f"hydra.sweep.dir={sweep_dir}"]
    resumed = aetrain(*sweep, f"seed={seeds}", "resume_sweep=true", cwd=tmp_path)
    assert resumed.returncode == 2, resumed.stdout + resumed.stderr
    text = plain_text(resumed.stdout)
    assert f"the stopped sweep has 3 job(s), this command line gives {len(seeds.split(','))}" in text
    assert change in text and "Nothing was changed" in text
    after = snapshot(sweep_dir)
    for own in (".aetrain.lock", "multirun.yaml"):  # the lock file stays; Hydra rewrites its multirun.yaml
        after.pop(sweep_dir / own, None)
    assert after == before


@pytest.mark.parametrize("where", ["at", "inside"])
def test_a_sweep_folder_at_or_inside_a_run_folder_is_refused(tmp_path, where):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    sweep_dir = run if where == "at" else run / "sweep"
    before = snapshot(run)
    refused = aetrain("-m", f"hydra.sweep.dir={sweep_dir}", "seed=1,2", cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"the run folder {run}" in plain_text(refused.stdout)
    assert snapshot(run) == before and not (run / "sweep").exists()


@pytest.mark.slow
def test_a_killed_sweep_is_seen_dead_and_its_jobs_held_their_folders_and_history(tiny_data_dir, tmp_path):
    sweep = Sweep(tiny_data_dir, tmp_path / "sweep", "seed=1")
    sweep.wait_for_checkpoint("0")
    job = sweep.sweep_dir / "0"
    for refused in (
        command("aetrain-evaluate", str(job), cwd=tmp_path),
        aetrain(*single_run_args(sweep), "seed=1", f"trainer.resume={job}", cwd=tmp_path),
    ):
        assert refused.returncode == 5, refused.stdout + refused.stderr
        assert "is in use by process" in plain_text(refused.stdout)

    os.kill(sweep.process.pid, signal.SIGKILL)
    sweep.process.wait(timeout=30)
    assert sweep.record()["status"] == "running"  # what the killed process left
    history = sweep.metrics("0")  # rewritten at each epoch end
    assert history["status"] == "running" and history["epochs_completed"] >= 1
    assert len(history["history"]["loss"]) == history["epochs_completed"]

    report = command("aetrain-report", str(sweep.sweep_dir), cwd=tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    text = plain_text(report.stdout)
    assert "sweep: dead" in text and "resume_sweep=true" in text
    assert "its process ended during training" in text

    resumed = sweep.start(*sweep.args, "resume_sweep=true")
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output[-3000:]
    assert sweep.statuses() == {"0": "completed"}
    assert sweep.metrics("0")["resumed_from_epoch"] >= 1


@pytest.mark.slow
def test_a_killed_submitit_task_is_named_and_the_jobs_of_a_killed_sweep_stop(tiny_data_dir, tmp_path):
    sweep = Sweep(tiny_data_dir, tmp_path / "sweep", *SUBMITIT, "seed=1,2", "trainer.epochs=5000")
    for job in ("0", "1"):
        sweep.wait_for_checkpoint(job)
    wait_for(sweep.sweep_dir / "0" / "metrics.json", sweep.process)  # written just after the checkpoint
    task_0 = json.loads((sweep.sweep_dir / "0" / ".aetrain.lock.holder").read_text())["pid"]
    assert task_0 in sweep.processes("submitit.core._submit")  # the job's lock names its process
    os.kill(task_0, signal.SIGKILL)  # job 0's own process, from outside
    deadline = time.monotonic() + 30
    while sweep.statuses()["0"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    lost = next(job for job in sweep.record()["jobs"] if job["dir"] == "0")
    assert lost["status"] == "failed" and lost["lost_worker"], lost
    assert "its process ended during training, after epoch" in lost["reason"], lost["reason"]
    assert "exited with code 0" not in lost["reason"]

    os.kill(sweep.process.pid, signal.SIGKILL)  # the sweep's process alone: job 1 lives on
    sweep.process.wait(timeout=30)
    deadline = time.monotonic() + 60
    while sweep.processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sweep.processes() == [], "a job trained on after its sweep died"
    metrics = sweep.metrics("1")
    assert metrics["status"] == "interrupted", metrics
    assert "the sweep's process is gone" in metrics["interruption"]
    assert metrics["epochs_completed"] < 5000
