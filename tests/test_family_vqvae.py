"""variant=vqvae: the codebook and commitment terms, nearest codes and codebook use on numbers worked
by hand; the straight-through gradient; the refusals; a checkpoint that reloads."""

from __future__ import annotations

import numpy as np
import pytest

from aetrain.config import ConfigError, validate
from aetrain.models.families.vqvae import (
    VECTOR_QUANTIZED,
    codebook_usage,
    keras_objects,
    nearest_codes,
    vq_loss_terms,
)

from conftest import compose_config


def test_both_terms_are_the_mean_squared_distance_to_the_code():
    encoded = np.array([[1.0, 2.0]], "float32")
    quantized = np.array([[0.0, 0.0]], "float32")
    codebook_loss, commitment_loss = vq_loss_terms(encoded, quantized)
    # ((1 - 0)^2 + (2 - 0)^2) / 2 elements = 2.5
    assert float(codebook_loss) == pytest.approx(2.5)
    assert float(commitment_loss) == pytest.approx(2.5)


def test_each_vector_takes_its_nearest_codebook_column():
    codebook = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 0.0]], "float32")  # entries (0,0), (1,1), (2,0)
    vectors = np.array([[0.1, -0.1], [0.9, 1.2], [3.0, 0.0]], "float32")
    # (3,0): 1 from (2,0), 5 from (1,1), 9 from (0,0)
    assert np.asarray(nearest_codes(vectors, codebook)).tolist() == [0, 1, 2]


def test_codebook_use_is_the_perplexity_of_the_codes_and_the_unused_ones():
    # two codes of four, half each: perplexity exp(-2 * 0.5 log 0.5) = 2, two dead
    assert codebook_usage(np.array([[0, 0], [1, 1]]), 4) == {
        "codebook_perplexity": pytest.approx(2.0),
        "dead_codes": 2,
        "codebook_size": 4,
    }
    assert codebook_usage(np.arange(8), 8)["codebook_perplexity"] == pytest.approx(8.0)


@pytest.mark.tensorflow_only  # tf.GradientTape
def test_the_quantizer_adds_both_terms_and_passes_the_gradient_straight_through():
    import tensorflow as tf

    quantizer = keras_objects()["VectorQuantizer"](codebook_size=2, commitment_cost=0.25)
    encoded = tf.constant([[[0.2, 0.9]], [[1.7, -0.1]]])  # 2 images, a 1x2 "grid", D = 2... as (2, 1, 2)
    quantizer.build(encoded.shape)
    quantizer.codebook.assign(np.array([[0.0, 2.0], [1.0, 0.0]], "float32"))  # entries (0,1), (2,0)
    with tf.GradientTape() as tape:
        tape.watch(encoded)
        out = quantizer(encoded)
        total = tf.reduce_sum(out * tf.constant([1.0, 3.0]))
    np.testing.assert_allclose(out.numpy(), [[[0.0, 1.0]], [[2.0, 0.0]]], atol=1e-6)
    # straight through: d total / d encoded is the weights, as if quantizing were the identity
    np.testing.assert_allclose(tape.gradient(total, encoded).numpy(), [[[1.0, 3.0]], [[1.0, 3.0]]])
    # squared distances 0.04 + 0.01 and 0.09 + 0.01, over 4 elements: 0.0375 each term
    (added,) = quantizer.losses
    assert float(added) == pytest.approx(0.0375 * 1.25, rel=1e-5)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("variant.codebook_size=1", "variant.codebook_size"),
        ("variant.commitment_cost=-0.1", "variant.commitment_cost"),
        ("variant.decoder_filters=[]", "variant.decoder_filters"),
        ("variant.encoder_filters=[8,8,8,8,8,8]", "variant.encoder_filters"),
        ("sparsity=l1", "sparsity"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(override, key):
    with pytest.raises(ConfigError) as caught:
        validate(compose_config("variant=vqvae", override))
    assert caught.value.key == key


def test_a_checkpoint_reloads_and_gives_the_same_reconstructions_and_samples(tmp_path):
    from aetrain.models.build import build_model
    from aetrain.run_folder.checkpoints import load_checkpoint, save_checkpoint

    cfg = validate(compose_config("variant=vqvae", "latent_size=4", "variant.codebook_size=8"))
    model = build_model(cfg)
    save_checkpoint(model, tmp_path / "vq.keras", {"config": cfg.to_dict(), "epoch": 1})
    reloaded = load_checkpoint(tmp_path / "vq.keras", expected=cfg)
    images = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(images, verbose=0), reloaded.predict(images, verbose=0))
    np.testing.assert_array_equal(
        VECTOR_QUANTIZED.sample(model, 2, 4, seed=3), VECTOR_QUANTIZED.sample(reloaded, 2, 4, seed=3)
    )
