"""Runs started in the same second never share a folder; an unwritable folder is named with the fix."""

from __future__ import annotations

import errno
import subprocess
import tempfile
import threading

import pytest
import yaml

from aetrain.run_folder import claim as run_folders
from aetrain.run_folder.claim import RunFolderUnwritable, check_writable, claim_unique_dir

from cli_runs import start_aetrain

PARALLEL_RUNS = 6


@pytest.fixture(autouse=True)
def forget_claims(monkeypatch):
    monkeypatch.setattr(run_folders, "_claimed", {})


def test_claim_takes_the_next_free_suffix(tmp_path):
    base = str(tmp_path / "outputs" / "12-00-00")
    (tmp_path / "outputs" / "12-00-00_1").mkdir(parents=True)
    first = claim_unique_dir(base)
    assert first == base
    run_folders._claimed.clear()  # as another process would see it
    assert claim_unique_dir(base) == base + "_2"


def test_claim_answers_the_same_folder_to_repeated_lookups(tmp_path):
    base = str(tmp_path / "12-00-00")
    assert claim_unique_dir(base) == claim_unique_dir(base) == base


def test_threads_claiming_at_once_get_distinct_folders(tmp_path, monkeypatch):
    base = str(tmp_path / "12-00-00")
    claimed: list[str] = []

    def claim() -> None:
        monkeypatch.setattr(run_folders, "_claimed", {})  # each thread plays a separate process
        claimed.append(claim_unique_dir(base))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(claimed)) == 8


def test_unwritable_folder_is_named_with_the_fix(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(RunFolderUnwritable) as caught:
        check_writable(tmp_path / "run")
    message = str(caught.value)
    assert str(tmp_path / "run") in message and "not writable" in message and "hydra.run.dir=PATH" in message


def test_full_disk_is_named_with_the_fix(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    with pytest.raises(RunFolderUnwritable, match="disk is full"):
        check_writable(tmp_path / "run")


def start_all(commands: list[list[str]], cwd) -> list[tuple[subprocess.Popen, str, str]]:
    """Start every command before waiting for any, so they start within the same second or two."""
    processes = [start_aetrain(*args, cwd=cwd, without_tensorflow=True) for args in commands]
    return [(p, *p.communicate(timeout=120)) for p in processes]


def test_runs_started_together_get_distinct_folders(tmp_path):
    # A missing data folder fails at once (exit 3), after Hydra has made the run folder and written .hydra/.
    missing = tmp_path / "no-data"
    results = start_all([[f"data.dir={missing}", f"seed={i}"] for i in range(PARALLEL_RUNS)], tmp_path)
    assert all(process.returncode == 3 for process, _, _ in results)
    folders = sorted((tmp_path / "outputs").glob("*/*"))
    assert len(folders) == PARALLEL_RUNS
    seeds = sorted(yaml.safe_load((f / ".hydra" / "overrides.yaml").read_text())[1] for f in folders)
    assert seeds == [f"seed={i}" for i in range(PARALLEL_RUNS)]
    for folder in folders:  # HH-MM-SS, or HH-MM-SS_N when that second was taken
        assert folder.name.split("_")[0].count("-") == 2


def test_a_refused_config_leaves_no_run_folder(tmp_path):
    ((process, _, _),) = start_all([["latent_size=0"]], tmp_path)
    assert process.returncode == 2
    assert not list((tmp_path / "outputs").glob("*/*"))


def test_multiruns_started_together_get_distinct_sweep_folders(tmp_path):
    results = start_all([["-m", "latent_size=0", f"seed={i},{i + 10}"] for i in range(3)], tmp_path)
    assert all(process.returncode == 0 for process, _, _ in results)  # a sweep goes on past refusals
    sweeps = sorted((tmp_path / "multirun").glob("*/*"))
    assert len(sweeps) == 3
    jobs = {}
    for sweep in sweeps:
        assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
        for job in ("0", "1"):
            jobs[(sweep.name, job)] = yaml.safe_load((sweep / job / ".hydra" / "overrides.yaml").read_text())
    seeds = sorted(overrides[-1] for overrides in jobs.values())
    assert seeds == sorted(f"seed={s}" for i in range(3) for s in (i, i + 10))
    assert not (tmp_path / "outputs").exists()  # a multirun claims no single-run folder
