"""Checkpoints that never exist half-written, and that say what they are.

A ``.keras`` file is a zip; aetrain adds ``aetrain.json`` (the run config, epoch, history) to it
before the atomic rename, so a checkpoint found alone still tells how it was made.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aetrain.atomic_files import atomic_path
from aetrain.resume import METADATA_NAME, read_metadata

__all__ = [
    "METADATA_NAME",
    "copy_optimizer_state",
    "load_checkpoint",
    "read_metadata",
    "restore_seed_generator_states",
    "save_checkpoint",
    "seed_generator_states",
]

if TYPE_CHECKING:  # read_metadata needs only zipfile: commands check a path before TensorFlow loads
    import keras

SEED_STATE_SUFFIX = "seed_generator_state"


def save_checkpoint(model: keras.Model, path: Path, metadata: dict[str, Any]) -> None:
    """Write ``model`` (with optimizer state) and ``metadata`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp, overwrite=True)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA_NAME, json.dumps(metadata, indent=2, default=float))


def load_checkpoint(path: Path, compile: bool = True) -> keras.Model:
    """Reload an aetrain checkpoint; importing aetrain.models registers its custom layers first.

    A tied-weights decoder is tied to its encoder again (its kernels are the encoder's, saved once).
    """
    import keras

    from aetrain.models.dense import tie_dense_weights

    return tie_dense_weights(keras.models.load_model(path, compile=compile))


def seed_generator_states(model: keras.Model) -> list[list[int]]:
    """The states of the model's random generators (noise, VAE sampling), in layer order.

    Keras does not save them with the weights; a resumed run restores them from the checkpoint's
    metadata so its noise continues where the stopped run's would have.
    """
    from keras import ops

    return [[int(x) for x in ops.convert_to_numpy(v)] for v in _seed_state_variables(model)]


def restore_seed_generator_states(model: keras.Model, states: list[list[int]]) -> None:
    """Set the generators back to ``states`` (from :func:`seed_generator_states` of the same model)."""
    variables = _seed_state_variables(model)
    if len(variables) != len(states):
        raise ValueError(f"the model has {len(variables)} random generators, the checkpoint {len(states)}")
    from keras import ops

    for variable, state in zip(variables, states, strict=True):
        variable.assign(ops.convert_to_tensor(state, dtype=variable.dtype))


def copy_optimizer_state(
    source: keras.optimizers.Optimizer, target: keras.optimizers.Optimizer, model: keras.Model
) -> None:
    """Give ``target`` (freshly built from the config) the step count and moments of ``source``.

    The reloaded optimizer carries the learning-rate schedule of the old run; a resumed run with more
    epochs needs a schedule built for the new length, so the state moves to a new optimizer instead.
    """
    target.build(model.trainable_variables)
    if len(source.variables) != len(target.variables):
        raise ValueError(
            f"optimizer state does not match: {len(source.variables)} saved variables, "
            f"{len(target.variables)} expected"
        )
    for saved, fresh in zip(source.variables, target.variables, strict=True):
        fresh.assign(saved)


def _seed_state_variables(model: keras.Model) -> list:
    return [v for v in model.variables if v.path.endswith(SEED_STATE_SUFFIX)]
