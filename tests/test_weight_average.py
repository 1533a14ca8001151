"""trainer.ema: validation, checkpoints and the test set see the moving average of the weights, while
training steps the weights themselves; a resumed run continues both."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from keras import ops
from rich.console import Console

from aetrain.data import load_data, make_dataset
from aetrain.run_folder.checkpoints import load_checkpoint
from aetrain.training import loop as train

from conftest import tiny_run_config

# a constant rate: one_cycle over 1 epoch and over 2 would differ from the first step
COMMON = ("trainer.precision=float32", "trainer.deterministic=true", "trainer.schedule=constant")
COMMON = (*COMMON, "trainer.run_eagerly=false", "trainer.learning_rate=3e-3")
QUIET = Console(file=io.StringIO())


def stepped_weights(checkpoint) -> list[np.ndarray]:
    """The optimizer's average slots of a checkpoint, which hold the stepped weights once swapped."""
    optimizer = load_checkpoint(checkpoint).optimizer
    return [ops.convert_to_numpy(v) for v in optimizer.variables if v.path.endswith("_average")]


def history(folder) -> dict[str, list[float]]:
    return json.loads((folder / "metrics.json").read_text())["history"]


@pytest.fixture(scope="module")
def averaged_run(tiny_data_dir, tmp_path_factory):
    """Two epochs with trainer.ema=0.9, trained once for this module's tests: (config, run folder)."""
    folder = tmp_path_factory.mktemp("averaged")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AETRAIN_CACHE_DIR", str(folder / "cache"))
        cfg = tiny_run_config(tiny_data_dir, *COMMON, "trainer.epochs=2", "trainer.ema=0.9")
        train.run(cfg, folder / "run", QUIET)
    return cfg, folder / "run"


@pytest.mark.slow
def test_validation_and_checkpoints_see_the_average_of_the_weights_training_steps(
    averaged_run, make_config, tmp_path
):
    cfg, averaged = averaged_run
    train.run(make_config(*COMMON, "trainer.epochs=2"), tmp_path / "plain", QUIET)
    plain_last = load_checkpoint(tmp_path / "plain" / "checkpoints" / "last.keras")
    averaged_last = load_checkpoint(averaged / "checkpoints" / "last.keras")

    # the average changes nothing in training: its stepped weights are the plain run's weights
    for stepped, plain in zip(stepped_weights(averaged / "checkpoints" / "last.keras"),
                              plain_last.get_weights(), strict=True):  # fmt: skip
        np.testing.assert_array_equal(stepped, plain)
    # the checkpoint's model is the average, and the validation loss logged is that model's
    pairs = zip(averaged_last.get_weights(), plain_last.get_weights(), strict=True)
    assert max(np.abs(a - b).max() for a, b in pairs) > 1e-3
    validation = make_dataset(load_data(cfg.data).x_val, cfg.trainer.batch_size)
    val_loss = averaged_last.evaluate(validation, verbose=0, return_dict=True)
    assert val_loss["loss"] == pytest.approx(history(averaged)["val_loss"][-1], rel=1e-5)
    assert history(averaged)["val_loss"][-1] != pytest.approx(history(tmp_path / "plain")["val_loss"][-1])
    assert history(averaged)["loss"] == pytest.approx(history(tmp_path / "plain")["loss"], rel=1e-5)


@pytest.mark.slow
def test_a_resumed_averaged_run_matches_the_uninterrupted_one(averaged_run, make_config, tmp_path):
    _, whole = averaged_run
    stopped = tmp_path / "stopped"
    train.run(make_config(*COMMON, "trainer.epochs=1", "trainer.ema=0.9"), stopped, QUIET)
    resume = make_config(*COMMON, "trainer.epochs=2", "trainer.ema=0.9", f"trainer.resume={stopped}")
    train.run(resume, stopped, QUIET)
    assert history(stopped)["loss"] == pytest.approx(history(whole)["loss"], rel=1e-6)
    assert history(stopped)["val_loss"] == pytest.approx(history(whole)["val_loss"], rel=1e-6)
    resumed, straight = (load_checkpoint(f / "checkpoints" / "last.keras") for f in (stopped, whole))
    for a, b in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(stepped_weights(stopped / "checkpoints" / "last.keras"),
                    stepped_weights(whole / "checkpoints" / "last.keras"), strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, atol=1e-6)
