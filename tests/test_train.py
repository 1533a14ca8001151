"""A whole training run in-process on tiny data: the run folder, its files and what they contain."""

from __future__ import annotations

import io
import json

import matplotlib.image
import numpy as np
import pytest
from rich.console import Console

from aetrain.data import load_fashion_mnist
from aetrain.run_folder import record
from aetrain.run_folder.checkpoints import load_checkpoint, read_metadata
from aetrain.run_folder.record import seconds_since_process_start
from aetrain.training import loop as train


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=100)


@pytest.fixture
def trained_run(make_config, tmp_path):
    def run(*overrides):
        cfg = make_config(*overrides)
        output_dir = tmp_path / "run"
        best = train.run(cfg, output_dir, quiet_console())
        return cfg, output_dir, best, json.loads((output_dir / "metrics.json").read_text())

    return run


def test_run_writes_a_complete_run_folder(trained_run):
    _, output_dir, best, metrics = trained_run("variant=dense", "noise=gaussian", "trainer.epochs=2")
    assert (output_dir / "checkpoints" / "best.keras").is_file()
    assert (output_dir / "checkpoints" / "last.keras").is_file()
    for picture in ("reconstructions.png", "loss.png"):
        assert matplotlib.image.imread(output_dir / picture).ndim == 3
    assert not (output_dir / "samples.png").exists()
    assert metrics["variant"] == "dense" and metrics["noise"] == "gaussian" and metrics["latent_size"] == 30
    assert len(metrics["history"]["loss"]) == len(metrics["history"]["val_loss"]) == 2
    assert best == metrics["best_val_loss"] == min(metrics["history"]["val_loss"])
    assert metrics["test"]["images"] == 200 and 0 < metrics["test"]["mse"] < 0.2
    assert metrics["train_seconds"] > 0 and metrics["images_per_second"] > 0
    assert metrics["status"] == "completed"


def test_best_checkpoint_reproduces_the_recorded_test_mse(trained_run, tiny_data_dir):
    cfg, output_dir, _, metrics = trained_run("variant=conv", "trainer.epochs=2")
    model = load_checkpoint(output_dir / "checkpoints" / "best.keras")
    test_images = load_fashion_mnist(tiny_data_dir, val_size=cfg.data.val_size, limit=cfg.data.limit).x_test
    mse = float(np.mean(np.square(model.predict(test_images, verbose=0) - test_images)))
    assert mse == pytest.approx(metrics["test"]["mse"], rel=1e-5)
    assert read_metadata(output_dir / "checkpoints" / "best.keras")["epoch"] == metrics["best_epoch"]


def test_vae_run_reports_latent_loss_and_writes_samples(trained_run):
    _, output_dir, _, metrics = trained_run("variant=vae", "latent_size=2")
    assert metrics["test"]["latent_loss"] > 0
    assert matplotlib.image.imread(output_dir / "samples.png").ndim == 3


def test_sparse_run_reports_coding_activation(trained_run):
    _, _, _, metrics = trained_run("variant=dense", "sparsity=kl", "latent_size=50")
    assert 0 < metrics["test"]["mean_activation"] < 1
    assert 0 <= metrics["test"]["near_zero_fraction"] <= 1
    assert metrics["test"]["target_activation"] == 0.1


def test_diverging_run_stops_records_and_raises(make_config, tmp_path):
    cfg = make_config(
        "variant=dense",
        "variant.output_activation=linear",
        "trainer.learning_rate=1e12",
        "trainer.schedule=constant",
        "trainer.optimizer=sgd",
        "trainer.epochs=3",
    )
    with pytest.raises(train.TrainingDiverged, match="learning_rate"):
        train.run(cfg, tmp_path / "run", quiet_console())
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "diverged"
    assert "loss became" in metrics["failure"]
    assert metrics["epochs_completed"] <= 1


def test_tensorboard_logs_go_to_the_run_folder_when_asked(trained_runs):
    run = trained_runs("variant=dense", "logger=tensorboard")
    for split in ("train", "validation"):
        (events,) = (run / "tensorboard" / split).glob("events.out.tfevents.*")
        assert events.stat().st_size > 0


def test_no_tensorboard_folder_by_default(trained_runs):
    assert not (trained_runs("sparsity=kl", "latent_size=16") / "tensorboard").exists()


def test_run_saves_the_grid_reconstructions_for_the_sweep_report(trained_run, tiny_data_dir):
    cfg, output_dir, _, metrics = trained_run("variant=dense", "trainer.grid_images=6")
    saved = np.load(output_dir / "reconstructions.npz")
    data = load_fashion_mnist(tiny_data_dir, cfg.data.limit, cfg.data.val_size)
    np.testing.assert_array_equal(saved["originals"], data.x_test[:6])
    np.testing.assert_array_equal(saved["labels"], data.y_test[:6])
    model = load_checkpoint(output_dir / "checkpoints" / "best.keras")
    np.testing.assert_allclose(saved["reconstructions"], model.predict(data.x_test[:6], verbose=0), atol=1e-6)
    assert metrics["replicas"] == 1 and set(metrics["thread_pools"]) == {"intra_op", "inter_op"}


def test_record_failure_keeps_what_a_diverged_run_wrote(tmp_path):
    record.write_metrics(
        tmp_path, {"status": "diverged", "epochs_completed": 1, "failure": "loss became nan"}
    )
    record.record_failure(tmp_path, "diverged", "Training diverged: lower the learning rate")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 1 and metrics["failure"] == "loss became nan"
    assert metrics["error"] == "Training diverged: lower the learning rate"


def test_record_failure_writes_metrics_for_a_job_that_never_started(tmp_path):
    record.record_failure(tmp_path / "job", "refused", "Invalid config: `latent_size` = 0.")
    written = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert written.pop("wall_seconds") > 0  # the process's age at the write
    assert written == {
        "status": "refused",
        "error": "Invalid config: `latent_size` = 0.",
    }


def test_run_records_startup_and_data_loading_seconds(trained_run):
    """Start-up spans the whole process so far: at least the data loading, at most the process's age."""
    _, _, _, metrics = trained_run("variant=dense")
    assert 0 < metrics["data_seconds"] < metrics["startup_seconds"] < seconds_since_process_start()
    assert metrics["startup_seconds"] + metrics["train_seconds"] < metrics["wall_seconds"]
    assert metrics["wall_seconds"] <= seconds_since_process_start()  # /proc/uptime counts in 10 ms steps


def test_training_time_is_the_epochs_time(trained_run):
    """Nothing but epochs runs inside fit's time: a tail after the last epoch (the user waits for it,
    no epoch timer sees it) shows up here."""
    _, _, _, metrics = trained_run("variant=dense", "trainer.epochs=3")
    assert len(metrics["epoch_seconds"]) == 3
    assert 0 <= metrics["train_seconds"] - sum(metrics["epoch_seconds"]) < 1.0
