"""``trainer.resume``: a run stopped by Ctrl-C and resumed ends with the same metrics as one that never
stopped; the same config and seed give the same metrics. On CPU with trainer.deterministic=true both
are bit-identical, which is what these tests demand (tolerance 0; see docs/reliability.md for the GPU)."""

from __future__ import annotations

import json
import signal
import zipfile
from pathlib import Path

import pytest
import yaml

from aetrain.run_folder.checkpoints import load_checkpoint, read_metadata

from cli_runs import SLOW_RUN, aetrain, plain_text, smoke_args, start_aetrain, wait_for

# Gaussian noise: the resumed run must also continue the noise generator's sequence.
EPOCHS = 6  # SLOW_RUN's batches; the signal lands after epoch 1, five epochs before the end
RUN = ["trainer.deterministic=true", "noise=gaussian", *SLOW_RUN, f"trainer.epochs={EPOCHS}"]
COMPARED = ("history", "test", "best_val_loss", "best_epoch", "epochs_completed")


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def runs(tiny_data_dir, tmp_path_factory) -> dict[str, Path]:
    """An uninterrupted run, its twin, and a run stopped by SIGINT after epoch 1 then resumed."""
    cwd = tmp_path_factory.mktemp("resume")
    folders = {}
    for name in ("whole", "twin"):
        folders[name] = cwd / name
        result = aetrain(*smoke_args(tiny_data_dir, *RUN, f"hydra.run.dir={folders[name]}"), cwd=cwd)
        assert result.returncode == 0, result.stdout + result.stderr
    stopped = cwd / "stopped"
    process = start_aetrain(*smoke_args(tiny_data_dir, *RUN, f"hydra.run.dir={stopped}"), cwd=cwd)
    wait_for(stopped / "checkpoints" / "last.keras", process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    folders["stopped"] = stopped
    folders["stopped_metrics"] = metrics(stopped)
    folders["stopped_config"] = (stopped / ".hydra" / "config.yaml").read_text()
    folders["resume_command"] = stdout.split("Resume with:")[-1].strip().splitlines()[0]
    return folders


@pytest.mark.slow
def test_same_config_and_seed_give_identical_metrics_on_cpu(runs):
    whole, twin = metrics(runs["whole"]), metrics(runs["twin"])
    for key in COMPARED:
        assert whole[key] == twin[key], key


@pytest.mark.slow
def test_bad_resumes_are_refused_before_touching_the_folder(runs, tiny_data_dir, tmp_path):
    stopped = runs["stopped"]
    changed = aetrain(
        *smoke_args(tiny_data_dir, *RUN, "seed=7", "variant.hidden_units=[64]", f"trainer.resume={stopped}"),
        cwd=tmp_path,
        without_tensorflow=True,
    )
    text = plain_text(changed.stdout + changed.stderr)
    assert changed.returncode == 2, text
    assert "variant.hidden_units: saved [100], now [64]" in text and "seed: saved 42, now 7" in text
    elsewhere = aetrain(
        *smoke_args(tiny_data_dir, *RUN, f"trainer.resume={stopped}", f"hydra.run.dir={tmp_path / 'x'}"),
        cwd=tmp_path,
        without_tensorflow=True,
    )
    assert elsewhere.returncode == 2 and "`hydra.run.dir`" in plain_text(elsewhere.stdout)
    done = aetrain(
        *smoke_args(tiny_data_dir, *RUN, "trainer.epochs=1", f"trainer.resume={stopped}"),
        cwd=tmp_path,
        without_tensorflow=True,
    )
    assert done.returncode == 2 and "raise trainer.epochs" in plain_text(done.stdout)
    assert (stopped / ".hydra" / "config.yaml").read_text() == runs["stopped_config"]
    assert metrics(stopped)["status"] == "interrupted"


@pytest.mark.slow
def test_interrupted_then_resumed_run_matches_the_uninterrupted_one(runs, tmp_path):
    stopped, before = runs["stopped"], runs["stopped_metrics"]
    assert before["status"] == "interrupted"
    # the printed command, run as printed (from another folder: the paths in it are absolute)
    command = runs["resume_command"].split()
    assert command[0] == "aetrain" and command[-1] == f"trainer.resume={stopped}"
    leftover = stopped / "checkpoints" / ".last-partial-abc123.keras"  # as a kill -9 mid-write leaves
    leftover.write_bytes(b"PK\x03\x04 half a zip")
    result = aetrain(*command[1:], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    resumed, whole = metrics(stopped), metrics(runs["whole"])
    assert resumed["status"] == "completed"
    assert not leftover.exists()  # the resumed run cleaned it up
    assert resumed["resumed_from_epoch"] == before["epochs_completed"]
    for key in COMPARED:
        assert resumed[key] == whole[key], key
    # same folder, whole history, and the optimizer's step count carried over
    last = stopped / "checkpoints" / "last.keras"
    assert read_metadata(last)["epoch"] == EPOCHS
    assert int(load_checkpoint(last).optimizer.iterations) == EPOCHS * 24
    overrides = yaml.safe_load((stopped / ".hydra" / "overrides.yaml").read_text())
    assert f"trainer.resume={stopped}" in overrides
    assert "aetrain.json" in zipfile.ZipFile(stopped / "checkpoints" / "best.keras").namelist()
    assert "resuming" in (stopped / "aetrain.log").read_text()
