"""variant=beta_tcvae: the KL term's three parts by minibatch-weighted sampling, the config's refusals,
and checkpoints that reload to the same outputs."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from aetrain.config import ConfigError, validate
from aetrain.models.families.beta_tcvae import tc_decomposition, training_images

from conftest import compose_config

TINY = ("variant=beta_tcvae", "variant.hidden_units=[16]", "latent_size=2")


def _parts(mean, log_var, codings, dataset_size):
    from keras import ops

    values = tc_decomposition(np.asarray(mean), np.asarray(log_var), np.asarray(codings), dataset_size)
    return [float(ops.convert_to_numpy(value)) for value in values]


def test_the_three_parts_on_a_batch_worked_by_hand():
    # Two images, 2-D codings, unit variances (log_var 0), each coding at its own mean:
    #   mean = z = [[0, 0], [1, 0]], N = 10, M = 2, so log(NM) = log 20.
    # With c = -1/2 log(2 pi), log q(z_id | x_j) = c - (z_id - mu_jd)^2 / 2:
    #   dimension 1: c for i = j, c - 1/2 for i != j;  dimension 2: c for every pair.
    # log q(z_i | x_i) = 2c for both images; log p(z_1) = 2c, log p(z_2) = 2c - 1/2.
    # log q(z_i) = logsumexp(2c, 2c - 1/2) - log 20 = 2c + L - log 20, with L = log(1 + e^-1/2).
    # sum_d log q(z_id) = [logsumexp(c, c - 1/2) - log 20] + [logsumexp(c, c) - log 20]
    #                   = 2c + L + log 2 - 2 log 20.
    mean = codings = [[0.0, 0.0], [1.0, 0.0]]
    log_var = [[0.0, 0.0], [0.0, 0.0]]
    big_l = math.log(1.0 + math.exp(-0.5))
    # MI = 2c - (2c + L - log 20) = log 20 - L
    mutual_info = math.log(20.0) - big_l
    # TC = (2c + L - log 20) - (2c + L + log 2 - 2 log 20) = log 20 - log 2 = log 10
    total_correlation = math.log(10.0)
    # dwKL = mean over i of [(2c + L + log 2 - 2 log 20) - log p(z_i)] = L + log 2 - 2 log 20 + 1/4
    dimwise_kl = big_l + math.log(2.0) - 2.0 * math.log(20.0) + 0.25
    found = _parts(mean, log_var, codings, dataset_size=10)
    assert found == pytest.approx([mutual_info, total_correlation, dimwise_kl], rel=1e-5)
    # the identity: the parts add up to mean_i [log q(z_i|x_i) - log p(z_i)] = mean(0, 1/2) = 1/4
    assert sum(found) == pytest.approx(0.25, abs=1e-5)


def _log_normal(z, mean, log_var):
    return -0.5 * (math.log(2.0 * math.pi) + log_var + (z - mean) ** 2 / math.exp(log_var))


def test_the_parts_match_a_loop_over_the_pairs_and_add_up_to_the_sampled_kl():
    rng = np.random.default_rng(0)
    batch, size, dataset_size = 5, 3, 1000
    mean = rng.normal(size=(batch, size))
    log_var = rng.normal(scale=0.5, size=(batch, size))
    codings = mean + np.exp(0.5 * log_var) * rng.normal(size=(batch, size))
    log_nm = math.log(dataset_size * batch)
    totals = np.zeros(3)
    kl = 0.0
    for i in range(batch):
        joint = [
            sum(_log_normal(codings[i, d], mean[j, d], log_var[j, d]) for d in range(size))
            for j in range(batch)
        ]
        log_q = np.logaddexp.reduce(joint) - log_nm
        marginals = sum(
            np.logaddexp.reduce([_log_normal(codings[i, d], mean[j, d], log_var[j, d]) for j in range(batch)])
            - log_nm
            for d in range(size)
        )
        own = sum(_log_normal(codings[i, d], mean[i, d], log_var[i, d]) for d in range(size))
        prior = sum(_log_normal(codings[i, d], 0.0, 0.0) for d in range(size))
        totals += [own - log_q, log_q - marginals, marginals - prior]
        kl += own - prior
    found = _parts(mean, log_var, codings, dataset_size)
    assert found == pytest.approx(list(totals / batch), rel=1e-4, abs=1e-4)
    assert sum(found) == pytest.approx(kl / batch, rel=1e-4, abs=1e-4)
    # N moves the parts by constants (MI by log N, TC by (D - 1) log N, dwKL by -D log N), not their sum
    moved = _parts(mean, log_var, codings, dataset_size * math.e)
    assert np.subtract(moved, found) == pytest.approx([1.0, size - 1.0, -size], abs=1e-4)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["variant.beta=-1"], "variant.beta"),
        (["variant.kl_warmup_epochs=2"], "variant.kl_warmup_epochs"),
        (["variant.hidden_units=[0]"], "variant.hidden_units"),
        (["variant.latent_loss=kl"], "variant.latent_loss"),
        (["sparsity=l1"], "sparsity"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as caught:
        validate(compose_config("variant=beta_tcvae", *overrides))
    assert caught.value.key == key and f"`{key}`" in str(caught.value)


def test_a_negative_beta_is_refused_before_tensorflow_loads():
    code = (
        "import sys\n"
        "from hydra import compose, initialize_config_dir\n"
        "from aetrain.commands.train import config_dir\n"
        "from aetrain.config import ConfigError, validate\n"
        "with initialize_config_dir(config_dir=str(config_dir()), version_base='1.3'):\n"
        "    cfg = compose(config_name='config', overrides=['variant=beta_tcvae', 'variant.beta=-0.5'])\n"
        "try:\n"
        "    validate(cfg)\n"
        "except ConfigError as error:\n"
        "    print(error.key, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["variant.beta", "False", "False"]


def test_the_defaults_and_the_training_split_the_estimator_is_told():
    cfg = validate(compose_config("variant=beta_tcvae"))
    assert (cfg.variant.beta, cfg.variant.hidden_units, cfg.variant.kl_warmup_epochs) == (
        6.0,
        [150, 100],
        0.0,
    )
    assert training_images(cfg.data) == 55_000  # 60,000 less data.val_size=5000
    assert training_images(validate(compose_config("trainer=smoke")).data) == 512  # 640 less 0.2 of them
    assert training_images(validate(compose_config("data.limit=20000")).data) == 15_000
    # digits: 1,797 less test_size=360 drawn, less val_size=180
    assert training_images(validate(compose_config("data=digits")).data) == 1_797 - 360 - 180


def test_loss_terms_name_the_weighted_parts():
    from aetrain.training.loop import loss_terms

    assert loss_terms(validate(compose_config("variant=beta_tcvae", "variant.beta=4"))) == [
        "reconstruction",
        "mutual information",
        "4 x total correlation",
        "dimension-wise KL",
    ]


def test_a_checkpoint_reloads_to_the_same_outputs_and_loss(tmp_path):
    import keras

    from aetrain.models.build import build_model
    from aetrain.models.family import family_of
    from aetrain.run_folder.checkpoints import load_checkpoint, save_checkpoint

    cfg = validate(compose_config(*TINY, "trainer=smoke"))
    images = np.random.default_rng(3).random((8, 28, 28), dtype=np.float32)
    model = build_model(cfg)
    model.compile(optimizer="adam", loss="mse", run_eagerly=True)
    history = model.fit(images, images, batch_size=4, epochs=1, verbose=0).history
    assert {"mutual_info", "total_correlation", "dimwise_kl"} <= set(history)
    assert family_of(cfg).training_callbacks(cfg, 2) == []
    path = tmp_path / "last.keras"
    save_checkpoint(model, path, {"config": cfg.to_dict(), "epoch": 1})
    reloaded = load_checkpoint(path, expected=cfg)

    np.testing.assert_array_equal(reloaded.predict(images, verbose=0), model.predict(images, verbose=0))
    for made, found in zip(
        model.get_layer("encoder").predict(images, verbose=0),
        reloaded.get_layer("encoder").predict(images, verbose=0),
        strict=True,
    ):
        np.testing.assert_array_equal(found, made)
    layer = reloaded.get_layer("encoder").get_layer("total_correlation_loss")
    assert (layer.dataset_size, layer.beta, layer.pixels) == (512, 6.0, 784)
    # the same loss on the same batch (the codings are the means outside training)
    assert reloaded.evaluate(images, images, verbose=0, return_dict=True)["loss"] == pytest.approx(
        model.evaluate(images, images, verbose=0, return_dict=True)["loss"], rel=1e-6
    )
    figures = family_of(cfg).test_figures(reloaded, images, cfg)
    assert {"latent_loss", "active_units", "mutual_info", "total_correlation", "dimwise_kl"} <= set(figures)
    assert figures["mutual_info"] + figures["total_correlation"] + figures["dimwise_kl"] == pytest.approx(
        _sampled_kl(reloaded, images, cfg.seed), rel=1e-4, abs=1e-4
    )
    assert isinstance(reloaded, keras.Model)


def _sampled_kl(model, images, seed):
    """mean of log q(z|x) - log p(z) over the images, the codings drawn as the test figures draw them."""
    mean, log_var, _ = model.get_layer("encoder").predict(images, verbose=0)
    z = mean + np.exp(0.5 * log_var) * np.random.default_rng(seed).standard_normal(mean.shape).astype(
        np.float32
    )
    own = -0.5 * (log_var + np.square(z - mean) / np.exp(log_var))
    prior = -0.5 * np.square(z)
    return float(np.mean(np.sum(own - prior, axis=1)))
