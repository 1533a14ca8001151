"""Ctrl-C, SIGTERM and kill -9 sent to a real ``aetrain`` while it trains: whole checkpoints, the
history so far, a resume command, exit 130 / 143; never a truncated best.keras or last.keras."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time

import pytest
from rich.console import Console

from aetrain.run_folder.checkpoints import read_metadata
from aetrain.training import loop as train
from aetrain.training.stop_request import StopRequest

from cli_runs import (
    SLOW_RUN,
    environment,
    is_whole_checkpoint,
    partial_files,
    plain_text,
    smoke_args,
    start_aetrain,
    wait_for,
)


def test_stop_requested_before_the_first_epoch_ends_leaves_no_checkpoint(make_config, tmp_path):
    stop = StopRequest()
    stop.ask(signal.SIGINT)
    run_dir = tmp_path / "run"
    with pytest.raises(train.TrainingInterrupted, match="no epoch was complete") as caught:
        train.run(make_config("trainer.epochs=3"), run_dir, Console(file=io.StringIO()), stop)
    assert caught.value.exit_code == 130 and caught.value.epochs_completed == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["interruption"] == "SIGINT during epoch 1"
    assert not list(run_dir.rglob("*.keras"))


@pytest.mark.slow
def test_sigterm_saves_whole_epochs_and_exits_143(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    process = start_aetrain(*smoke_args(tiny_data_dir, f"hydra.run.dir={run_dir}", *SLOW_RUN), cwd=tmp_path)
    wait_for(run_dir / "checkpoints" / "last.keras", process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    text = plain_text(stdout + stderr)
    assert process.returncode == 143, text
    assert "Training stopped by SIGTERM during epoch" in text and "Traceback" not in text
    metrics = json.loads((run_dir / "metrics.json").read_text())
    done = metrics["epochs_completed"]
    assert metrics["status"] == "interrupted" and 1 <= done < 12
    assert len(metrics["history"]["val_loss"]) == done
    last = run_dir / "checkpoints" / "last.keras"
    assert is_whole_checkpoint(last) and read_metadata(last)["epoch"] == done
    assert read_metadata(last)["history"] == metrics["history"]
    assert f"Resume with: aetrain trainer=smoke data.dir={tiny_data_dir}" in text
    assert f"trainer.resume={run_dir}" in stdout  # on one line, to copy
    assert partial_files(run_dir) == []


@pytest.mark.slow
def test_second_ctrl_c_aborts_at_once_with_whole_files(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    process = start_aetrain(*smoke_args(tiny_data_dir, f"hydra.run.dir={run_dir}", *SLOW_RUN), cwd=tmp_path)
    wait_for(run_dir / "checkpoints" / "last.keras", process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr
    for checkpoint in (run_dir / "checkpoints").glob("*.keras"):
        assert is_whole_checkpoint(checkpoint)
    assert partial_files(run_dir) == []


# Real aetrain, but the rename that publishes a checkpoint waits (after the temp file is complete)
# so that the test's kill -9 lands in the middle of writing the epoch-2 checkpoint.
PAUSE_BEFORE_THIRD_RENAME = """
import os, sys, time
from pathlib import Path
real_replace, calls, marker = os.replace, [], Path(sys.argv[1])
def replace(src, dst):
    calls.append(dst) if str(dst).endswith(".keras") else None
    if len(calls) == 3 and str(dst).endswith(".keras"):
        marker.write_text(str(dst))
        time.sleep(120)
    return real_replace(src, dst)
os.replace = replace
from aetrain.commands.train import entry
sys.argv = ["aetrain", *sys.argv[2:]]
entry()
"""


@pytest.mark.slow
def test_kill_9_while_a_checkpoint_is_written_leaves_the_previous_one_whole(tiny_data_dir, tmp_path):
    run_dir, marker = tmp_path / "run", tmp_path / "writing"
    args = smoke_args(tiny_data_dir, f"hydra.run.dir={run_dir}", "trainer.epochs=3")
    process = subprocess.Popen(
        [sys.executable, "-c", PAUSE_BEFORE_THIRD_RENAME, str(marker), *args],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_for(marker, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert "checkpoints" in marker.read_text()  # it was writing a checkpoint when killed
    for name in ("best.keras", "last.keras"):
        path = run_dir / "checkpoints" / name
        assert is_whole_checkpoint(path) and read_metadata(path)["epoch"] == 1
    # The half-published file is only a hidden temp file, which nothing reads as a checkpoint.
    assert all(p.name.startswith(".") and "-partial-" in p.name for p in partial_files(run_dir))
    visible = sorted(p.name for p in (run_dir / "checkpoints").iterdir() if not p.name.startswith("."))
    assert visible == ["best.keras", "last.keras"]
