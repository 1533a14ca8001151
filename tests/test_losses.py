"""Each penalty equals its formula on numbers worked by hand."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from aetrain.models.sparsity import KLSparsityRegularization, kl_sparsity_penalty
from aetrain.models.vae import LatentLoss, latent_loss_log_var, latent_loss_sigma

# Two examples, two units: batch-mean activations q = [0.1, 0.3]; target p = 0.1.
CODINGS = np.array([[0.2, 0.4], [0.0, 0.2]], dtype="float32")
# unit 1: q = p, KL = 0. unit 2: 0.1 ln(0.1/0.3) + 0.9 ln(0.9/0.7)
KL_BY_HAND = 0.1 * math.log(0.1 / 0.3) + 0.9 * math.log(0.9 / 0.7)


def test_kl_sparsity_penalty_matches_hand_computation():
    assert pytest.approx(0.1163215, abs=1e-6) == KL_BY_HAND
    value = float(kl_sparsity_penalty(CODINGS, target=0.1))
    assert value == pytest.approx(KL_BY_HAND, rel=1e-5)


def test_kl_sparsity_penalty_is_zero_at_the_target_and_finite_for_dead_units():
    at_target = np.full((4, 3), 0.25, dtype="float32")
    assert float(kl_sparsity_penalty(at_target, target=0.25)) == pytest.approx(0.0, abs=1e-6)
    dead = np.zeros((4, 3), dtype="float32")
    assert math.isfinite(float(kl_sparsity_penalty(dead, target=0.1)))


def test_kl_layer_adds_weight_times_formula_divided_by_the_batch_size_as_keras_does():
    """The book's KL activity regularizer: Keras divides its penalty by the batch size (2 here)."""
    inputs = keras.Input(shape=(2,))
    model = keras.Model(inputs, KLSparsityRegularization(0.1, 5e-3, divide_by_batch_size=True)(inputs))
    model(CODINGS)
    assert [float(loss) for loss in model.losses] == pytest.approx([5e-3 * KL_BY_HAND / 2], rel=1e-5)


def test_kl_layer_of_an_older_checkpoint_adds_the_undivided_penalty():
    layer = KLSparsityRegularization.from_config({"target": 0.1, "weight": 5e-3})  # a config from before
    inputs = keras.Input(shape=(2,))
    model = keras.Model(inputs, layer(inputs))
    model(CODINGS)
    assert [float(loss) for loss in model.losses] == pytest.approx([5e-3 * KL_BY_HAND], rel=1e-5)


def test_a_stored_kl_config_without_the_key_reads_back_undivided():
    from aetrain.config import RunConfig

    from conftest import compose_config

    stored = RunConfig.from_dict(
        {**_plain(compose_config("sparsity=kl")), "sparsity": {"name": "kl", "target": 0.1, "weight": 5e-3}}
    )
    assert stored.sparsity.divide_by_batch_size is False
    assert RunConfig.from_dict(_plain(compose_config("sparsity=kl"))).sparsity.divide_by_batch_size is True


def _plain(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


def test_l1_penalty_is_weight_times_sum_abs_per_example():
    """The seed's ActivityRegularization(l1=w): Keras divides the batch's penalty by the batch size."""
    codings = np.array([[1.0, -2.0], [3.0, 0.0]], dtype="float32")
    inputs = keras.Input(shape=(2,))
    model = keras.Model(inputs, keras.layers.ActivityRegularization(l1=0.5)(inputs))
    model(codings)
    # 0.5 * (1 + 2 + 3 + 0) / 2 examples
    assert [float(loss) for loss in model.losses] == pytest.approx([1.5])


# mean = [1, 0], gamma = log sigma^2 = [0, ln 4]:
# -1/2 [(1 + 0 - 1 - 1) + (1 + ln 4 - 4 - 0)] = -1/2 (ln 4 - 4) = 2 - ln 2
MEAN = np.array([[1.0, 0.0]], dtype="float32")
LOG_VAR = np.array([[0.0, math.log(4.0)]], dtype="float32")
LATENT_BY_HAND = 2.0 - math.log(2.0)


def test_latent_loss_log_var_form_matches_hand_computation():
    assert float(latent_loss_log_var(MEAN, LOG_VAR)[0]) == pytest.approx(LATENT_BY_HAND, rel=1e-6)


def test_latent_loss_sigma_form_matches_hand_computation():
    sigma = np.exp(0.5 * LOG_VAR)
    assert float(latent_loss_sigma(MEAN, sigma)[0]) == pytest.approx(LATENT_BY_HAND, rel=1e-6)


def test_both_latent_loss_forms_agree_on_the_same_inputs():
    rng = np.random.default_rng(7)
    mean = rng.normal(size=(16, 10)).astype("float32")
    log_var = rng.normal(scale=0.8, size=(16, 10)).astype("float32")
    by_log_var = np.asarray(latent_loss_log_var(mean, log_var))
    by_sigma = np.asarray(latent_loss_sigma(mean, np.exp(0.5 * log_var)))
    np.testing.assert_allclose(by_log_var, by_sigma, rtol=1e-5)
    assert (by_log_var >= 0).all()  # a KL divergence


@pytest.mark.parametrize("form", ["log_var", "sigma"])
def test_latent_loss_layer_adds_weighted_batch_mean(form):
    mean_in, log_var_in = keras.Input(shape=(2,)), keras.Input(shape=(2,))
    outputs = LatentLoss(form, weight=0.5)([mean_in, log_var_in])
    model = keras.Model([mean_in, log_var_in], outputs)
    mean = np.concatenate([MEAN, np.zeros_like(MEAN)])  # second example: the prior, loss 0
    log_var = np.concatenate([LOG_VAR, np.zeros_like(LOG_VAR)])
    passed_mean, passed_log_var = model([mean, log_var])
    np.testing.assert_array_equal(np.asarray(passed_mean), mean)
    np.testing.assert_array_equal(np.asarray(passed_log_var), log_var)
    assert [float(loss) for loss in model.losses] == pytest.approx([0.5 * LATENT_BY_HAND / 2], rel=1e-5)
