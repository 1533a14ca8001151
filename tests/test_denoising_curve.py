"""Denoising across noise levels (aetrain-evaluate --noise-levels) and dead units / sparsity.png."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aetrain.analysis.evaluation import dead_units, noisy_copy
from aetrain.commands import evaluate as evaluate_command
from aetrain.config import DropoutNoise, GaussianNoise, NoNoise

IMAGES = np.random.default_rng(0).random((200, 28, 28), dtype=np.float32)


def test_level_zero_is_the_clean_image():
    for noise in (GaussianNoise(), DropoutNoise(), NoNoise()):
        np.testing.assert_array_equal(noisy_copy(IMAGES, noise, 0.0, seed=1), IMAGES)


def test_gaussian_noise_has_the_asked_stddev():
    for trained_with in (GaussianNoise(stddev=0.05), NoNoise()):  # a run without noise: Gaussian noise
        noisy = noisy_copy(IMAGES, trained_with, 0.3, seed=1)
        assert np.mean(np.square(noisy - IMAGES)) == pytest.approx(0.09, rel=0.02)
        np.testing.assert_array_equal(noisy, noisy_copy(IMAGES, trained_with, 0.3, seed=1))  # seeded


def test_dropout_drops_the_rate_and_scales_the_rest_like_keras():
    noisy = noisy_copy(IMAGES, DropoutNoise(rate=0.5), 0.25, seed=1)
    dropped = noisy == 0
    assert dropped.mean() == pytest.approx(0.25, abs=0.01)
    np.testing.assert_allclose(noisy[~dropped], IMAGES[~dropped] / 0.75, rtol=1e-6)


def test_dead_units_never_rise_above_the_threshold():
    codings = np.array([[0.0, 0.9, 0.05], [0.04, 0.0, 0.01], [0.01, 0.2, 0.05]], np.float32)
    assert dead_units(codings) == [0, 2]  # unit 2 reaches 0.05 but never exceeds it


def test_dropout_levels_must_lie_below_one(trained_runs, tiny_data_dir, tmp_path):
    run = trained_runs("noise=dropout", "sparsity=kl", "latent_size=16")
    args = [str(run), "--data-dir", str(tiny_data_dir), "--out", str(tmp_path)]
    assert evaluate_command.main([*args, "--noise-levels", "0,1"]) == 2  # the run's dropout refuses rate 1
    with pytest.raises(SystemExit) as parsed:
        evaluate_command.main([*args, "--noise-levels", "0,-0.1"])
    assert parsed.value.code == 2


@pytest.mark.slow
def test_curve_and_sparsity_report_of_a_sparse_dropout_run(trained_runs, tiny_data_dir, tmp_path):
    run = trained_runs("noise=dropout", "sparsity=kl", "latent_size=16")
    args = [str(run), "--data-dir", str(tiny_data_dir), "--out", str(tmp_path), "--probe-steps", "5"]
    assert evaluate_command.main([*args, "--noise-levels", "0,0.2,0.5"]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    curve = report["denoising_curve"]
    assert curve["kind"] == "dropout" and [p["level"] for p in curve["points"]] == [0.0, 0.2, 0.5]
    assert curve["level"] == "dropout rate"
    first, _, last = curve["points"]
    assert first["noisy_input_mse"] == 0 and first["reconstruction_mse"] == pytest.approx(report["mse"])
    assert last["noisy_input_mse"] > first["noisy_input_mse"]
    sparse = report["sparsity_report"]
    assert sparse["dead_units"] == len(sparse["dead_unit_indices"]) <= 16
    for picture in ("denoising_curve.png", "sparsity.png"):
        assert (tmp_path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture


def test_levels_are_checked_by_the_runs_own_noise_and_a_noise_without_a_strength_is_refused():
    from dataclasses import dataclass

    from aetrain.commands.companion import CommandRefused
    from aetrain.config import Noise, validate

    from conftest import compose_config

    dropout = validate(compose_config("noise=dropout"))
    evaluate_command._check_noise_levels([0.0, 0.5], dropout)  # rates below 1: accepted
    with pytest.raises(
        CommandRefused, match=r"dropout rates, and 1 is not one: allowed is a number strictly"
    ):
        evaluate_command._check_noise_levels([0.0, 1.0], dropout)

    @dataclass
    class SaltAndPepper(Noise):  # an outside noise that names no level_key
        name: str = "salt_and_pepper"

    plain = validate(compose_config())
    plain.noise = SaltAndPepper()
    with pytest.raises(CommandRefused, match=r"\(salt_and_pepper\) has no one strength"):
        evaluate_command._check_noise_levels([0.1], plain)
    evaluate_command._check_noise_levels(None, plain)  # no curve asked: nothing to refuse
