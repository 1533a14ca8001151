"""On JAX the steps of one call run as one compiled loop: the same training as Keras's own loop."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from aetrain.training.scanned_steps import stack_batches

# Two twins of a dense denoiser (dropout noise, Adam, a one-cycle rate): one trained by Keras's loop
# of single-step calls, one by the scanned loop. 10 batches with 4 steps per call: the epoch's last
# call has 2 batches, so the skipped steps of a short call are exercised too.
TWINS = r"""
import numpy as np, keras
from aetrain.config import validate
from aetrain.data import make_training_dataset
from aetrain.models.build import build_model
from aetrain.models.family import family_of
from aetrain.training.optimization import build_optimizer
from aetrain.training.scanned_steps import scan_steps
from conftest import compose_config

cfg = validate(compose_config("variant=dense", "noise=dropout", "latent_size=4", "trainer.precision=float32"))
images = np.random.default_rng(0).random((80, 28, 28), dtype=np.float32)
results = {}
for scanned in (False, True):
    keras.utils.set_random_seed(0)
    model = build_model(cfg)
    model.compile(optimizer=build_optimizer(cfg.trainer, 10), loss=family_of(cfg).compiled_loss,
                  steps_per_execution=4)
    if scanned:
        assert scan_steps(model, batch_size=8)
    history = model.fit(make_training_dataset(images, 8, seed=1), epochs=2, verbose=0).history
    results[scanned] = (history["loss"], model.get_weights(), int(model.optimizer.iterations.numpy()))
loss_keras, weights_keras, steps_keras = results[False]
loss_scan, weights_scan, steps_scan = results[True]
assert steps_keras == steps_scan == 20, (steps_keras, steps_scan)
np.testing.assert_allclose(loss_scan, loss_keras, rtol=1e-5)
for a, b in zip(weights_scan, weights_keras, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
keras.utils.set_random_seed(0)
single = build_model(cfg)
single.compile(optimizer="adam", loss="mse", steps_per_execution=1)
assert not scan_steps(single, batch_size=8)  # one step per call: Keras's own
assert not scan_steps(model, batch_size=256)  # a dense model's large batches: Keras's own (measured faster)
conv = build_model(validate(compose_config("variant=conv", "latent_size=4")))
conv.compile(optimizer="adam", loss="mse", steps_per_execution=4)
assert scan_steps(conv, batch_size=256)  # a conv step's fresh temporary memory: paid once per call
print("twins agree", loss_scan)
"""


def test_scanned_steps_train_exactly_as_kerass_own_loop_short_last_call_included():
    tests = os.path.dirname(__file__)
    done = subprocess.run(
        [sys.executable, "-c", TWINS],
        cwd=tests,
        env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": tests, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "twins agree" in done.stdout


def test_stacked_batches_share_an_autoencoders_input_and_target():
    batches = []
    for seed in range(3):
        pixels = np.random.default_rng(seed).random((4, 2), dtype=np.float32)
        batches.append((pixels, pixels))
    x, y = stack_batches(batches)
    assert x.shape == (3, 4, 2) and y is x
    np.testing.assert_array_equal(x[2], batches[2][0])
    other = [(b[0], b[0] + 1) for b in batches]
    x, y = stack_batches(other)
    assert y is not x
    np.testing.assert_array_equal(y, x + 1)
