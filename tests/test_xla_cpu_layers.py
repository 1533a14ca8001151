"""The conv layers' JAX-on-CPU paths compute what Keras's layers compute, gradients included, and a
conv model on JAX on a CPU takes them (no XLA convolution or window reduction left in its step)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
from jax import lax  # noqa: E402
from jax import numpy as jnp  # noqa: E402

from aetrain.models.xla_cpu_layers import conv_as_matmul, conv_transpose_as_matmul  # noqa: E402

from cli_runs import environment  # noqa: E402

RNG = np.random.default_rng(0)


def reference_conv(inputs, kernel, padding):
    return lax.conv_general_dilated(
        inputs, kernel, (1, 1), padding.upper(), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@pytest.mark.parametrize(
    ("size", "kernel_size", "channels", "filters", "padding"),
    [
        (7, 3, 4, 5, "same"),
        (8, 3, 1, 3, "valid"),
        (6, 1, 3, 2, "same"),
        (9, 4, 2, 3, "same"),
        (5, 5, 2, 2, "valid"),
    ],
)
def test_a_convolution_as_patches_times_the_kernel_equals_xlas_with_its_gradients(
    size, kernel_size, channels, filters, padding
):
    inputs = jnp.asarray(RNG.normal(size=(2, size, size + 1, channels)), jnp.float32)
    kernel = jnp.asarray(RNG.normal(size=(kernel_size, kernel_size, channels, filters)), jnp.float32)
    ours, reference = conv_as_matmul(inputs, kernel, padding), reference_conv(inputs, kernel, padding)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    weights = jnp.asarray(RNG.normal(size=reference.shape), jnp.float32)

    def gradients(conv):
        return jax.grad(lambda x, k: jnp.sum(conv(x, k, padding) * weights), argnums=(0, 1))(inputs, kernel)

    for ours_grad, reference_grad in zip(gradients(conv_as_matmul), gradients(reference_conv), strict=True):
        np.testing.assert_allclose(ours_grad, reference_grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("kernel_size", "strides", "padding"),
    [(3, 2, "valid"), (3, 2, "same"), (3, 1, "same"), (2, 2, "valid"), (4, 2, "same"), (5, 3, "same")],
)
def test_a_transposed_convolution_as_spread_shares_equals_keras(kernel_size, strides, padding):
    import keras

    inputs = RNG.normal(size=(2, 5, 4, 3)).astype("float32")
    kernel = RNG.normal(size=(kernel_size, kernel_size, 6, 3)).astype("float32")  # rows, columns, out, in
    reference = keras.ops.convert_to_numpy(keras.ops.conv_transpose(inputs, kernel, strides, padding=padding))
    ours = conv_transpose_as_matmul(jnp.asarray(inputs), jnp.asarray(kernel), (strides, strides), padding)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


CONV_MODELS_ON_JAX = """
import json
import jax, keras, numpy as np
from aetrain.config import validate
from aetrain.models.build import build_model
from aetrain.models.keras_equivalents import with_keras_layers
from conftest import compose_config

images = np.random.default_rng(1).random((4, 28, 28), dtype=np.float32)

def gradient_outputs_and_program(model):
    def loss(values):
        fixed = [v.value for v in model.non_trainable_variables]
        outputs, _ = model.stateless_call(values, fixed, images)
        return keras.ops.mean((outputs - images) ** 2), outputs
    step = jax.jit(jax.grad(loss, has_aux=True))
    values = [v.value for v in model.trainable_variables]
    return *step(values), step.lower(values).as_text()

report = {}
for variant in ("conv", "vqvae"):
    model = build_model(validate(compose_config(f"variant={variant}", "seed=3")))
    plain = with_keras_layers(model)
    ours, ours_outputs, ours_program = gradient_outputs_and_program(model)
    keras_own, keras_outputs, keras_program = gradient_outputs_and_program(plain)
    report[variant] = {
        "convolutions": ours_program.count("stablehlo.convolution"),
        "windows": ours_program.count("reduce_window"),
        "keras_convolutions": keras_program.count("stablehlo.convolution"),
        "twins_left": [type(l).__name__ for l in plain._flatten_layers() if hasattr(l, "keras_equivalent")],
        "outputs": float(np.abs(ours_outputs - keras_outputs).max()),
        "gradients": max(float(np.abs(a - b).max()) for a, b in zip(ours, keras_own)),
    }
print(json.dumps(report))
"""


@pytest.mark.slow  # its own JAX process: once, in `make test`
def test_conv_models_on_jax_on_a_cpu_skip_xla_convolutions_and_compute_what_keras_computes(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", CONV_MODELS_ON_JAX],
        capture_output=True,
        text=True,
        env=environment(tmp_path, KERAS_BACKEND="jax"),
        cwd=Path(__file__).parent,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for variant, figures in json.loads(done.stdout.splitlines()[-1]).items():
        assert figures["convolutions"] == 0 and figures["windows"] == 0, (variant, figures)
        assert figures["keras_convolutions"] > 0, (variant, figures)  # Keras's layers: XLA's convolutions
        assert figures["twins_left"] == [], (variant, figures)  # what exports hold: Keras's layers
        assert figures["outputs"] < 1e-5 and figures["gradients"] < 1e-4, (variant, figures)
