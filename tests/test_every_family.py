"""Every family in aetrain/models/families/ trains through the CLI and every companion command works
on its run, with no test written for it here: a family added to that folder is picked up."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from aetrain.config import registry, validate
from aetrain.models.family import family_named
from aetrain.training.loop import loss_terms

from cli_runs import command
from conftest import compose_config

FAMILIES = sorted(
    name
    for name in registry.names("variant")
    if registry.option("variant", name).declared_in.startswith(registry.FAMILY_MODULES + ".")
)


def test_the_families_folder_is_found():
    assert {"vqvae", "wae", "iwae", "beta_tcvae"} <= set(FAMILIES)


@pytest.mark.slow
@pytest.mark.parametrize("variant", FAMILIES)
def test_a_family_trains_and_every_companion_command_works_on_its_run(variant, tiny_data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    run = sweep / "0"
    trained = command(
        "aetrain",
        f"variant={variant}",
        "trainer=smoke",
        f"data.dir={tiny_data_dir}",
        "data.limit=256",
        "data.val_size=64",
        "trainer.progress=false",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    cfg = validate(compose_config(f"variant={variant}"))
    family = family_named(variant)
    assert metrics["status"] == "completed"
    assert metrics["loss_terms"] == loss_terms(cfg)
    assert len(metrics["history"]) > 2  # its own terms are reported beside loss and val_loss
    assert np.isfinite(metrics["test"]["mse"])

    evaluated = command("aetrain-evaluate", str(run), "--limit", "50", "--probe-steps", "10", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    assert json.loads((run / "eval.json").read_text())["test_images"] == 50

    generated = command("aetrain-generate", str(run), "--limit", "20", cwd=tmp_path)
    assert generated.returncode == (0 if family.samples_from_prior else 2), generated.stdout
    if family.samples_from_prior:
        assert (run / "samples.png").stat().st_size > 0 and (run / "interpolation.png").exists()

    looked = command("aetrain-look", str(run), "--tsne-points", "60", cwd=tmp_path)
    assert looked.returncode == 0, looked.stdout + looked.stderr
    assert (run / "codings_pca.png").exists()

    exported = command("aetrain-export", str(run), cwd=tmp_path)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    _exported_encoder_gives_the_checkpoints_codings(run)

    reported = command("aetrain-report", str(sweep), cwd=tmp_path)
    assert reported.returncode == 0, reported.stdout + reported.stderr
    with open(sweep / "report.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["status"] == "completed"


def _exported_encoder_gives_the_checkpoints_codings(run: Path) -> None:
    """encoder.keras holds Keras's built-in layers only, and computes the checkpoint's codings."""
    import keras

    from aetrain.models.build import encode
    from aetrain.run_folder.checkpoints import load_checkpoint

    model = load_checkpoint(run / "checkpoints" / "best.keras")
    encoder = keras.models.load_model(run / "export" / "encoder.keras", safe_mode=True)
    assert {type(layer).__module__.split(".")[0] for layer in _all_layers(encoder)} == {"keras"}
    images = np.random.default_rng(0).random((4, *model.input_shape[1:]), dtype=np.float32)
    served = encoder.predict(images, verbose=0)
    served = served[0] if isinstance(served, list) else served
    np.testing.assert_allclose(served, encode(model, images), atol=1e-2)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
