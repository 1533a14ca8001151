"""Checkpoints reload to the same outputs in a fresh process, say what they are, and are never partial."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from aetrain.config import RunConfig, validate
from aetrain.models.build import build_model
from aetrain.run_folder.checkpoints import load_checkpoint, read_metadata, save_checkpoint

from conftest import compose_config

RELOAD_SCRIPT = """
import sys, numpy as np
import aetrain, keras
images = np.load(sys.argv[1])
for path in sys.argv[2:]:
    model = keras.models.load_model(path)
    np.save(path + ".out.npy", model.predict(images, verbose=0))
"""
RELOADED = [
    ["variant=conv"],
    ["variant=vae", "noise=gaussian"],
    ["variant=dense", "sparsity=kl"],
    ["variant=dense", "noise=dropout", "sparsity=l1"],
]


def test_checkpoints_reload_in_a_fresh_process_with_identical_outputs(tmp_path):
    """One fresh process (one TensorFlow import) reloads every checkpoint; each predicts as its
    model did."""
    images = np.random.default_rng(3).random((4, 28, 28), dtype=np.float32)
    np.save(tmp_path / "images.npy", images)
    expected = {}
    for index, overrides in enumerate(RELOADED):
        cfg = validate(compose_config(*overrides, "latent_size=6"))
        model = build_model(cfg)
        model.compile(optimizer="adam", loss="mse", run_eagerly=True)  # one step: no tracing
        model.fit(images, images, epochs=1, verbose=0)  # optimizer state exists, weights moved
        path = tmp_path / f"model_{index}.keras"
        save_checkpoint(model, path, {"config": cfg.to_dict(), "epoch": 1})
        expected[path] = model.predict(images, verbose=0)

    paths = [str(path) for path in expected]
    subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(tmp_path / "images.npy"), *paths],
        check=True,
        capture_output=True,
    )
    for path, outputs in expected.items():
        np.testing.assert_array_equal(np.load(f"{path}.out.npy"), outputs, err_msg=path.name)


def test_checkpoint_carries_the_config_that_made_it(tmp_path):
    cfg = validate(compose_config("experiment=seed_sparse_kl"))
    path = tmp_path / "last.keras"
    save_checkpoint(build_model(cfg), path, {"config": cfg.to_dict(), "epoch": 3})
    metadata = read_metadata(path)
    assert metadata["epoch"] == 3
    assert metadata["config"]["sparsity"] == {
        "name": "kl",
        "target": 0.1,
        "weight": 0.02,
        "divide_by_batch_size": True,
    }
    # loggers only watch a run: a checkpoint's config leaves them out when it is read back
    assert RunConfig.from_dict(metadata["config"]) == dataclasses.replace(cfg, logger={})


def test_reload_keeps_optimizer_state(tmp_path):
    cfg = validate(compose_config("variant=dense", "latent_size=4"))
    model = build_model(cfg)
    model.compile(optimizer="adam", loss="mse")
    images = np.random.default_rng(0).random((8, 28, 28), dtype=np.float32)
    model.fit(images, images, epochs=2, verbose=0)
    save_checkpoint(model, tmp_path / "last.keras", {})
    reloaded = load_checkpoint(tmp_path / "last.keras")
    assert int(reloaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    for a, b in zip(model.optimizer.variables, reloaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_failed_save_keeps_the_previous_checkpoint_and_leaves_no_partial_file(tmp_path, monkeypatch):
    cfg = validate(compose_config("variant=dense", "latent_size=4"))
    model = build_model(cfg)
    path = tmp_path / "best.keras"
    save_checkpoint(model, path, {"epoch": 1})
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(model, path, {"epoch": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]
    assert json.loads(zipfile.ZipFile(path).read("aetrain.json"))["epoch"] == 1


def test_best_and_last_are_one_save_and_a_copy_and_last_moves_on_alone(tmp_path):
    from aetrain.training.callbacks import CheckpointBestAndLast

    model = build_model(validate(compose_config("variant=dense", "latent_size=4")))
    callback = CheckpointBestAndLast(tmp_path, metadata=lambda epoch: {"epoch": epoch})
    callback.set_model(model)
    model.stop_training = False  # as fit sets it

    def epoch_in(name: str) -> int:
        return json.loads(zipfile.ZipFile(tmp_path / name).read("aetrain.json"))["epoch"]

    callback.on_epoch_end(0, {"val_loss": 0.5})
    assert (tmp_path / "best.keras").read_bytes() == (tmp_path / "last.keras").read_bytes()
    callback.on_epoch_end(1, {"val_loss": 0.7})  # worse: only last.keras moves on
    assert (epoch_in("best.keras"), epoch_in("last.keras")) == (1, 2)
    assert callback.best_epoch == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras", "last.keras"]
