"""trainer.batch_splits: a batch trained as slices gives the whole batch's loss and gradient."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from aetrain.config import ConfigError, validate
from aetrain.models.build import build_model
from aetrain.training.batch_splits import resolve_batch_splits, split_steps

from conftest import compose_config


def config(*overrides: str):
    return validate(compose_config(*overrides))


@pytest.mark.parametrize(
    ("overrides", "cores", "has_gpu", "expected"),
    [
        (["variant=conv"], 2, False, 2),
        (["variant=conv_vae"], 2, False, 2),
        (["variant=conv"], 16, False, 1),  # 16 cores: one slice was faster than any split (issue 13)
        (["variant=conv"], 3, False, 1),  # not measured to win: one slice
        (["variant=conv", "trainer.batch_size=48"], 2, False, 1),
        (["variant=conv"], 1, False, 1),
        (["variant=conv"], 2, True, 1),
        (["variant=conv", "trainer.strategy=mirrored"], 2, False, 1),
        (["variant=conv", "sparsity=kl"], 2, False, 1),
        (["variant=dense"], 2, False, 1),
        (["variant=vae"], 2, False, 1),
        (["variant=dense", "trainer.batch_splits=3"], 2, False, 3),
    ],
)
def test_auto_splits_convolutional_cpu_runs_only(overrides, cores, has_gpu, expected):
    assert resolve_batch_splits(config(*overrides), cores, has_gpu) == expected


@pytest.mark.parametrize("value", [0, -2, "two", 1.5, True])
def test_bad_batch_splits_is_refused_by_name(value):
    with pytest.raises(ConfigError, match=r"trainer\.batch_splits"):
        config(f"trainer.batch_splits={value}")


def test_kl_sparsity_refuses_slices_because_its_penalty_is_a_batch_statistic():
    with pytest.raises(ConfigError, match=r"trainer\.batch_splits.*whole batch"):
        config("sparsity=kl", "trainer.batch_splits=2")
    assert config("sparsity=kl", "trainer.batch_splits=1").trainer.batch_splits == 1


def twin_models(*overrides: str):
    """The same model twice, same weights, compiled with SGD at rate 1: a step's change is -gradient."""
    cfg = config(*overrides, "trainer.precision=float32")
    models = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        model = build_model(cfg)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="mse")
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    return models


def images(count: int) -> np.ndarray:
    return np.random.default_rng(count).random((count, 28, 28), dtype=np.float32)


@pytest.mark.tensorflow_only  # the sliced step is TensorFlow's train_step (refused on JAX)
@pytest.mark.parametrize(
    "overrides",
    [["variant=conv"], ["variant=dense", "sparsity=l1"], ["variant=vae"], ["variant=conv_vae"]],
    ids=["conv", "dense-l1", "vae", "conv_vae"],
)
@pytest.mark.parametrize(("batch", "splits"), [(9, 2), (12, 3), (1, 2)])
def test_sliced_step_has_the_whole_batch_loss_and_gradient(overrides, batch, splits, monkeypatch):
    # VAE codings are sampled while training; with eps = 0 both runs see the same codings.
    monkeypatch.setattr(keras.random, "normal", lambda shape, **_: keras.ops.zeros(shape))
    whole, sliced = twin_models(*overrides)
    split_steps(sliced, splits)
    x = images(batch)
    before = whole.get_weights()
    loss_whole = whole.train_on_batch(x, x)
    loss_sliced = sliced.train_on_batch(x, x)
    assert loss_sliced == pytest.approx(loss_whole, rel=1e-5)
    for start, a, b in zip(before, whole.get_weights(), sliced.get_weights(), strict=True):
        np.testing.assert_allclose(b - start, a - start, rtol=1e-4, atol=1e-6)


@pytest.mark.tensorflow_only  # the sliced step is TensorFlow's train_step (refused on JAX)
def test_sliced_evaluation_has_the_whole_batch_loss():
    whole, sliced = twin_models("variant=vae")
    split_steps(sliced, 2)
    x = images(50)
    whole_loss = whole.evaluate(x, x, batch_size=16, verbose=0)
    assert sliced.evaluate(x, x, batch_size=16, verbose=0) == pytest.approx(whole_loss, rel=1e-5)


def test_one_split_leaves_keras_steps_alone():
    model, _ = twin_models("variant=conv")
    split_steps(model, 1)
    assert "train_step" not in vars(model) and "test_step" not in vars(model)
