"""The models the configs build: the seed's layer lists, parameter counts, noise and sampling behaviour."""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
import pytest

from aetrain.config import validate
from aetrain.models.build import build_model, encode
from aetrain.models.noise import find_noise_layer, noise_uniform

from conftest import compose_config


def build(*overrides: str):
    return build_model(validate(compose_config(*overrides)))


def keras_class(layer) -> str:
    """The Keras layer a layer is: aetrain's twins of Keras layers (noise with other random numbers,
    convolutions computed another way on JAX) are Keras's."""
    return next(cls.__name__ for cls in type(layer).__mro__ if cls.__module__.startswith("keras."))


def layer_list(model, part: str) -> list[tuple]:
    """(class, units/filters, activation, strides, padding, rate) per layer: what the seed writes."""
    rows = []
    for layer in model.get_layer(part).layers:
        c = layer.get_config()
        size = c.get("units", c.get("filters", c.get("target_shape")))
        activation = c.get("activation")
        rows.append(
            (
                keras_class(layer),
                size and tuple(size) if isinstance(size, list) else size,
                activation,
                tuple(c["strides"]) if "strides" in c else None,
                c.get("padding"),
                c.get("rate", c.get("l1")),
            )
        )
    return rows


SEED_CONV_ENCODER = [
    ("Reshape", (28, 28, 1), None, None, None, None),
    ("Conv2D", 16, "relu", (1, 1), "same", None),
    ("MaxPooling2D", None, None, (2, 2), "valid", None),
    ("Conv2D", 32, "relu", (1, 1), "same", None),
    ("MaxPooling2D", None, None, (2, 2), "valid", None),
    ("Conv2D", 64, "relu", (1, 1), "same", None),
    ("MaxPooling2D", None, None, (2, 2), "valid", None),
    ("Conv2D", 30, "relu", (1, 1), "same", None),
    ("GlobalAveragePooling2D", None, None, None, None, None),
]
SEED_CONV_DECODER = [
    ("Dense", 144, "linear", None, None, None),
    ("Reshape", (3, 3, 16), None, None, None, None),
    ("Conv2DTranspose", 32, "relu", (2, 2), "valid", None),
    ("Conv2DTranspose", 16, "relu", (2, 2), "same", None),
    ("Conv2DTranspose", 1, "linear", (2, 2), "same", None),
    ("Reshape", (28, 28), None, None, None, None),
]
DENSE_DECODER = [
    ("Dense", 100, "relu", None, None, None),
    ("Dense", 784, "linear", None, None, None),
    ("Reshape", (28, 28), None, None, None, None),
]


def test_seed_conv_matches_the_seed_layer_for_layer():
    model = build("experiment=seed_conv")
    assert layer_list(model, "encoder") == SEED_CONV_ENCODER
    assert layer_list(model, "decoder") == SEED_CONV_DECODER


def test_seed_dropout_matches_the_seed_layer_for_layer():
    model = build("experiment=seed_dropout")
    assert layer_list(model, "encoder") == [
        ("Flatten", None, None, None, None, None),
        ("Dropout", None, None, None, None, 0.5),
        ("Dense", 100, "relu", None, None, None),
        ("Dense", 30, "relu", None, None, None),
    ]
    assert layer_list(model, "decoder") == DENSE_DECODER


def test_seed_sparse_l1_matches_the_seed_layer_for_layer():
    model = build("experiment=seed_sparse_l1")
    assert layer_list(model, "encoder") == [
        ("Flatten", None, None, None, None, None),
        ("Dense", 100, "relu", None, None, None),
        ("Dense", 300, "sigmoid", None, None, None),
        ("ActivityRegularization", None, None, None, None, 1e-4),
    ]
    assert layer_list(model, "decoder") == DENSE_DECODER


@pytest.mark.parametrize(
    ("experiment", "parameters"),
    [
        ("seed_conv", 54_479),
        ("seed_dropout", 163_814),
        ("seed_gaussian", 163_814),
        ("seed_sparse_l1", 218_084),
        ("seed_sparse_kl", 218_084),
    ],
)
def test_seed_parameter_counts(experiment, parameters):
    model = build(f"experiment={experiment}")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == parameters


def test_seed_vae_has_the_books_shape():
    model = build("experiment=seed_vae")
    encoder = model.get_layer("encoder")
    dense_units = [layer.units for layer in encoder.layers if type(layer).__name__ == "Dense"]
    assert dense_units == [150, 100, 10, 10]  # hidden, hidden, mean, log_var
    assert [type(layer).__name__ for layer in encoder.layers][-2:] == ["LatentLoss", "Sampling"]
    decoder_units = [layer.units for layer in model.get_layer("decoder").layers if hasattr(layer, "units")]
    assert decoder_units == [100, 150, 784]


VALID_COMBINATIONS = [
    (variant, noise, sparsity)
    for variant, noise, sparsity in itertools.product(
        ["dense", "conv", "vae", "conv_vae"], ["none", "gaussian", "dropout"], ["none", "l1", "kl"]
    )
    if not (variant in ("vae", "conv_vae") and sparsity != "none")
]


@pytest.mark.parametrize(("variant", "noise", "sparsity"), VALID_COMBINATIONS)
def test_every_combination_builds_and_reconstructs_the_input_shape(variant, noise, sparsity):
    model = build(f"variant={variant}", f"noise={noise}", f"sparsity={sparsity}", "latent_size=8")
    images = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)
    assert tuple(model(images, training=True).shape) == (3, 28, 28)
    if sparsity != "none":  # the penalty of that call (a later call, encode's too, replaces it)
        assert len(model.losses) == 1
    assert encode(model, images).shape == (3, 8)
    if sparsity != "none":
        codings = encode(model, images)
        assert ((codings > 0) & (codings < 1)).all()  # sigmoid codings


@pytest.mark.parametrize("noise", ["gaussian", "dropout"])
def test_noise_corrupts_while_training_only(noise):
    model = build("variant=dense", f"noise={noise}")
    layer = find_noise_layer(model)
    images = np.full((2, 784), 0.5, dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    assert not np.allclose(np.asarray(layer(images, training=True)), images)
    x = np.full((2, 28, 28), 0.5, dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), np.asarray(model(x, training=False)))


def test_noise_layer_gives_fresh_noise_each_call():
    """A SeedGenerator, not an integer seed: the same noise every step would teach nothing."""
    layer = find_noise_layer(build("noise=gaussian"))
    images = np.zeros((1, 784), dtype=np.float32)
    assert not np.allclose(np.asarray(layer(images, training=True)), np.asarray(layer(images, training=True)))


def test_gaussian_noise_is_normal_with_the_asked_stddev_in_any_shape():
    """The Box-Muller layer draws N(0, stddev²): an odd count of numbers, the Kolmogorov-Smirnov
    distance to the normal (below its 1% critical value), and the tails (|z| > 3) as often as the
    normal has them."""
    layer = find_noise_layer(build("noise=gaussian", "noise.stddev=0.3"))
    assert type(layer).__name__ == "BoxMullerGaussianNoise" and layer.stddev == 0.3
    noise = np.asarray(layer(np.zeros((2001, 7, 3), np.float32), training=True)).ravel() / 0.3
    assert noise.shape == (2001 * 7 * 3,)
    assert abs(noise.mean()) < 0.02 and noise.std() == pytest.approx(1.0, abs=0.02)
    normal_cdf = np.vectorize(lambda z: 0.5 * math.erfc(-z / math.sqrt(2)))(np.sort(noise))
    empirical = np.arange(1, noise.size + 1) / noise.size
    assert np.max(np.abs(empirical - normal_cdf)) < 1.63 / math.sqrt(noise.size)
    assert np.mean(np.abs(noise) > 3) == pytest.approx(math.erfc(3 / math.sqrt(2)), rel=0.3)


def test_dropout_zeroes_inputs_at_its_rate_and_scales_the_rest():
    layer = find_noise_layer(build("noise=dropout", "noise.rate=0.3"))
    assert isinstance(layer, keras.layers.Dropout) and layer.rate == 0.3
    ones = np.ones((400, 500), np.float32)
    first, second = (np.asarray(layer(ones, training=True)) for _ in range(2))
    assert np.mean(first == 0) == pytest.approx(0.3, abs=0.005)  # 200,000 draws: 0.001 standard error
    np.testing.assert_allclose(first[first != 0], 1 / 0.7, rtol=1e-6)
    assert not np.array_equal(first == 0, second == 0)  # a fresh mask each call
    np.testing.assert_array_equal(np.asarray(layer(ones, training=False)), ones)


def test_noise_numbers_are_uniform_and_follow_the_seed():
    """noise_uniform (the random numbers of both noise layers): in [0, 1), within the Kolmogorov-Smirnov
    1% critical distance of the uniform, the same numbers from the same seed and others from another."""
    numbers = [np.asarray(noise_uniform((50_001,), keras.random.SeedGenerator(seed))) for seed in (7, 7, 8)]
    ordered = np.sort(numbers[0])
    assert ordered[0] >= 0 and ordered[-1] < 1 and numbers[0].dtype == np.float32
    empirical = np.arange(1, ordered.size + 1) / ordered.size
    assert np.max(np.abs(empirical - ordered)) < 1.63 / math.sqrt(ordered.size)
    np.testing.assert_array_equal(numbers[0], numbers[1])
    assert not np.allclose(numbers[0], numbers[2])


def test_vae_samples_codings_while_training_and_uses_the_mean_otherwise():
    model = build("variant=vae", "latent_size=4")
    encoder = model.get_layer("encoder")
    images = np.random.default_rng(1).random((5, 28, 28), dtype=np.float32)
    mean, _, codings = (np.asarray(t) for t in encoder(images, training=False))
    np.testing.assert_array_equal(codings, mean)
    _, _, first = (np.asarray(t) for t in encoder(images, training=True))
    _, _, second = (np.asarray(t) for t in encoder(images, training=True))
    assert not np.allclose(first, mean) and not np.allclose(first, second)


def test_same_seed_gives_same_initial_weights():
    first, second = build("variant=conv", "seed=3"), build("variant=conv", "seed=3")
    other = build("variant=conv", "seed=4")
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(
        np.array_equal(a, b) for a, b in zip(first.get_weights(), other.get_weights(), strict=True)
    )


def test_conv_vae_shares_the_conv_stages_and_decoder_and_the_vae_coding_head():
    model = build("variant=conv_vae", "latent_size=3")
    encoder_layers = [type(layer).__name__ for layer in model.get_layer("encoder").layers]
    stages = [keras_class(layer) for layer in model.get_layer("encoder").layers[:8]]
    assert stages == ["InputLayer", "Reshape"] + ["Conv2D", "MaxPooling2D"] * 3
    assert encoder_layers[-3:] == ["Dense", "LatentLoss", "Sampling"]
    assert layer_list(model, "decoder") == [
        ("Dense", 144, "linear", None, None, None),
        ("Reshape", (3, 3, 16), None, None, None, None),
        ("Conv2DTranspose", 32, "relu", (2, 2), "valid", None),
        ("Conv2DTranspose", 16, "relu", (2, 2), "same", None),
        ("Conv2DTranspose", 1, "sigmoid", (2, 2), "same", None),
        ("Reshape", (28, 28), None, None, None, None),
    ]
    images = np.random.default_rng(2).random((4, 28, 28), dtype=np.float32)
    mean, log_var, codings = (np.asarray(t) for t in model.get_layer("encoder")(images, training=False))
    assert mean.shape == log_var.shape == (4, 3)
    np.testing.assert_array_equal(codings, mean)  # the mean outside training, as the dense VAE
    assert tuple(model(images, training=True).shape) == (4, 28, 28)


@pytest.mark.parametrize("variant", ["vae", "conv_vae"])
def test_latent_loss_scales_with_beta(variant):
    """variant.beta multiplies the latent loss: weight beta / 784 next to the per-pixel MSE."""
    images = np.random.default_rng(4).random((8, 28, 28), dtype=np.float32)
    losses = {}
    for beta in (1.0, 3.0, 0.0):
        model = build(f"variant={variant}", f"variant.beta={beta}", "latent_size=4")
        assert model.get_layer("encoder").get_layer("latent_loss").weight == pytest.approx(beta / 784)
        model(images, training=False)
        (losses[beta],) = (float(loss) for loss in model.losses)
    assert losses[1.0] > 0
    assert losses[3.0] == pytest.approx(3.0 * losses[1.0], rel=1e-5)
    assert losses[0.0] == 0.0


@pytest.mark.parametrize("variant", ["dense", "conv", "vae"])
def test_mixed_precision_keeps_the_output_layer_and_loss_in_float32(make_config, variant):
    """bfloat16 has 8 bits of mantissa: the reconstruction and the MSE must stay float32."""
    cfg = make_config(f"variant={variant}", "trainer.precision=mixed_bfloat16")
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_model(cfg)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    decoder = model.get_layer("decoder")
    assert [layer.compute_dtype for layer in decoder.layers[-2:]] == ["float32", "float32"]
    assert decoder.layers[0].compute_dtype == "bfloat16"  # the bulk of the work runs in bfloat16
    images = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    output = model(images)
    assert keras.backend.standardize_dtype(output.dtype) == "float32"


@pytest.mark.parametrize("sparsity", ["l1", "kl"])
def test_sparsity_penalties_train_under_mixed_precision(make_config, sparsity):
    """The penalty joins the float32 loss sum: under bfloat16 it must be float32 too, or fit fails."""
    cfg = make_config("variant=dense", f"sparsity={sparsity}", "trainer.precision=mixed_bfloat16")
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_model(cfg)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    model.compile(optimizer="adam", loss="mse")
    images = np.random.default_rng(5).random((8, 28, 28), dtype=np.float32)
    history = model.fit(images, images, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model(images)
    assert [keras.backend.standardize_dtype(loss.dtype) for loss in model.losses] == ["float32"]
