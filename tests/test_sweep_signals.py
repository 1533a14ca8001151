"""Real signals sent to real ``aetrain -m`` sweeps (sequential, parallel, submitit_local): every job
stops whole, the sweep folder says which jobs finished, stopped or never started, no process is
left, a lost worker costs one job, and ``resume_sweep=true`` finishes a stopped sweep."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from cli_runs import AETRAIN, SLOW_RUN, environment, is_whole_checkpoint, partial_files, smoke_args, wait_for

PARALLEL = ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]
SUBMITIT = ["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=5"]


class Sweep:
    """An ``aetrain -m`` in a session of its own (so a signal to its process group reaches only it),
    its processes marked by an environment variable that every process it starts inherits."""

    def __init__(self, data_dir: Path, sweep_dir: Path, *overrides: str) -> None:
        self.sweep_dir = sweep_dir
        self.args = smoke_args(data_dir, f"hydra.sweep.dir={sweep_dir}", *SLOW_RUN, *overrides)
        self.mark = f"aetrain-test-{uuid.uuid4().hex}"
        self.process = self.start(*self.args)

    def start(self, *args: str) -> subprocess.Popen:
        env = environment(self.sweep_dir.parent, AETRAIN_TEST_SWEEP=self.mark)
        return subprocess.Popen(
            [AETRAIN, "-m", *args],
            cwd=self.sweep_dir.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def wait_for_checkpoint(self, job: str) -> None:
        wait_for(self.sweep_dir / job / "checkpoints" / "last.keras", self.process)

    def finish(self, timeout: float = 240) -> str:
        stdout, stderr = self.process.communicate(timeout=timeout)
        return stdout + stderr

    def processes(self, command_part: str = "") -> list[int]:
        """This sweep's processes still alive (those whose environment carries its mark)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if self.mark.encode() not in (entry / "environ").read_bytes():
                    continue
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie: exited, waiting for its parent to collect it
                if command_part.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def assert_no_process_left(self) -> None:
        deadline = time.monotonic() + 10
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert self.processes() == [], "processes of the sweep outlived it"

    def record(self) -> dict:
        return json.loads((self.sweep_dir / "sweep.json").read_text())

    def statuses(self) -> dict[str, str]:
        return {job["dir"]: job["status"] for job in self.record()["jobs"]}

    def metrics(self, job: str) -> dict:
        return json.loads((self.sweep_dir / job / "metrics.json").read_text())


def assert_stopped_whole(sweep: Sweep, job: str) -> None:
    """A job stopped as a single run stops: metrics.json says so, its checkpoints are whole."""
    metrics = sweep.metrics(job)
    assert metrics["status"] == "interrupted", metrics
    for checkpoint in (sweep.sweep_dir / job / "checkpoints").glob("*.keras"):
        assert is_whole_checkpoint(checkpoint)
    assert partial_files(sweep.sweep_dir / job) == []


def resume_line(output: str, job_dir: Path) -> list[str]:
    """The printed "Resume with:" command of one job, as a user would paste it."""
    lines = output.splitlines()
    for index, line in enumerate(lines[:-1]):
        if line.strip() == "Resume with:" and f"trainer.resume={job_dir}" in lines[index + 1]:
            return shlex.split(lines[index + 1])
    raise AssertionError(f"no Resume with: line for {job_dir}")


@pytest.mark.slow
def test_sigterm_to_a_parallel_sweep_stops_every_job_and_resume_sweep_finishes_it(tiny_data_dir, tmp_path):
    sweep = Sweep(tiny_data_dir, tmp_path / "sweep", *PARALLEL, "seed=1,2,3")
    sweep.wait_for_checkpoint("0")
    sweep.process.send_signal(signal.SIGTERM)
    output = sweep.finish()
    assert sweep.process.returncode == 143, output[-3000:]
    assert "Traceback" not in output
    record = sweep.record()
    assert record["status"] == "interrupted" and record["signal"] == "SIGTERM"
    assert sweep.statuses() == {"0": "interrupted", "1": "interrupted", "2": "never_started"}
    assert not (sweep.sweep_dir / "2").exists()  # the queued job never started
    for job in ("0", "1"):
        assert_stopped_whole(sweep, job)
    # Job 1 started beside job 0; on a loaded machine it may not have finished an epoch when stopped.
    job_1_had_an_epoch = (sweep.sweep_dir / "1" / "checkpoints" / "last.keras").is_file()
    assert "sweep stopped by SIGTERM: 2 interrupted, 1 never started" in output
    sweep.assert_no_process_left()

    # The same folder again, without the switch: refused before any job writes.
    before = {p: p.stat().st_mtime_ns for p in sweep.sweep_dir.rglob("*")}
    again = sweep.start(*sweep.args)
    assert again.wait(timeout=120) == 2
    assert "resume_sweep=true" in " ".join(again.communicate()[0].split())
    assert {p: p.stat().st_mtime_ns for p in sweep.sweep_dir.rglob("*")} == before

    # Job 0's printed resume line works when pasted (the launcher's thread caps included).
    command = resume_line(output, (sweep.sweep_dir / "0").absolute())
    pasted = subprocess.run(
        [AETRAIN, *command[1:]], cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True
    )
    assert pasted.returncode == 0, pasted.stdout[-3000:] + pasted.stderr[-3000:]
    assert sweep.metrics("0")["status"] == "completed"

    # resume_sweep=true: job 0 (finished by hand) is left alone, job 1 resumes, job 2 runs.
    finished_0 = (sweep.sweep_dir / "0" / "metrics.json").stat().st_mtime_ns
    resumed = sweep.start(*sweep.args, "resume_sweep=true")
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output[-3000:]
    assert sweep.statuses() == {"0": "completed", "1": "completed", "2": "completed"}
    assert sweep.record()["status"] == "completed"
    assert (sweep.sweep_dir / "0" / "metrics.json").stat().st_mtime_ns == finished_0
    if job_1_had_an_epoch:  # resumed from its checkpoint; else run again from the start
        assert sweep.metrics("1")["resumed_from_epoch"] >= 1
    else:
        assert sweep.metrics("1")["resumed_from_epoch"] is None
    assert sweep.metrics("2")["resumed_from_epoch"] is None
    assert not (sweep.sweep_dir / ".aetrain-stop").exists()


@pytest.mark.slow
def test_sigkill_to_one_parallel_worker_costs_only_its_job(tiny_data_dir, tmp_path):
    sweep = Sweep(tiny_data_dir, tmp_path / "sweep", *PARALLEL, "seed=1,2")
    sweep.wait_for_checkpoint("0")
    worker = next(
        pid
        for pid in sweep.processes("aetrain.sweeps.worker")
        if b"0.job" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    os.kill(worker, signal.SIGKILL)
    output = sweep.finish()
    assert sweep.process.returncode == 6, output[-3000:]
    assert "Traceback" not in output
    assert sweep.statuses() == {"0": "failed", "1": "completed"}
    lost = sweep.metrics("0")
    assert lost["status"] == "failed" and "killed by SIGKILL" in lost["error"] and lost["lost_worker"]
    assert is_whole_checkpoint(sweep.sweep_dir / "0" / "checkpoints" / "last.keras")
    assert sweep.record()["status"] == "failed"
    assert "the process of a job died" in output and "resume_sweep=true" in output
    sweep.assert_no_process_left()


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_of_a_submitit_sweep_stops_every_job(tiny_data_dir, tmp_path):
    sweep = Sweep(tiny_data_dir, tmp_path / "sweep", *SUBMITIT, "seed=1,2")
    sweep.wait_for_checkpoint("0")
    os.killpg(sweep.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    output = sweep.finish()
    assert sweep.process.returncode == 130, output[-3000:]
    assert "Traceback" not in output
    assert sweep.record()["signal"] == "SIGINT"
    statuses = sweep.statuses()
    assert statuses["0"] == "interrupted" and statuses["1"] in ("interrupted", "never_started")
    assert_stopped_whole(sweep, "0")
    sweep.assert_no_process_left()


@pytest.mark.slow
def test_sigterm_to_one_submitit_job_stops_the_sweep_and_a_second_signal_aborts(tiny_data_dir, tmp_path):
    sweep = Sweep(tiny_data_dir, tmp_path / "sweep", *SUBMITIT, "seed=1,2", "trainer.epochs=5000")
    sweep.wait_for_checkpoint("0")
    task = sweep.processes("submitit.core._submit")[0]
    os.kill(task, signal.SIGTERM)  # one job's own process: the whole sweep stops
    time.sleep(0.5)
    for _ in range(2):  # the sweep's first and second signal: abort at once
        sweep.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    output = sweep.finish(timeout=60)
    assert sweep.process.returncode == 143, output[-3000:]
    assert "Traceback" not in output
    assert set(sweep.statuses().values()) <= {"interrupted", "never_started"}
    for checkpoint in sweep.sweep_dir.rglob("*.keras"):
        assert is_whole_checkpoint(checkpoint)
    assert partial_files(sweep.sweep_dir) == []
    sweep.assert_no_process_left()


@pytest.mark.slow
def test_ctrl_c_to_a_sequential_sweep_stops_it_before_the_next_job(tiny_data_dir, tmp_path):
    sweep = Sweep(tiny_data_dir, tmp_path / "sweep", "seed=1,2")
    sweep.wait_for_checkpoint("0")
    sweep.process.send_signal(signal.SIGINT)
    output = sweep.finish()
    assert sweep.process.returncode == 130, output[-3000:]
    assert "interrupted before training started" not in output and "Traceback" not in output
    assert sweep.statuses() == {"0": "interrupted", "1": "never_started"}
    assert_stopped_whole(sweep, "0")
    assert not (sweep.sweep_dir / "1").exists()
    assert "Continue it with:" in output
    sweep.assert_no_process_left()


def test_a_used_sweep_folder_is_refused_and_resume_sweep_needs_a_sweep_there(tmp_path):
    used = tmp_path / "used"
    (used / "3" / ".hydra").mkdir(parents=True)
    refused = subprocess.run(
        [AETRAIN, "-m", f"hydra.sweep.dir={used}", "seed=1,2"],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    text = " ".join(refused.stdout.replace("│", " ").split())
    assert f"hydra.sweep.dir={used} already holds runs (3)" in text and "resume_sweep=true" in text
    assert sorted(p.name for p in used.iterdir()) == ["3"]

    nothing = subprocess.run(
        [AETRAIN, "-m", f"hydra.sweep.dir={tmp_path / 'none'}", "resume_sweep=true", "seed=1"],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
    )
    assert nothing.returncode == 2, nothing.stdout + nothing.stderr
    assert "holds no sweep.json" in " ".join(nothing.stdout.replace("│", " ").split())
    assert not (tmp_path / "none").exists()
