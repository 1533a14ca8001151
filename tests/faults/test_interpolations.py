"""Overrides whose interpolations fail are exit 2 naming the key, before TensorFlow, leaving no folder;
Hydra's hint follows Hydra's own errors only; metrics.json is strict JSON and a non-finite validation
loss is divergence (exit 4); accepted edge values train through the real command."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from aetrain import data
from aetrain.config import MAX_COUNT, MAX_SEED
from aetrain.run_folder.atomic_files import json_ready, write_json_atomically
from aetrain.training import loop as train

from cli_runs import aetrain, environment, plain_text, smoke_args

HINT = "Hydra refused the command line"


def strict_json(path: Path):
    """Parse as JSON proper: a bare NaN or Infinity is an error."""

    def refuse(constant: str):
        raise ValueError(f"{path} holds a bare {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.dir=${oc.env:AETRAIN_SURELY_UNSET}", "data.dir"),
        ("latent_size=${nope:x}", "latent_size"),
        ("trainer.learning_rate=${oc.env:AETRAIN_SURELY_UNSET}", "trainer.learning_rate"),
        ("hydra.run.dir=${oc.env:AETRAIN_SURELY_UNSET}", "hydra.run.dir"),
    ],
)
def test_a_failing_interpolation_is_exit_2_naming_its_key_and_leaves_no_folder(
    tiny_data_dir, tmp_path, override, key
):
    run_dir = tmp_path / "run"
    args = smoke_args(tiny_data_dir, override)
    if not override.startswith("hydra.run.dir"):
        args.append(f"hydra.run.dir={run_dir}")
    result = aetrain(*args, cwd=tmp_path, without_tensorflow=True)
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 2, text
    assert f"`{key}`" in text and "Traceback" not in text and HINT not in text
    assert not run_dir.exists() and not (tmp_path / "outputs").exists()


def test_the_hydra_hint_follows_hydras_own_errors(tmp_path):
    for override in ("no_such_key=1", "variant=nope", "seed=[1"):
        result = aetrain(override, cwd=tmp_path, without_tensorflow=True)
        assert result.returncode == 1 and HINT in result.stderr, result.stderr


def test_the_hydra_hint_does_not_follow_a_crash_of_the_run(tmp_path):
    """A run that fails inside aetrain (a patched RuntimeError) exits 1 without blaming the command line."""
    script = (
        "import sys, aetrain.commands.train as cli\n"
        "def crash(*args, **kwargs): raise RuntimeError('crashed inside the run')\n"
        "cli._train = crash\n"
        f"sys.argv = ['aetrain', 'hydra.run.dir={tmp_path / 'run'}']\n"
        "cli.entry()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "crashed inside the run" in result.stderr
    assert HINT not in result.stderr


def test_metrics_are_strict_json():
    content = {
        "a": float("nan"),
        "b": [1.0, float("inf"), -float("inf")],
        "c": np.float32("nan"),
        "d": np.int64(3),
    }
    assert json_ready(content) == {"a": None, "b": [1.0, None, None], "c": None, "d": 3}


def test_write_json_never_writes_a_bare_nan(tmp_path):
    path = write_json_atomically(tmp_path / "m.json", {"loss": [0.5, float("nan")]})
    assert strict_json(path) == {"loss": [0.5, None]}


def test_a_nan_validation_loss_is_divergence(make_config, tmp_path, monkeypatch):
    real = data.make_dataset

    def poisoned(images, batch_size, shuffle=False, **kwargs):
        if shuffle:
            return real(images, batch_size, shuffle=shuffle, **kwargs)
        return real(np.asarray(images) * np.float32("nan"), batch_size, shuffle=shuffle, **kwargs)

    monkeypatch.setattr(data, "make_dataset", poisoned)
    run_dir = tmp_path / "run"
    with pytest.raises(train.TrainingDiverged, match="validation loss became nan at epoch 1"):
        train.run(make_config("trainer.epochs=2"), run_dir, Console(file=io.StringIO()))
    metrics = strict_json(run_dir / "metrics.json")
    assert metrics["status"] == "diverged" and metrics["history"]["val_loss"] == [None]
    assert not (run_dir / "checkpoints" / "last.keras").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "edges",
    [
        (
            f"seed={MAX_SEED}",
            "latent_size=1",
            f"trainer.batch_size={MAX_COUNT}",
            f"trainer.grid_images={MAX_COUNT}",
        ),
        (
            "seed=0",
            "variant=conv_vae",
            "latent_size=2",
            "variant.encoder_filters=[1,1,1]",
            "variant.decoder_filters=[1,1]",
            "variant.decoder_start_channels=1",
            "variant.beta=0",
            "trainer.warmup_epochs=0.99",
            "trainer.optimizer=adamw",
            "trainer.weight_decay=1e-300",
            f"trainer.steps_per_execution={MAX_COUNT}",
        ),
    ],
    ids=["largest counts", "smallest layers"],
)
def test_accepted_edge_values_train_through_the_cli(tiny_data_dir, tmp_path, edges):
    run_dir = tmp_path / "run"
    result = aetrain(*smoke_args(tiny_data_dir, *edges, f"hydra.run.dir={run_dir}"), cwd=tmp_path)
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 0, text
    assert strict_json(run_dir / "metrics.json")["status"] == "completed"
