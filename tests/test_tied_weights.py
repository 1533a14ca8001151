"""variant.tied_weights (decoder kernels = transposed encoder kernels) and variant.hidden_units=[]."""

from __future__ import annotations

import io
import json

import keras
import numpy as np
import pytest
from rich.console import Console

from aetrain.config import validate
from aetrain.models.build import build_model
from aetrain.models.dense import DenseTranspose
from aetrain.run_folder.checkpoints import load_checkpoint, save_checkpoint
from aetrain.training import loop as train

from conftest import compose_config


def build(*overrides: str):
    return build_model(validate(compose_config(*overrides)))


def trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def transposes(model) -> list[DenseTranspose]:
    return [layer for layer in model.get_layer("decoder").layers if isinstance(layer, DenseTranspose)]


def test_tied_decoder_owns_only_biases_about_half_the_parameters():
    untied, tied = build(), build("variant.tied_weights=true")
    # encoder 784*100+100 + 100*30+30 = 81,530; tied decoder: biases 100 + 784
    assert trainable(tied) == 81_530 + 100 + 784
    assert trainable(untied) == 163_814
    assert 0.45 < trainable(tied) / trainable(untied) < 0.55


def test_tied_decoder_uses_the_encoder_kernels_transposed():
    model = build("variant.tied_weights=true", "latent_size=8")
    encoder_dense = [
        layer for layer in model.get_layer("encoder").layers if type(layer) is keras.layers.Dense
    ]
    assert [t.tied_to for t in transposes(model)] == encoder_dense[::-1]
    codings = np.random.default_rng(0).random((3, 8), dtype=np.float32)
    hidden_kernel, coding_kernel = (keras.ops.convert_to_numpy(d.kernel) for d in encoder_dense)
    first, last = transposes(model)
    hidden = np.maximum(codings @ coding_kernel.T + keras.ops.convert_to_numpy(first.bias), 0)
    expected = 1 / (1 + np.exp(-(hidden @ hidden_kernel.T + keras.ops.convert_to_numpy(last.bias))))
    decoded = keras.ops.convert_to_numpy(model.get_layer("decoder")(codings))
    np.testing.assert_allclose(decoded.reshape(3, -1), expected, atol=2e-2)  # bfloat16 compute on CPU
    encoder_dense[0].kernel.assign(np.zeros((784, 100), np.float32))  # the decoder sees the change
    changed = keras.ops.convert_to_numpy(model.get_layer("decoder")(codings))
    assert not np.allclose(changed, decoded)


def test_shallow_autoencoder_784_codings_784():
    model = build("variant.hidden_units=[]", "latent_size=64")
    assert [layer.units for layer in model.get_layer("encoder").layers if hasattr(layer, "units")] == [64]
    assert trainable(model) == 784 * 64 + 64 + 64 * 784 + 784
    tied = build("variant.hidden_units=[]", "latent_size=64", "variant.tied_weights=true")
    assert trainable(tied) == 784 * 64 + 64 + 784
    assert tuple(tied(np.zeros((2, 28, 28), np.float32)).shape) == (2, 28, 28)


def test_tied_checkpoint_reloads_tied_with_the_same_outputs(tmp_path):
    model = build("variant.tied_weights=true", "latent_size=8")
    model.compile(optimizer="adam", loss="mse")
    images = np.random.default_rng(1).random((16, 28, 28), dtype=np.float32)
    model.fit(images, images, epochs=1, verbose=0)
    save_checkpoint(model, tmp_path / "tied.keras", {})
    reloaded = load_checkpoint(tmp_path / "tied.keras")
    np.testing.assert_array_equal(reloaded.predict(images, verbose=0), model.predict(images, verbose=0))
    encoder_dense = [x for x in reloaded.get_layer("encoder").layers if type(x) is keras.layers.Dense]
    assert [t.tied_to for t in transposes(reloaded)] == encoder_dense[::-1]
    assert len(reloaded.trainable_weights) == len(model.trainable_weights)  # kernels saved once


def test_an_untied_decoder_layer_says_how_to_tie_it():
    layer = DenseTranspose(4)
    with pytest.raises(RuntimeError, match="load_checkpoint"):
        layer(np.zeros((1, 3), np.float32))


@pytest.mark.slow
def test_tied_run_resumed_matches_the_uninterrupted_one(make_config, tmp_path):
    # a constant learning rate: one_cycle over 1 epoch and over 2 would differ from the first step
    common = ("variant.tied_weights=true", "trainer.deterministic=true", "trainer.precision=float32")
    common = (*common, "trainer.schedule=constant")
    quiet = Console(file=io.StringIO())
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    train.run(make_config(*common, "trainer.epochs=2"), whole, quiet)
    train.run(make_config(*common, "trainer.epochs=1"), stopped, quiet)
    train.run(make_config(*common, "trainer.epochs=2", f"trainer.resume={stopped}"), stopped, quiet)
    resumed, straight = (json.loads((f / "metrics.json").read_text()) for f in (stopped, whole))
    assert resumed["history"]["loss"] == straight["history"]["loss"]
    assert resumed["history"]["val_loss"] == straight["history"]["val_loss"]
    last = load_checkpoint(stopped / "checkpoints" / "last.keras")
    assert all(t.tied_to is not None for t in transposes(last))


def test_a_run_saved_before_these_settings_existed_still_resumes(make_config, tmp_path):
    from aetrain.run_folder.resume import SavedRun, check_resumable

    old = make_config("variant=dense").to_dict()
    del old["variant"]["tied_weights"]  # as a checkpoint written before variant.tied_weights
    check_resumable(make_config(), SavedRun(folder=tmp_path, epoch=0, config=old))  # not refused
