"""aetrain on Keras's JAX backend in an environment with no TensorFlow installed at all (aetrain
installed with --no-deps beside Keras, JAX and its other dependencies: tests/without_tensorflow/):
it trains, checkpoints, resumes and evaluates; what needs TensorFlow says so, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from without_tensorflow.build_env import build

from cli_runs import plain_text, smoke_args


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    return build().parent


def run(bin_dir: Path, name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("KERAS_BACKEND", "PYTHONPATH")}
    env["AETRAIN_CACHE_DIR"] = str(cwd / "cache")
    return subprocess.run(
        [str(bin_dir / name), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_trains_resumes_and_evaluates_without_tensorflow(bin_dir, tiny_data_dir, tmp_path):
    found = subprocess.run(
        [str(bin_dir / "python"), "-c", "import tensorflow"], capture_output=True, text=True
    )
    assert found.returncode != 0 and "No module named 'tensorflow'" in found.stderr

    folder = tmp_path / "run"
    trained = run(
        bin_dir, "aetrain", *smoke_args(tiny_data_dir, f"hydra.run.dir={folder}", "variant=vae"), cwd=tmp_path
    )
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert "backend jax (auto: TensorFlow is not installed here)" in plain_text(
        trained.stdout + trained.stderr
    )
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["backend"] == "jax" and metrics["history"]["kl_loss"][0] > 0
    assert (folder / "checkpoints" / "last.keras").is_file() and (folder / "reconstructions.png").is_file()

    resumed = run(
        bin_dir,
        "aetrain",
        *smoke_args(
            tiny_data_dir,
            f"hydra.run.dir={folder}",
            "variant=vae",
            f"trainer.resume={folder}",
            "trainer.epochs=2",
        ),
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == 1 and metrics["epochs_completed"] == 2
    assert len(metrics["history"]["loss"]) == 2

    evaluated = run(bin_dir, "aetrain-evaluate", str(folder), "--probe-steps", "5", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stdout[-3000:] + evaluated.stderr[-3000:]
    report = json.loads((folder / "eval.json").read_text())
    assert report["mse"] == pytest.approx(metrics["test"]["mse"], rel=1e-3) and 0 < report["ssim"] <= 1

    exported = run(bin_dir, "aetrain-export", str(folder), cwd=tmp_path)
    assert exported.returncode == 2 and "needs TensorFlow" in plain_text(exported.stdout + exported.stderr)
    logged = run(bin_dir, "aetrain", *smoke_args(tiny_data_dir, "logger=tensorboard"), cwd=tmp_path)
    text = plain_text(logged.stdout + logged.stderr)
    assert logged.returncode == 2 and "`logger` = 'tensorboard'" in text and "TensorFlow" in text


@pytest.mark.slow
def test_the_device_benchmark_runs_without_tensorflow(bin_dir, tiny_data_dir, tmp_path):
    """``python -m bench --device`` as it runs on a lent GPU machine (JAX, no TensorFlow), on CPU."""
    out = tmp_path / "DEVICE.md"
    args = ["--device", "--quick", "--presets=seed_dropout", f"--data-dir={tiny_data_dir}", "--limit=256"]
    done = subprocess.run(
        [str(bin_dir / "python"), "-m", "bench", *args, "--val-size=64", f"--out={out}"],
        cwd=Path(__file__).resolve().parents[1],
        env={
            **{k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"},
            "AETRAIN_CACHE_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = out.read_text()
    assert "`python -m bench --quick --device`" in report and "the recipe on jax, aetrain on jax" in report
    assert "| seed_dropout on jax (auto) |" in report
