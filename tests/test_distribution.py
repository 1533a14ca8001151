"""trainer.strategy=mirrored on a CPU split into two logical devices, in a fresh process.

The split must happen before TensorFlow initialises its devices, hence the subprocess. The runs
go one after another in that process, as a sequential sweep runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

RUNS = """
import io, json, sys
from pathlib import Path

if json.loads(sys.argv[5]):  # TensorFlow: split the CPU before TensorFlow initialises its devices
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from rich.console import Console
from aetrain.training import loop as train
from aetrain.config import validate
sys.path.insert(0, sys.argv[1])
from conftest import compose_config

data_dir, out = sys.argv[2], Path(sys.argv[3])
for name, overrides in json.loads(sys.argv[4]).items():
    cfg = validate(compose_config(f"data.dir={data_dir}", *overrides))
    train.run(cfg, out / name, Console(file=io.StringIO()))
"""
# Plain SGD, so a gradient summed over the replicas instead of averaged would show in the losses: a
# doubled rate (1.0) moves the training loss by 6.4e-4 and the validation loss and test MSE by 1.5e-3,
# relative. At rate 1.0 itself the replicas' float32 sums, added in another order, drifted to 1e-4 from
# one device's (CI failed on 1.01e-4 once); at 0.5 they stay within 1e-7, three runs alike.
COMMON = ["trainer=smoke", "data.limit=256", "data.val_size=64", "trainer.progress=false", "trainer.epochs=1",
          "trainer.optimizer=sgd", "trainer.learning_rate=0.5", "trainer.schedule=constant"]  # fmt: skip


def runs_in_one_process(tmp_path, data_dir, runs: dict[str, list[str]], env: dict, split_cpu: bool) -> dict:
    """metrics.json of each run ``name: overrides`` (after COMMON), trained one after another in a fresh
    process, as a sequential sweep runs them; ``split_cpu``: TensorFlow's CPU as two logical devices."""
    runs = {name: [*COMMON, *overrides] for name, overrides in runs.items()}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            RUNS,
            str(TESTS),
            str(data_dir),
            str(tmp_path),
            json.dumps(runs),
            json.dumps(split_cpu),
        ],
        env={**os.environ, "AETRAIN_CACHE_DIR": str(tmp_path / "cache"), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in runs}


# trainer.ema: the weights' average is swapped in and out on every replica alike
AVERAGED = {
    "averaged": ["trainer.ema=0.9"],
    "mirrored_averaged": ["trainer.strategy=mirrored", "trainer.ema=0.9"],
}


def assert_averaged_alike(metrics: dict) -> None:
    one, mirrored = metrics["averaged"], metrics["mirrored_averaged"]
    for key in ("loss", "val_loss"):
        assert mirrored["history"][key] == pytest.approx(one["history"][key], rel=1e-4)
    assert mirrored["test"]["mse"] == pytest.approx(one["test"]["mse"], rel=1e-4)
    assert one["history"]["val_loss"] != pytest.approx(metrics["default"]["history"]["val_loss"], rel=1e-4)


@pytest.mark.slow
def test_mirrored_strategy_over_two_cpu_devices_trains_like_one_device(tiny_data_dir, tmp_path):
    runs = {
        "mirrored": ["trainer.strategy=mirrored"],
        "default": [],
        "mirrored_sliced": ["trainer.strategy=mirrored", "trainer.batch_splits=2"],
        "mirrored_vae": ["trainer.strategy=mirrored", "variant=vae", "trainer.learning_rate=0.01"],
        **AVERAGED,
    }
    metrics = runs_in_one_process(
        tmp_path, tiny_data_dir, runs, {"TF_CPP_MIN_LOG_LEVEL": "3"}, split_cpu=True
    )
    assert metrics["mirrored"]["replicas"] == 2 and metrics["default"]["replicas"] == 1
    # Same data, seed and global batch: two replicas averaging their gradients take the same steps.
    # ... and so do two replicas each training its half of the batch as two slices.
    assert metrics["mirrored_sliced"]["batch_splits"] == 2
    for run in ("mirrored", "mirrored_sliced"):
        for key in ("loss", "val_loss"):
            assert metrics[run]["history"][key] == pytest.approx(metrics["default"]["history"][key], rel=1e-4)
        assert metrics[run]["test"]["mse"] == pytest.approx(metrics["default"]["test"]["mse"], rel=1e-4)
    # A second mirrored model in the same process (a sweep's next job) trains too.
    vae = metrics["mirrored_vae"]
    assert vae["status"] == "completed" and vae["replicas"] == 2 and vae["test"]["latent_loss"] > 0
    assert_averaged_alike(metrics)


@pytest.mark.slow
def test_mirrored_on_jax_is_keras_data_parallel_over_two_cpu_devices(tiny_data_dir, tmp_path):
    """On JAX, trainer.strategy=mirrored shards each batch over the devices (two CPU devices here);
    a batch that does not divide among them is cut to a multiple of their number."""
    runs = {
        "mirrored": ["trainer.strategy=mirrored"],
        "default": [],
        "mirrored_vae": ["trainer.strategy=mirrored", "variant=vae", "trainer.learning_rate=0.01"],
        "mirrored_odd": ["trainer.strategy=mirrored", "data.limit=251"],
        **AVERAGED,
    }
    runs = {name: ["trainer.backend=jax", *overrides] for name, overrides in runs.items()}
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    metrics = runs_in_one_process(tmp_path, tiny_data_dir, runs, env, split_cpu=False)
    assert metrics["mirrored"]["replicas"] == 2 and metrics["default"]["replicas"] == 1
    assert {run["backend"] for run in metrics.values()} == {"jax"}
    for key in ("loss", "val_loss"):
        assert metrics["mirrored"]["history"][key] == pytest.approx(
            metrics["default"]["history"][key], rel=1e-4
        )
    assert metrics["mirrored"]["test"]["mse"] == pytest.approx(metrics["default"]["test"]["mse"], rel=1e-4)
    assert (
        metrics["mirrored_vae"]["status"] == "completed"
        and metrics["mirrored_vae"]["test"]["latent_loss"] > 0
    )
    assert (
        metrics["mirrored_odd"]["status"] == "completed"
        and metrics["mirrored_odd"]["data"]["images"]["train"] == 187
    )
    assert_averaged_alike(metrics)
