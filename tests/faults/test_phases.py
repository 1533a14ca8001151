"""Ctrl-C / SIGTERM after the last training batch: the evaluation and the pictures stop within
seconds (exit 130 / 143), metrics.json says where (``interrupted_in``), and the printed resume
command does only the phases that were missing, without training again."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from aetrain.commands.train import stop_on_signals
from aetrain.training.stop_request import EVALUATION, PICTURES, StopNow, StopRequest, request_stop

from cli_runs import (
    OutputReader,
    plain_text,
    printed_resume_command,
    run_in_shell,
    smoke_args,
    start_aetrain_merged,
)

# Real aetrain, with a test-set evaluation that takes minutes: the test signals into it.
SLOW_EVALUATION = """
import sys, time
import aetrain.analysis.evaluation
def slow_evaluation(*args, **kwargs):
    print("evaluating slowly", flush=True)
    time.sleep(300)
aetrain.analysis.evaluation.evaluate_test_set = slow_evaluation
from aetrain.commands.train import entry
sys.argv = ["aetrain", *sys.argv[1:]]
entry()
"""
# Enough to wait for a stop but not so long the test waits for a process that ignored it.
STOPS_WITHIN_SECONDS = 20


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def stop_at(process, marker: str, signal_number: int) -> tuple[str, float]:
    """Send the signal when the output shows ``marker``; the whole output and the seconds to exit."""
    reader = OutputReader(process)
    reader.until(marker)
    sent = time.monotonic()
    process.send_signal(signal_number)
    output = reader.rest(timeout=120)
    return output, time.monotonic() - sent


def test_a_stop_after_training_raises_at_once_and_between_phases():
    stop = StopRequest()
    stop.ask(signal.SIGINT)  # in training: only recorded
    with pytest.raises(StopNow) as caught:
        stop.enter(EVALUATION)  # the phase boundary looks
    assert caught.value.phase == EVALUATION
    stop = StopRequest()
    stop.enter(PICTURES)
    with pytest.raises(StopNow):  # a signal handler's ask() stops the phase where it is
        stop.ask(signal.SIGTERM)
    assert stop.exit_code == 143
    stop = StopRequest()
    stop.enter(PICTURES)
    stop.defer()
    stop.ask(signal.SIGTERM)  # all phases done: nothing left to stop
    assert stop.requested


def frame_inside_tensorflow():
    """A frame whose code lives in a file of TensorFlow's, as a signal handler would get one there."""
    namespace: dict = {}
    exec(compile("import sys\nframe = sys._getframe()", "/lib/python3/tensorflow/fake.py", "exec"), namespace)
    return namespace["frame"]


def test_a_stop_that_lands_inside_tensorflow_is_raised_again_outside_it():
    """Raised inside a traced function, the stop came out as a pybind11 RuntimeError (the job was
    recorded failed); now it waits for code of aetrain's or another library's."""
    with stop_on_signals() as stop:
        stop.enter(EVALUATION)
        stop.ask(signal.SIGTERM, frame_inside_tensorflow())  # nothing raised there
        started = time.monotonic()
        with pytest.raises(StopNow) as caught:
            time.sleep(10)  # the stop is delivered again, here
    assert caught.value.phase == EVALUATION and time.monotonic() - started < 2


def test_a_sweep_job_after_training_stops_at_once_on_the_sweeps_request(tmp_path):
    """The sweep's stop request reaches a parallel job's process as a file, not a signal: after
    training, it is watched, so a long picture does not hold the job (it took 25-41 s)."""
    with stop_on_signals(tmp_path) as stop:
        stop.enter(PICTURES)
        started = time.monotonic()
        with pytest.raises(StopNow) as caught:
            request_stop(tmp_path, signal.SIGTERM)  # what the sweep's process writes
            time.sleep(10)  # a matplotlib call that takes long
    assert caught.value.phase == PICTURES and time.monotonic() - started < 3
    assert stop.signal_name == "SIGTERM"


@pytest.mark.slow
def test_sigint_in_the_evaluation_then_resume_evaluates_and_draws_without_training(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    process = start_aetrain_merged(
        *smoke_args(tiny_data_dir, f"hydra.run.dir={run_dir}"), cwd=tmp_path, script=SLOW_EVALUATION
    )
    output, seconds = stop_at(process, "evaluating slowly", signal.SIGINT)
    text = plain_text(output)
    assert process.returncode == 130, text
    assert seconds < STOPS_WITHIN_SECONDS and "Traceback" not in text
    assert "stopping the evaluation now" in text and "Stopped by SIGINT during the evaluation" in text
    stopped = metrics(run_dir)
    assert stopped["status"] == "interrupted" and stopped["interrupted_in"] == "evaluation"
    assert "test" not in stopped and not (run_dir / "reconstructions.png").exists()
    last = (run_dir / "checkpoints" / "last.keras").read_bytes()

    resumed = run_in_shell(printed_resume_command(output), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "only the phases it missed" in plain_text(resumed.stdout)
    done = metrics(run_dir)
    assert done["status"] == "completed" and "interrupted_in" not in done
    assert done["test"]["images"] > 0 and (run_dir / "reconstructions.png").is_file()
    assert done["history"] == stopped["history"] and done["train_seconds"] == stopped["train_seconds"]
    assert (run_dir / "checkpoints" / "last.keras").read_bytes() == last  # no more training


@pytest.mark.slow
def test_sigterm_in_the_pictures_stops_within_seconds_and_resume_draws_them(tiny_data_dir, tmp_path):
    # 200 test images in a grid of 1000 asked: the grid alone takes many seconds to draw.
    run_dir = tmp_path / "run"
    process = start_aetrain_merged(
        *smoke_args(tiny_data_dir, "trainer.grid_images=1000", f"hydra.run.dir={run_dir}"), cwd=tmp_path
    )
    output, seconds = stop_at(process, "phase pictures", signal.SIGTERM)
    text = plain_text(output)
    assert process.returncode == 143, text
    assert seconds < STOPS_WITHIN_SECONDS and "Traceback" not in text
    stopped = metrics(run_dir)
    assert stopped["status"] == "interrupted" and stopped["interrupted_in"] == "pictures"
    assert stopped["interruption"] == "SIGTERM during the pictures"
    assert stopped["test"]["images"] == 200 and not (run_dir / "reconstructions.png").exists()
    assert not list(run_dir.glob(".*-partial-*"))

    # The printed command with a smaller grid (trainer.grid_images may change on a resume).
    resumed = run_in_shell(f"{printed_resume_command(output)} trainer.grid_images=10", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "the test-set figures are those of the run's own evaluation" in plain_text(resumed.stdout)
    done = metrics(run_dir)
    assert done["status"] == "completed" and done["test"] == stopped["test"]
    for name in ("reconstructions.png", "reconstructions.npz", "loss.png"):
        assert (run_dir / name).is_file(), name
