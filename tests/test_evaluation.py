"""Evaluation figures against their formulas on known cases, and the full report on trained runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aetrain.analysis.evaluation import (
    NEAR_ZERO_ACTIVATION,
    coding_activity,
    evaluate_trained_model,
    linear_probe,
    psnr_per_image,
    ssim_per_image,
)
from aetrain.config import RunConfig
from aetrain.data import load_fashion_mnist
from aetrain.models.vae import latent_loss_log_var
from aetrain.models.vae_health import bernoulli_negative_log_likelihood, negative_elbo
from aetrain.run_folder.checkpoints import load_checkpoint, read_metadata

IMAGES = np.random.default_rng(0).random((6, 28, 28), dtype=np.float32) * 0.8


def test_identical_images_have_ssim_one():
    np.testing.assert_allclose(ssim_per_image(IMAGES, IMAGES.copy()), 1.0, atol=1e-6)


def test_ssim_falls_for_a_different_image():
    other = np.random.default_rng(1).random((6, 28, 28), dtype=np.float32)
    assert (ssim_per_image(IMAGES, other) < 0.2).all()


@pytest.mark.parametrize("offset", [0.01, 0.1])
def test_constant_offset_gives_psnr_of_ten_log10_one_over_mse(offset):
    # IMAGES lie in [0, 0.8], so +0.1 stays inside [0, 1] and the clip changes nothing.
    expected = 10 * math.log10(1 / offset**2)
    np.testing.assert_allclose(psnr_per_image(IMAGES, IMAGES + offset), expected, rtol=1e-4)


def test_psnr_clips_reconstructions_to_the_pixel_range():
    black = np.zeros((1, 28, 28), np.float32)
    # a reconstruction of 2.0 is shown as 1.0: MSE 1, PSNR 0 dB
    np.testing.assert_allclose(psnr_per_image(black, black + 2.0), 0.0, atol=1e-5)


def test_bernoulli_negative_log_likelihood_matches_hand_computation():
    x = np.zeros((1, 28, 28), np.float32)
    x[0, 0, :2] = [1.0, 0.5]
    y = np.full((1, 28, 28), 0.5, np.float32)
    y[0, 0, 0] = 0.9
    # pixel 0: -log 0.9; pixel 1: -(0.5 log .5 + 0.5 log .5) = log 2; 782 black pixels: -log 0.5 each
    expected = -math.log(0.9) + math.log(2) + 782 * math.log(2)
    assert bernoulli_negative_log_likelihood(x, y)[0] == pytest.approx(expected, rel=1e-9)


def test_coding_activity_per_unit_and_near_zero_share():
    codings = np.array([[0.0, 0.2, 1.0], [0.02, 0.4, 0.0]], np.float32)
    activity = coding_activity(codings, target=0.1)
    np.testing.assert_allclose(activity["unit_mean_activation"], [0.01, 0.3, 0.5], rtol=1e-6)
    assert activity["mean_activation"] == pytest.approx(0.27)
    assert activity["near_zero_fraction"] == pytest.approx(3 / 6)  # 0.0, 0.02, 0.0 < 0.05
    assert activity["near_zero_threshold"] == NEAR_ZERO_ACTIVATION and activity["target_activation"] == 0.1


def test_linear_probe_separates_separable_codings_and_is_deterministic():
    rng = np.random.default_rng(3)
    labels = np.arange(600) % 10
    centres = rng.normal(scale=5.0, size=(10, 4))
    codings = (centres[labels] + rng.normal(size=(600, 4))).astype(np.float32)
    first = linear_probe(codings[:400], labels[:400], codings[400:], labels[400:], seed=1, steps=300)
    second = linear_probe(codings[:400], labels[:400], codings[400:], labels[400:], seed=1, steps=300)
    assert first["probe_test_accuracy"] > 0.9
    assert first == second
    noise = rng.normal(size=(600, 4)).astype(np.float32)  # codings that say nothing about the class
    chance = linear_probe(noise[:400], labels[:400], noise[400:], labels[400:], seed=1, steps=300)
    assert chance["probe_test_accuracy"] < 0.25


def test_linear_probe_on_one_class_says_it_is_not_defined_instead_of_a_number():
    codings = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    labels = np.full(50, 4)
    probe = linear_probe(codings[:40], labels[:40], codings[40:], labels[40:], seed=1, steps=10)
    assert "probe_test_accuracy" not in probe and "1 class" in probe["probe_undefined"]


def _trained(trained_runs, tiny_data_dir, *overrides):
    folder = trained_runs(*overrides)
    checkpoint = folder / "checkpoints" / "best.keras"
    cfg = RunConfig.from_dict(read_metadata(checkpoint)["config"])
    data = load_fashion_mnist(tiny_data_dir, limit=cfg.data.limit, val_size=cfg.data.val_size)
    return load_checkpoint(checkpoint, compile=False), cfg, data


def test_negative_elbo_is_the_sampled_reconstruction_plus_the_exact_kl(trained_runs, tiny_data_dir):
    model, _, data = _trained(
        trained_runs, tiny_data_dir, "variant=conv_vae", "latent_size=2", "noise=gaussian"
    )
    images = data.x_test[:20]
    report = negative_elbo(model, images, seed=5, samples=3)
    mean, log_var, _ = model.get_layer("encoder").predict(images, verbose=0)
    rng = np.random.default_rng(5)
    decoder = model.get_layer("decoder")
    nll = np.mean(
        [
            bernoulli_negative_log_likelihood(
                images,
                decoder.predict(mean + np.exp(0.5 * log_var) * rng.standard_normal(mean.shape), verbose=0),
            )
            for _ in range(3)
        ],
        axis=0,
    )
    kl = np.asarray(latent_loss_log_var(mean, log_var))
    assert report["reconstruction_nats"] == pytest.approx(float(np.mean(nll)), rel=1e-4)
    assert report["kl_nats"] == pytest.approx(float(np.mean(kl)), rel=1e-4)
    assert report["negative_elbo_nats"] == pytest.approx(report["reconstruction_nats"] + report["kl_nats"])
    assert "Bernoulli" in report["likelihood"] and report["elbo_samples"] == 3
    assert negative_elbo(model, images, seed=5, samples=3) == report  # fixed seed, same figure


def test_full_report_for_a_denoising_conv_vae(trained_runs, tiny_data_dir):
    model, cfg, data = _trained(
        trained_runs, tiny_data_dir, "variant=conv_vae", "latent_size=2", "noise=gaussian"
    )
    report = evaluate_trained_model(model, cfg, data, seed=0, probe_steps=50)
    assert report["test_images"] == 200 and report["variant"] == "conv_vae"
    assert report["psnr_db"] > 0 and -1 <= report["ssim"] <= 1
    assert report["vae"]["negative_elbo_nats"] > report["vae"]["kl_nats"] >= 0
    assert report["denoising"]["noisy_input_mse"] > 0
    assert 0 <= report["linear_probe"]["probe_test_accuracy"] <= 1
    assert report["linear_probe"]["probe_train_images"] == len(data.x_train)
    assert "sparsity_report" not in report


def test_full_report_for_a_sparse_run(trained_runs, tiny_data_dir):
    model, cfg, data = _trained(trained_runs, tiny_data_dir, "sparsity=kl", "latent_size=16")
    report = evaluate_trained_model(model, cfg, data, seed=0, probe_steps=50)
    sparse = report["sparsity_report"]
    assert len(sparse["unit_mean_activation"]) == 16
    assert sparse["target_activation"] == 0.1
    assert np.mean(sparse["unit_mean_activation"]) == pytest.approx(sparse["mean_activation"], rel=1e-5)
    assert "vae" not in report and "denoising" not in report


@pytest.mark.parametrize("shape", [(5, 28, 28), (3, 32, 32, 3), (4, 8, 8)])
def test_psnr_and_ssim_equal_tensorflows_own(shape):
    """aetrain computes both in NumPy (no TensorFlow needed on JAX); tf.image is the reference."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    images = rng.random(shape, dtype=np.float32)
    noisy = np.clip(images + rng.normal(0, 0.1, shape).astype(np.float32), 0, 1)
    channels = (lambda a: a[..., None]) if len(shape) == 3 else (lambda a: a)
    window = min(11, shape[1])
    expected_ssim = tf.image.ssim(channels(images), channels(noisy), max_val=1.0, filter_size=window).numpy()
    expected_psnr = tf.image.psnr(channels(images), channels(noisy), max_val=1.0).numpy()
    np.testing.assert_allclose(ssim_per_image(images, noisy), expected_ssim, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(psnr_per_image(images, noisy), expected_psnr, rtol=1e-5)
