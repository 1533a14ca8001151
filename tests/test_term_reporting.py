"""Loss terms reported by the layers that add them, on both backends: the VAE's ``kl_loss`` equals its
formula on the encoder's outputs, and every family's terms are recorded while it trains on JAX."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_every_family import FAMILIES

TESTS = Path(__file__).resolve().parent

# Run in a process of its own per backend (Keras picks its backend once per process); prints JSON.
_CHECK = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from conftest import tiny_run_config
from aetrain.models.build import build_model
from aetrain.models.family import family_named
import keras

data_dir, families = sys.argv[2], sys.argv[3].split(",")
images = np.random.default_rng(0).random((40, 28, 28), dtype=np.float32)
found = {"backend": keras.config.backend()}

vae = build_model(tiny_run_config(data_dir, "variant=vae", "variant.hidden_units=[16]", "latent_size=3"))
vae.compile(optimizer="adam", loss="mse")
mean, log_var, _ = vae.get_layer("encoder").predict(images, verbose=0)
found["kl_formula"] = float(np.mean(-0.5 * np.sum(1 + log_var - np.exp(log_var) - mean**2, axis=-1)))
found["kl_reported"] = vae.evaluate(images, images, batch_size=8, verbose=0, return_dict=True)["kl_loss"]

for family in families:
    model = build_model(tiny_run_config(data_dir, f"variant={family}"))
    model.compile(optimizer="adam", loss=family_named(family).compiled_loss)
    history = model.fit(images, images, batch_size=8, epochs=1, verbose=0, validation_data=(images, images))
    found[family] = {name: values[0] for name, values in history.history.items()}
print("RESULT " + json.dumps(found))
"""


def _terms_on(backend: str, tiny_data_dir: Path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, str(TESTS), str(tiny_data_dir), ",".join(FAMILIES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.split("RESULT ", 1)[1])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_loss_terms_are_recorded_by_their_metrics_on_each_backend(backend, tiny_data_dir):
    found = _terms_on(backend, tiny_data_dir)
    assert found["backend"] == backend
    assert found["kl_reported"] == pytest.approx(found["kl_formula"], rel=1e-4)
    assert found["kl_formula"] > 0
    for family in FAMILIES:
        reported = found[family]
        terms = [name for name in reported if not name.startswith("val_") and name != "loss"]
        assert terms, f"{family} reports no term of its own: {reported}"
        for term in terms:
            # a term never recorded stays at its metric's initial 0
            assert reported[term] != 0.0 and reported[f"val_{term}"] != 0.0, (family, term, reported)
