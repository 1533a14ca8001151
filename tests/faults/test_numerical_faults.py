"""A NaN or inf loss stops training at once, keeps the last good checkpoints, records the failure and
exits 4; the diverged epoch is never written as a checkpoint."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

from aetrain import data
from aetrain.run_folder.checkpoints import load_checkpoint, read_metadata
from aetrain.training import loop as train

from cli_runs import aetrain, partial_files, plain_text, smoke_args


def poison_from_epoch(epoch: int, monkeypatch) -> None:
    """Make every training batch from ``epoch`` (1-based) on all NaN, so its loss is NaN."""
    real = data.make_training_dataset

    def poisoned(images, batch_size, *, seed, first_epoch=0, **kwargs):
        dataset = real(images, batch_size, seed=seed, first_epoch=first_epoch, **kwargs)
        clean = type(dataset).__getitem__

        class Poisoned(type(dataset)):
            def __getitem__(self, index):
                x, _ = clean(self, index)
                if self.epoch >= epoch - 1:  # self.epoch counts from 0
                    x = x * np.float32("nan")
                return x, x

        dataset.__class__ = Poisoned
        return dataset

    monkeypatch.setattr(data, "make_training_dataset", poisoned)


def test_nan_in_epoch_two_keeps_epoch_one_checkpoints(make_config, tmp_path, monkeypatch):
    poison_from_epoch(2, monkeypatch)
    cfg = make_config("trainer.epochs=4")
    run_dir = tmp_path / "run"
    with pytest.raises(train.TrainingDiverged, match=r"epoch 2, batch 1; best.keras from epoch 1 is kept"):
        train.run(cfg, run_dir, Console(file=io.StringIO()))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "loss became nan at epoch 2" in metrics["failure"]
    assert metrics["epochs_completed"] == 1 and len(metrics["history"]["loss"]) == 1
    assert metrics["best_epoch"] == 1
    for name in ("best.keras", "last.keras"):
        path = run_dir / "checkpoints" / name
        assert read_metadata(path)["epoch"] == 1  # the NaN epoch did not overwrite last.keras
        weights = load_checkpoint(path, compile=False).get_weights()
        assert all(np.isfinite(w).all() for w in weights)
    assert partial_files(run_dir) == []


@pytest.mark.slow
def test_huge_learning_rate_exits_4_without_a_checkpoint(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = aetrain(
        *smoke_args(
            tiny_data_dir,
            f"hydra.run.dir={run_dir}",
            "variant.output_activation=linear",
            "trainer.optimizer=sgd",
            "trainer.schedule=constant",
            "trainer.learning_rate=1e12",
            "trainer.epochs=5",
        ),
        cwd=tmp_path,
    )
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 4, text
    assert "Training diverged: loss became" in text and "Lower trainer.learning_rate" in text
    assert "Traceback" not in text
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "at epoch 1" in metrics["failure"]
    assert metrics["epochs_completed"] == 0 and metrics["best_epoch"] is None
    # nothing that could be mistaken for a trained model
    assert not list(run_dir.rglob("*.keras"))
    assert partial_files(run_dir) == []
