"""VAE health: loss terms and beta in the history, KL warm-up (and its resume), KL per dimension,
active units, the IWAE likelihood and the posterior-collapse warning."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from rich.console import Console

from aetrain.commands import evaluate as evaluate_command
from aetrain.data import load_fashion_mnist
from aetrain.models.vae import kl_warmup_scale
from aetrain.models.vae_health import (
    active_units,
    collapse_warning,
    iwae_negative_log_likelihood,
    kl_per_dimension,
    negative_elbo,
)
from aetrain.run_folder.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from aetrain.training import loop as train

QUIET = Console(file=io.StringIO())
STEPS_PER_EPOCH = 6  # tiny data: 192 training images in batches of 32


def test_kl_warmup_scale_rises_linearly_per_step():
    assert [kl_warmup_scale(step, 4) for step in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert kl_warmup_scale(0, 0) == 1.0  # no warm-up: the full beta from the first step


def test_kl_per_dimension_matches_hand_computation():
    mean = np.array([[1.0, 0.0], [-1.0, 0.0]])
    log_var = np.array([[0.0, math.log(2.0)], [0.0, math.log(2.0)]])
    # unit 0: -1/2 (1 + 0 - 1 - 1) = 0.5; unit 1: -1/2 (1 + log 2 - 2 - 0) = (1 - log 2) / 2
    np.testing.assert_allclose(kl_per_dimension(mean, log_var), [0.5, (1 - math.log(2)) / 2])


def test_active_units_count_means_that_vary_across_images():
    mean = np.array([[0.0, 5.0, 0.0], [1.0, 5.0, 0.1], [-1.0, 5.0, 0.2]])
    # variances: 2/3 (active), 0 (collapsed: constant), 0.00667 (below 0.01)
    assert active_units(mean) == 1


def test_collapse_warning_below_half_and_what_it_suggests():
    assert collapse_warning(5, 10) is None
    warning = collapse_warning(4, 10)
    assert "4 of 10" in warning
    assert "variant.kl_warmup_epochs" in warning and "variant.beta" in warning


@pytest.mark.slow
def test_history_has_the_loss_terms_and_the_warming_beta(make_config, tmp_path):
    cfg = make_config("variant=vae", "variant.kl_warmup_epochs=1.5", "trainer.epochs=3", "variant.beta=2")
    train.run(cfg, tmp_path, QUIET)
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    for key in ("reconstruction_loss", "kl_loss", "val_reconstruction_loss", "val_kl_loss", "beta"):
        assert len(history[key]) == 3, key
    warmup_steps = 1.5 * STEPS_PER_EPOCH  # beta at each epoch's last step (steps 5, 11, 17)
    assert history["beta"] == pytest.approx([2 * 5 / warmup_steps, 2.0, 2.0])
    # val_loss is the objective at the full beta, whatever the warm-up (best.keras compares like with like)
    for epoch in range(3):
        expected = history["val_reconstruction_loss"][epoch] + 2 / 784 * history["val_kl_loss"][epoch]
        assert history["val_loss"][epoch] == pytest.approx(expected, rel=1e-5)
    assert all(v > 0 for v in history["kl_loss"])


@pytest.mark.slow
def test_kl_warmup_resumed_continues_the_ramp_exactly(make_config, tmp_path):
    common = (
        "variant=vae",
        "variant.kl_warmup_epochs=2.5",
        "trainer.deterministic=true",
        "trainer.precision=float32",
        "trainer.schedule=constant",  # one_cycle over 1 and over 3 epochs would differ from step one
    )
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    train.run(make_config(*common, "trainer.epochs=3"), whole, QUIET)
    train.run(make_config(*common, "trainer.epochs=1"), stopped, QUIET)
    train.run(make_config(*common, "trainer.epochs=3", f"trainer.resume={stopped}"), stopped, QUIET)
    resumed, straight = (json.loads((f / "metrics.json").read_text())["history"] for f in (stopped, whole))
    for key in ("beta", "loss", "kl_loss", "val_loss"):
        assert resumed[key] == straight[key], key
    assert straight["beta"][0] < straight["beta"][1] < straight["beta"][2] == 1.0


def _vae(trained_runs, tiny_data_dir):
    folder = trained_runs("variant=vae", "latent_size=4")
    model = load_checkpoint(folder / "checkpoints" / "best.keras", compile=False)
    data = load_fashion_mnist(tiny_data_dir, limit=256, val_size=64)
    return folder, model, np.asarray(data.x_test)


@pytest.mark.slow
def test_iwae_lies_below_the_negative_elbo_and_meets_it_at_one_sample(trained_runs, tiny_data_dir):
    _, model, images = _vae(trained_runs, tiny_data_dir)
    mean, log_var, _ = model.get_layer("encoder").predict(images, verbose=0)
    decoder = model.get_layer("decoder")
    elbo = negative_elbo(model, images, seed=3, samples=50)["negative_elbo_nats"]
    iwae = {
        k: float(np.mean(iwae_negative_log_likelihood(decoder, images, mean, log_var, k, seed=3)))
        for k in (1, 10, 100)
    }
    assert iwae[100] <= iwae[10] <= iwae[1] + 0.5
    assert iwae[100] <= elbo
    assert iwae[1] == pytest.approx(elbo, rel=0.02)  # K = 1: the ELBO's own one-sample estimate


@pytest.mark.slow
def test_collapsed_vae_is_reported_in_eval_json(trained_runs, tiny_data_dir, tmp_path):
    folder, model, _ = _vae(trained_runs, tiny_data_dir)
    mean_layer = model.get_layer("encoder").get_layer("codings_mean")
    mean_layer.set_weights([np.zeros_like(w) for w in mean_layer.get_weights()])  # every image -> mean 0
    checkpoint = tmp_path / "collapsed.keras"
    save_checkpoint(model, checkpoint, read_metadata(folder / "checkpoints" / "best.keras"))
    out = tmp_path / "out"
    args = [str(checkpoint), "--data-dir", str(tiny_data_dir), "--out", str(out), "--probe-steps", "5"]
    assert evaluate_command.main([*args, "--iw-samples", "3"]) == 0
    report = json.loads((out / "eval.json").read_text())
    vae = report["vae"]
    assert vae["active_units"] == 0 and len(vae["kl_per_dimension"]) == 4
    assert vae["iw_samples"] == 3 and vae["iwae_nats"] > 0
    assert "0 of 4" in report["warnings"][0] and "kl_warmup_epochs" in report["warnings"][0]
    assert report["manifest"]["seed"] == 42


def test_training_summary_warns_of_collapse_in_metrics_json(make_config):
    cfg = make_config("variant=vae", "latent_size=10")
    assert train._health_warnings(cfg, {"active_units": 6}) == []
    (warning,) = train._health_warnings(cfg, {"active_units": 2})
    assert "2 of 10" in warning
    assert train._health_warnings(make_config(), {"mse": 0.1}) == []  # not a VAE: no active_units


def test_a_model_worse_than_the_mean_image_or_with_an_exploded_latent_term_is_flagged():
    from aetrain.analysis.evaluation import mean_image_mse, worse_than_mean_image_warning
    from aetrain.models.vae_health import exploded_latent_warning

    images = np.array([[0.0, 1.0], [1.0, 1.0]], dtype=np.float32)  # mean image [0.5, 1.0]
    assert mean_image_mse(images) == pytest.approx((0.25 + 0 + 0.25 + 0) / 4)
    assert worse_than_mean_image_warning(0.2, 0.125).startswith("the model reconstructs worse")
    assert worse_than_mean_image_warning(0.1, 0.125) is None
    assert "exploded" in exploded_latent_warning(3945.0, 10)
    assert exploded_latent_warning(25.0, 10) is None
