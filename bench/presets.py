"""The six seed presets, each against the seed's recipe on the same model (issue 13's goals).

For every preset: the recipe (plain Keras ``fit``, batch 32, Nadam, float32, MSE, the book's own
penalties as Keras computes them) trains the preset's model; ``aetrain experiment=PRESET`` trains it
with aetrain's defaults (and the preset's own trainer values). Both for the same number of epochs on
the same data; the figures: test MSE, mean coding activation (sparse presets), the time aetrain takes
to reach the recipe's final validation MSE, and steady training throughput.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PRESETS = ("seed_conv", "seed_dropout", "seed_gaussian", "seed_sparse_l1", "seed_sparse_kl", "seed_vae")
SPARSE = ("seed_sparse_l1", "seed_sparse_kl")
# The book's values where a preset sets its own for aetrain's batch (see conf/experiment/*.yaml)
BOOK_VALUES = {"seed_sparse_kl": ["sparsity.weight=5e-3"]}


def quality_goal(preset: str) -> float:
    """The recipe's final validation MSE in at most 1/this of the recipe's whole process (issue 22):
    1/4 for conv, 1/6 for the dense and variational presets."""
    return 4.0 if preset == "seed_conv" else 6.0


def throughput_goal(preset: str) -> float:
    """At least this many times the recipe's steady images/s: 3.5 for conv, 6 for the dense and VAE."""
    return 3.5 if preset == "seed_conv" else 6.0


@dataclass
class PresetRace:
    """One preset's recipe run and aetrain run, and what the goals make of them."""

    preset: str
    recipe: dict  # process_seconds, epoch_end_seconds, val_mse, test_mse, images_per_second, activation
    aetrain: dict  # metrics.json, plus activation
    wall_seconds: float  # the whole ``aetrain`` command, process start to exit
    backend: str = "tensorflow"
    auto: bool = False  # the backend trainer.backend=auto picks for this preset

    @property
    def aetrain_val_mse(self) -> list[float]:
        history = self.aetrain["history"]
        return history.get("val_reconstruction_loss") or history["val_loss"]

    @property
    def target(self) -> float:
        return self.recipe["val_mse"][-1]

    @property
    def reached(self) -> tuple[int, float]:
        """(epoch, seconds from aetrain's process start) at which its val MSE first reaches the target."""
        ends = self.aetrain["epoch_end_seconds"]
        for epoch, (loss, end) in enumerate(zip(self.aetrain_val_mse, ends, strict=True), 1):
            if loss <= self.target:
                return epoch, end
        return 0, float("nan")

    @property
    def quality_speedup(self) -> float:
        """The recipe's whole process (start to exit) over aetrain's time to its final val MSE."""
        seconds = self.reached[1]
        return self.recipe["process_seconds"] / seconds if seconds == seconds else 0.0

    @property
    def whole_run_speedup(self) -> float:
        return self.recipe["process_seconds"] / self.wall_seconds

    @property
    def throughput_ratio(self) -> float:
        ours, theirs = self.aetrain.get("images_per_second"), self.recipe["images_per_second"]
        return ours / theirs if ours and theirs else 0.0

    @property
    def mse_met(self) -> bool:
        mse_ok = self.aetrain["test"]["mse"] <= self.recipe["test_mse"]
        if self.preset in SPARSE:
            return mse_ok and self.aetrain["activation"] <= self.recipe["activation"]
        return mse_ok


def auto_backend(preset: str, overrides: list[str]) -> str:
    """The backend ``aetrain experiment=PRESET trainer.backend=auto`` trains on here."""
    from aetrain.training.backend import auto_backend_for

    return auto_backend_for(preset_config(preset, overrides), environment={}).name


def preset_config(preset: str, overrides: list[str]):
    """The checked RunConfig of ``aetrain experiment=PRESET OVERRIDES``."""
    from hydra import compose, initialize_config_dir

    from aetrain.commands.train import config_dir
    from aetrain.config import validate

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return validate(compose(config_name="config", overrides=[f"experiment={preset}", *overrides]))


def recipe_model(preset: str, cfg):
    """The seed's conv_ae from plain Keras layers; the other presets' models as aetrain builds them
    (the book's layers, noise and penalties), in float32, with Keras's own layers for aetrain's
    twins of them."""
    import keras

    from aetrain.models.build import build_model
    from aetrain.models.keras_equivalents import with_keras_layers
    from bench.seed_recipe import build_seed_conv_autoencoder

    keras.utils.clear_session()
    keras.mixed_precision.set_dtype_policy("float32")
    return build_seed_conv_autoencoder() if preset == "seed_conv" else with_keras_layers(build_model(cfg))


def mean_activation(model, images) -> float:
    """Mean sigmoid coding activation over ``images`` (the sparse presets' sparsity figure)."""
    import numpy as np

    from aetrain.models.build import encode

    return float(np.mean(encode(model, images)))


def run_recipe_process(preset: str, epochs: int, data_args: list[str], out: Path, backend: str) -> dict:
    """``python -m bench.recipe_process`` on ``backend``: its figures, and ``process_seconds``, its
    wall time from start to exit."""
    import json
    import os
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "bench.recipe_process", preset, f"--epochs={epochs}", f"--out={out}"]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *data_args], capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": backend}
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(out.read_text()), "process_seconds": wall}


def race_recipe(preset: str, data, epochs: int, overrides: list[str]) -> dict:
    """The seed's recipe on the preset's model: its figures, and the coding activation if sparse."""
    from bench.seed_recipe import train_seed_recipe

    model = recipe_model(preset, preset_config(preset, [*overrides, *BOOK_VALUES.get(preset, [])]))
    result = train_seed_recipe(model, data.x_train, data.x_val, data.x_test, epochs)
    if preset in SPARSE:
        result["activation"] = mean_activation(model, data.x_test)
    return result


def race_aetrain(
    preset: str, epochs: int, common: list[str], run_dir: Path, data, backend: str = "auto"
) -> tuple[dict, float]:
    """``aetrain experiment=PRESET trainer.epochs=EPOCHS trainer.backend=BACKEND``: metrics.json (plus
    the activation of the best checkpoint's codings on the test images, if sparse) and the command's
    wall seconds, process start to exit."""
    from aetrain.run_folder.checkpoints import load_checkpoint
    from bench.aetrain_runs import run_aetrain

    overrides = [f"experiment={preset}", f"trainer.epochs={epochs}", f"trainer.backend={backend}", *common]
    run = run_aetrain(overrides, run_dir, env={"KERAS_BACKEND": ""})
    metrics = dict(run.metrics)
    if preset in SPARSE:
        metrics["activation"] = mean_activation(
            load_checkpoint(run_dir / "checkpoints" / "best.keras"), data.x_test
        )
    return metrics, run.wall_seconds
