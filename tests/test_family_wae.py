"""variant=wae: the Wasserstein autoencoder (WAE-MMD, IMQ kernel), its penalty, settings and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from aetrain.config import ConfigError, validate
from aetrain.models.families.wae import IMQ_SCALES, WASSERSTEIN, mmd_imq

from conftest import compose_config

TINY = ("variant=wae", "variant.hidden_units=[16]", "latent_size=2")


def _mmd(codings, prior, **kwargs) -> float:
    import keras

    return float(keras.ops.convert_to_numpy(mmd_imq(np.float32(codings), np.float32(prior), **kwargs)))


def test_the_mmd_is_the_unbiased_estimate_worked_by_hand():
    # 1-D codings q = (0, 1), prior draws p = (2, 4); one kernel width: C = 2 * d * scale^2 = 2, so
    # k(x, y) = 2 / (2 + (x - y)^2).
    #   within the codings: k(0, 1) = 2/3, both ordered pairs over n(n-1) = 2 -> 2/3
    #   within the prior:   k(2, 4) = 2/6 = 1/3                                  -> 1/3
    #   across: k(0,2) = 1/3, k(0,4) = 2/18 = 1/9, k(1,2) = 2/3, k(1,4) = 2/11; sum 128/99,
    #           times 2 / (n m) = 2/4                                            -> 64/99
    #   MMD^2 = 2/3 + 1/3 - 64/99 = 35/99
    q, p = [[0.0], [1.0]], [[2.0], [4.0]]
    assert _mmd(q, p, kernel_scales=(1.0,)) == pytest.approx(35 / 99, rel=1e-6)
    # the prior's scale widens the kernel: scale 2 -> C = 8, k(x, y) = 8 / (8 + (x - y)^2):
    # 8/9 + 8/12 - (2/4) (8/12 + 8/24 + 8/9 + 8/17) = 14/9 - (1/2)(1 + 8/9 + 8/17) = 14/9 - 361/306
    assert _mmd(q, p, scale=2.0, kernel_scales=(1.0,)) == pytest.approx(14 / 9 - 361 / 306, rel=1e-6)
    # the default sums the kernels of every width of the paper's code: the MMD is linear in the kernel
    assert _mmd(q, p) == pytest.approx(sum(_mmd(q, p, kernel_scales=(s,)) for s in IMQ_SCALES), rel=1e-6)
    # a sample of one has no pairs: only the cross term, -2 k(0, 2) = -2/3 (unbiased: it can be < 0)
    assert _mmd([[0.0]], [[2.0]], kernel_scales=(1.0,)) == pytest.approx(-2 / 3, rel=1e-6)


def test_the_penalty_layer_adds_its_weight_times_the_mmd_and_reports_it():
    import keras

    from aetrain.models.build import build_model
    from aetrain.models.families.wae import keras_objects

    codings = np.random.default_rng(1).normal(2.0, 0.5, (16, 3)).astype("float32")
    layer = keras_objects()["MMDPenalty"](weight=2.5, seed=7)
    out = layer(codings)
    # the same seed's first draw: the prior samples the layer compared the codings with
    prior = keras.random.normal((16, 3), dtype="float32", seed=keras.random.SeedGenerator(7))
    expected = _mmd(codings, keras.ops.convert_to_numpy(prior))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), codings)  # passed through
    assert expected > 0.1  # codings around 2, far from N(0, I)
    assert [float(loss) for loss in layer.losses] == [pytest.approx(2.5 * expected, rel=1e-5)]
    layer.record_reported()  # what the model's compute_loss does in a training step
    assert float(layer.mmd_tracker.result()) == pytest.approx(expected, rel=1e-5)
    assert layer.get_config()["weight"] == 2.5 and layer.get_config()["seed"] == 7

    cfg = validate(compose_config(*TINY, "variant.penalty_weight=3"))
    model = build_model(cfg)
    images = np.random.default_rng(2).random((8, 28, 28), dtype=np.float32)
    model(images, training=True)
    assert len(model.losses) == 1 and float(model.losses[0]) != 0.0
    model.compile(
        optimizer="adam", loss="mse", metrics=[keras.metrics.MeanSquaredError(name="mse")], run_eagerly=True
    )
    history = model.fit(images, images, epochs=1, batch_size=8, verbose=0).history
    # one batch: the loss is its MSE plus 3 x the MMD the layer reported
    assert history["loss"][0] == pytest.approx(history["mse"][0] + 3 * history["mmd"][0], rel=1e-4)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["variant=wae", "variant.kernel=rbf"], "variant.kernel"),
        (["variant=wae", "variant.penalty_weight=-1"], "variant.penalty_weight"),
        (["variant=wae", "variant.penalty_weight=nan"], "variant.penalty_weight"),
        (["variant=wae", "variant.hidden_units=[0]"], "variant.hidden_units"),
        (["variant=wae", "sparsity=l1"], "sparsity"),
    ],
)
def test_bad_settings_are_refused_naming_the_key_before_tensorflow_loads(overrides, key):
    with pytest.raises(ConfigError) as caught:
        validate(compose_config(*overrides))
    assert caught.value.key == key and f"`{key}`" in str(caught.value)


def test_the_module_declares_the_variant_without_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, aetrain.models.families.wae; "
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_defaults_and_loss_terms():
    cfg = validate(compose_config("variant=wae"))
    assert (cfg.variant.kernel, cfg.variant.hidden_units, cfg.variant.penalty_weight) == (
        "imq",
        [150, 100],
        0.25,
    )
    assert WASSERSTEIN.loss_terms(cfg) == ["0.25 x MMD penalty"]
    assert WASSERSTEIN.samples_from_prior and WASSERSTEIN.prior_description(30) == "N(0, I), 30-D"


def test_a_reloaded_checkpoint_predicts_samples_and_scores_as_the_model_did(tmp_path):
    from aetrain.models.build import build_model, encode
    from aetrain.run_folder.checkpoints import load_checkpoint, save_checkpoint

    cfg = validate(compose_config(*TINY))
    images = np.random.default_rng(3).random((8, 28, 28), dtype=np.float32)
    model = build_model(cfg)
    model.compile(optimizer="adam", loss="mse", run_eagerly=True)
    model.fit(images, images, epochs=1, verbose=0)  # weights moved, optimizer state exists
    path = tmp_path / "last.keras"
    save_checkpoint(model, path, {"config": cfg.to_dict(), "epoch": 1})
    reloaded = load_checkpoint(path, expected=cfg)

    np.testing.assert_array_equal(reloaded.predict(images, verbose=0), model.predict(images, verbose=0))
    np.testing.assert_array_equal(encode(reloaded, images), encode(model, images))
    samples = WASSERSTEIN.sample(reloaded, 5, cfg.latent_size, seed=4)
    assert samples.shape == (5, 28, 28)
    np.testing.assert_array_equal(samples, WASSERSTEIN.sample(model, 5, cfg.latent_size, seed=4))
    figures = WASSERSTEIN.test_figures(reloaded, images, cfg)
    assert figures == WASSERSTEIN.test_figures(model, images, cfg) and figures["mmd_codings"] == 8
    report = WASSERSTEIN.evaluation_report(reloaded, images, seed=0, elbo_samples=1, iw_samples=1)
    assert set(report["wae"]) >= {"mmd", "kernel", "prior"}
