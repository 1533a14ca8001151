"""variant=iwae: the importance-weighted bound on numbers worked by hand, its k refused before
TensorFlow loads, and its checkpoints reloading to the same outputs."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aetrain.config import ConfigError, validate
from aetrain.models.families.iwae import IMPORTANCE_WEIGHTED, importance_weighted_bound
from aetrain.models.family import family_of

from conftest import compose_config

TINY = ("variant=iwae", "variant.hidden_units=[16]", "latent_size=2", "variant.k=3")

# One image of 2 pixels x = [1, 0]; a 1-D posterior q(z|x) = N(1, 1) (mean 1, log_var 0); k = 2
# samples z_1 = 1, z_2 = 0, decoded to the pixel probabilities y_1 = [0.5, 0.5], y_2 = [0.8, 0.4].
IMAGE, MEAN, LOG_VAR = [[1.0, 0.0]], [[1.0]], [[0.0]]
Z, DECODED = [[1.0], [0.0]], [[0.5, 0.5], [0.8, 0.4]]
# log p(x|z) = sum_pixels x log y + (1-x) log(1-y):
#   z_1: log 0.5 + log 0.5 = -1.3862944;  z_2: log 0.8 + log 0.6 = -0.2231436 - 0.5108256 = -0.7339692
# log p(z) - log q(z|x) = -z^2/2 + (z-1)^2/2 (the log 2 pi and log_var terms cancel):
#   z_1: -0.5 + 0 = -0.5;  z_2: 0 + 0.5 = +0.5
# log weights: w_1 = -1.3862944 - 0.5 = -1.8862944;  w_2 = -0.7339692 + 0.5 = -0.2339692
# log-mean-exp: w_2 + log((1 + exp(w_1 - w_2)) / 2) = -0.2339692 + log((1 + exp(-1.6523252)) / 2)
#   = -0.2339692 + log((1 + 0.1916039) / 2) = -0.2339692 + log(0.5958019) = -0.2339692 - 0.5178470
BOUND_K2 = -0.7518162
ELBO_Z2 = -0.2339692  # k = 1 with z_2 alone: log p(x|z_2) + log p(z_2) - log q(z_2|x)


def _bound(images, mean, log_var, z, decoded, k):
    from keras import ops

    arrays = (np.asarray(a, dtype="float32") for a in (images, mean, log_var, z, decoded))
    return ops.convert_to_numpy(importance_weighted_bound(*arrays, k))


def test_the_bound_on_numbers_worked_by_hand():
    assert _bound(IMAGE, MEAN, LOG_VAR, Z, DECODED, 2) == pytest.approx([BOUND_K2], abs=1e-5)
    # a tighter bound than the mean of the one-sample ELBOs, (w_1 + w_2) / 2
    assert BOUND_K2 > (-1.8862944 + ELBO_Z2) / 2


def test_k_1_is_the_one_sample_elbo():
    from aetrain.models import vae_health

    assert _bound(IMAGE, MEAN, LOG_VAR, Z[1:], DECODED[1:], 1) == pytest.approx([ELBO_Z2], abs=1e-5)
    # the same as reconstruction + a one-sample KL, with vae_health's Bernoulli likelihood
    reconstruction = vae_health.bernoulli_negative_log_likelihood(np.array(IMAGE), np.array(DECODED[1:]))
    one_sample_kl = -0.5 * (1.0 - 0.0) ** 2 + 0.5 * 0.0**2  # log q(z_2|x) - log p(z_2)
    assert _bound(IMAGE, MEAN, LOG_VAR, Z[1:], DECODED[1:], 1) == pytest.approx(
        -(reconstruction + one_sample_kl), abs=1e-5
    )


def test_the_bound_matches_vae_healths_estimator_row_by_row():
    """k = 3 samples of 2 images (sample i of image b at row i * 2 + b), against NumPy."""
    from aetrain.models import vae_health

    rng = np.random.default_rng(0)
    images = rng.random((2, 2, 3))
    mean, log_var = rng.normal(size=(2, 4)), rng.normal(size=(2, 4)) * 0.3
    z = rng.normal(size=(3 * 2, 4))
    decoded = rng.random((3 * 2, 2, 3))
    log_weights = np.empty((3, 2))
    for i in range(3):
        rows = slice(2 * i, 2 * i + 2)
        log_weights[i] = (
            -vae_health.bernoulli_negative_log_likelihood(images, decoded[rows])
            + vae_health._log_normal(z[rows], 0.0, np.zeros_like(z[rows]))
            - vae_health._log_normal(z[rows], mean, log_var)
        )
    expected = np.log(np.mean(np.exp(log_weights), axis=0))
    assert _bound(images, mean, log_var, z, decoded, 3) == pytest.approx(expected, abs=1e-4)


def test_the_layer_adds_the_negative_bound_per_pixel_and_returns_the_reconstruction():
    from aetrain.models.families.iwae import keras_objects

    layer = keras_objects()["ImportanceWeightedBound"](2)
    images = np.asarray(IMAGE, dtype="float32")
    reconstruction = np.asarray([[0.3, 0.7]], dtype="float32")
    arrays = [np.asarray(a, dtype="float32") for a in (MEAN, LOG_VAR, Z, DECODED)]
    output = layer([images, *arrays, reconstruction])
    np.testing.assert_array_equal(np.asarray(output), reconstruction)
    assert float(layer.losses[0]) == pytest.approx(-BOUND_K2 / 2, abs=1e-5)  # 2 pixels
    layer.record_reported()  # what the model's compute_loss does in a training step
    assert float(layer.bound_tracker.result()) == pytest.approx(-BOUND_K2, abs=1e-5)


def test_importance_samples_are_k_draws_per_image_in_rows_of_the_batch():
    from aetrain.models.families.iwae import keras_objects

    layer = keras_objects()["ImportanceSamples"](3, seed=1)
    mean = np.array([[1.0, 2.0], [-1.0, -2.0]], dtype="float32")
    z = np.asarray(layer([mean, np.full_like(mean, -40.0)]))  # sigma = exp(-20): z is the mean
    np.testing.assert_allclose(z, np.tile(mean, (3, 1)), atol=1e-6)
    spread = np.asarray(layer([mean, np.zeros_like(mean)]))
    assert spread.shape == (6, 2) and len(np.unique(spread)) == 12


def test_k_0_is_refused_naming_variant_k_before_tensorflow_loads():
    code = (
        "import sys\n"
        "from aetrain.config import ConfigError, validate\n"
        "from conftest import compose_config\n"
        "try:\n"
        "    validate(compose_config('variant=iwae', 'variant.k=0'))\n"
        "except ConfigError as err:\n"
        "    print(err.key, sorted({'tensorflow', 'keras'} & set(sys.modules)))\n"
    )
    tests = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tests)
    assert out.stdout.strip() == "variant.k []"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["variant.k=0"], "variant.k"),
        (["variant.k=5001"], "variant.k"),
        (["variant.output_activation=linear"], "variant.output_activation"),
        (["variant.hidden_units=[0]"], "variant.hidden_units"),
        (["sparsity=l1"], "sparsity"),
    ],
)
def test_bad_values_are_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as caught:
        validate(compose_config("variant=iwae", *overrides))
    assert caught.value.key == key


def test_its_family_trains_on_the_bound_alone():
    cfg = validate(compose_config(*TINY))
    family = family_of(cfg)
    assert family is IMPORTANCE_WEIGHTED and family.compiled_loss is None and family.samples_from_prior
    assert family.loss_terms(cfg) == ["importance-weighted bound, k=3"]
    assert family.training_callbacks(cfg, 10) == []


def test_a_checkpoint_reloads_to_the_same_outputs(tmp_path):
    from aetrain.models.build import build_model
    from aetrain.run_folder.checkpoints import load_checkpoint, save_checkpoint

    cfg = validate(compose_config(*TINY))
    images = np.random.default_rng(3).random((8, 28, 28), dtype=np.float32)
    model = build_model(cfg)
    model.compile(optimizer="adam", loss=None, run_eagerly=True)
    history = model.fit(images, images, epochs=1, verbose=0)  # optimizer state exists, weights moved
    # the loss is the bound alone: about -log p(x) / 784 per pixel, finite and positive
    assert 0 < history.history["loss"][0] < 10 and "iwae_bound" in history.history
    path = tmp_path / "model.keras"
    save_checkpoint(model, path, {"config": cfg.to_dict(), "epoch": 1})
    reloaded = load_checkpoint(path, expected=cfg)
    np.testing.assert_array_equal(reloaded.predict(images, verbose=0), model.predict(images, verbose=0))
    bound = reloaded.get_layer("importance_weighted_bound")
    assert bound.k == 3 and reloaded.get_layer("importance_samples").get_config()["k"] == 3
    assert math.isfinite(float(reloaded.evaluate(images, images, verbose=0)[0]))


def test_its_warnings_give_an_iwaes_remedies_not_a_vaes():
    from aetrain.models.variational import VARIATIONAL

    cfg = validate(compose_config("variant=iwae", "latent_size=10"))
    collapsed, exploded = {"active_units": 1}, {"latent_loss": 5000.0}
    (collapse,) = IMPORTANCE_WEIGHTED.test_warnings(collapsed, cfg)
    (explosion,) = IMPORTANCE_WEIGHTED.test_warnings(exploded, cfg)
    assert "only 1 of 10" in collapse and "variant.k" in collapse and "beta" not in collapse
    assert "exploded" in explosion and "kl_warmup" not in explosion
    vae = validate(compose_config("variant=vae", "latent_size=10"))
    assert "variant.beta" in VARIATIONAL.test_warnings(collapsed, vae)[0]
