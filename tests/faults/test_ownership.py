"""A run folder has one owner: a new run never writes over an earlier run (exit 2), one process at a
time writes into a folder (exit 5 naming the process; a lock whose process died does not block), and a
refused run leaves no folder it created and removes none it found."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aetrain.config import validate
from aetrain.run_folder import claim as run_folders
from aetrain.run_folder.lock import HOLDER_NAME, LOCK_NAME, RunFolderBusy, hold_run_folder, refuse_if_busy

from cli_runs import SLOW_RUN, aetrain, environment, plain_text, smoke_args, start_aetrain, wait_for
from conftest import compose_config


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for a folder): what "untouched" compares."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in folder.rglob("*")}


def earlier_run(folder: Path, marker: str) -> Path:
    """A folder holding what an earlier run leaves, as ``marker`` (metrics.json, checkpoints/, .hydra/)."""
    folder.mkdir()
    (folder / "notes.txt").write_text("the user's")
    if marker == "metrics.json":
        (folder / marker).write_text('{"status": "completed"}')
    else:
        (folder / marker).mkdir()
        (folder / marker / "kept").write_text("earlier run")
    return folder


@pytest.mark.parametrize("marker", ["metrics.json", "checkpoints", ".hydra"])
def test_a_new_run_into_a_folder_holding_a_run_is_refused_before_writing(tmp_path, marker):
    folder = earlier_run(tmp_path / "run x", marker)
    before = snapshot(folder)
    result = aetrain(f"hydra.run.dir={folder}", "seed=7", cwd=tmp_path, without_tensorflow=True)
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 2, text
    assert f"The folder {folder} (from `hydra.run.dir`) already holds a run: it has {marker}" in text
    assert f"trainer.resume={folder}" in text and "give another folder" in text
    assert "Traceback" not in text
    assert snapshot(folder) == before  # not even a lock file


def test_refused_runs_leave_no_folder_they_created_and_keep_the_users(tmp_path):
    mine = tmp_path / "mydir"
    mine.mkdir()
    refused = aetrain(f"hydra.run.dir={mine}", "latent_size=0", cwd=tmp_path, without_tensorflow=True)
    assert refused.returncode == 2 and mine.is_dir() and not list(mine.iterdir())
    deep = tmp_path / "new" / "deep" / "run"
    refused = aetrain(f"hydra.run.dir={deep}", "latent_size=0", cwd=tmp_path, without_tensorflow=True)
    assert refused.returncode == 2 and not (tmp_path / "new").exists()
    default = aetrain("latent_size=0", cwd=tmp_path, without_tensorflow=True)
    assert default.returncode == 2 and not (tmp_path / "outputs").exists()  # not even outputs/DATE/


def test_the_lock_names_its_holder_and_lets_go_when_released(tmp_path):
    other_process = [
        sys.executable,
        "-c",
        "import sys; from pathlib import Path; from aetrain.run_folder.lock import hold_run_folder\n"
        "with hold_run_folder(Path(sys.argv[1])): print('held')",
        str(tmp_path),
    ]
    with hold_run_folder(tmp_path):
        holder = json.loads((tmp_path / HOLDER_NAME).read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(RunFolderBusy, match=f"in use by process {os.getpid()} on "):
            refuse_if_busy(tmp_path)
        busy = subprocess.run(other_process, capture_output=True, text=True, env=environment(tmp_path))
        assert busy.returncode != 0 and f"in use by process {os.getpid()}" in busy.stderr
    assert (tmp_path / LOCK_NAME).is_file() and not (tmp_path / HOLDER_NAME).exists()
    refuse_if_busy(tmp_path)
    free = subprocess.run(other_process, capture_output=True, text=True, env=environment(tmp_path))
    assert free.returncode == 0 and free.stdout.strip() == "held", free.stderr


def test_a_lock_whose_process_was_killed_does_not_block(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from aetrain.run_folder.lock import hold_run_folder\n"
            "with hold_run_folder(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(300)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=environment(tmp_path),
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunFolderBusy, match=f"process {holder.pid}"):
        refuse_if_busy(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert (tmp_path / HOLDER_NAME).is_file()  # what kill -9 leaves: stale, and harmless
    refuse_if_busy(tmp_path)
    with hold_run_folder(tmp_path):
        assert json.loads((tmp_path / HOLDER_NAME).read_text())["pid"] == os.getpid()


def test_only_empty_folders_this_process_created_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(run_folders, "_created", [])
    (tmp_path / "found").mkdir()
    run_folders.make_folders(tmp_path / "found" / "a" / "b")
    run_folders.make_folders(tmp_path / "other")
    (tmp_path / "other" / "notes").write_text("")  # written there meanwhile: the folder stays
    run_folders.remove_created_folders()
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == ["found", "other", "other/notes"]


def test_a_refused_companion_command_leaves_the_out_folder_as_it_was(tmp_path, capsys):
    """generate refuses a run that is not a VAE after it locked --out: no lock file is left there."""
    from aetrain.commands import generate
    from aetrain.models.build import build_model
    from aetrain.run_folder.checkpoints import save_checkpoint

    cfg = validate(compose_config("variant.hidden_units=[8]", "latent_size=2"))  # a dense run
    fake_run = tmp_path / "run.keras"
    save_checkpoint(build_model(cfg), fake_run, {"config": cfg.to_dict(), "epoch": 1})
    out = tmp_path / "out"
    out.mkdir()
    assert generate.main([str(fake_run), "--out", str(out)]) == 2
    assert "which draws no samples" in plain_text(capsys.readouterr().out)
    assert not list(out.iterdir())
    assert generate.main([str(fake_run), "--out", str(tmp_path / "new" / "out")]) == 2
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_one_process_at_a_time_and_never_over_an_earlier_run(tiny_data_dir, tmp_path):
    """While a run trains, another run, its resume and a companion command are refused (exit 5,
    naming the PID); after a kill -9 its lock does not block, and a new run there is refused (exit 2)
    without touching it. (tests/faults/test_phases.py resumes runs to completion.)"""
    run_dir = tmp_path / "run"
    # Long enough to outlast the three refused commands on a loaded machine (it is killed after them).
    args = smoke_args(tiny_data_dir, *SLOW_RUN, "trainer.epochs=500")
    training = start_aetrain(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    wait_for(run_dir / "checkpoints" / "last.keras", training)
    busy = f"The run folder {run_dir} is in use by process {training.pid} on"
    try:
        for refused in (
            aetrain(*args, f"hydra.run.dir={run_dir}", "seed=7", cwd=tmp_path, without_tensorflow=True),
            aetrain(*args, f"trainer.resume={run_dir}", cwd=tmp_path, without_tensorflow=True),
            subprocess.run(
                [str(Path(sys.executable).parent / "aetrain-evaluate"), str(run_dir), "--limit", "10"],
                cwd=tmp_path,
                env=environment(tmp_path, without_tensorflow=True),
                capture_output=True,
                text=True,
                timeout=120,
            ),
        ):
            text = plain_text(refused.stdout + refused.stderr)
            assert refused.returncode == 5, text
            assert busy in text and "Traceback" not in text
    finally:
        training.send_signal(signal.SIGKILL)
        training.communicate(timeout=60)
    assert not (run_dir / "eval.json").exists()

    # The killed run's lock no longer blocks (the busy check comes first): what refuses is the rule
    # that a new run never writes over an earlier one.
    before = snapshot(run_dir)
    rerun = aetrain(*args, f"hydra.run.dir={run_dir}", "seed=7", cwd=tmp_path, without_tensorflow=True)
    text = plain_text(rerun.stdout + rerun.stderr)
    assert rerun.returncode == 2 and "already holds a run" in text and "in use by" not in text
    assert snapshot(run_dir) == before
