"""Checkpoints that never exist half-written, that say what they are, and that are checked on the way in.

A ``.keras`` file is a zip; aetrain adds ``aetrain.json`` (the run config, epoch, history) to it
before the atomic rename, so a checkpoint found alone still tells how it was made.

Every checkpoint aetrain reads may have been damaged or crafted since. Before Keras sees one,
:func:`check_checkpoint_whole` tests every member's CRC and refuses layer classes that are neither
Keras's nor aetrain's (a ``Lambda``, a class from another module); :func:`read_metadata` refuses
anything but a JSON object; :func:`load_checkpoint` keeps Keras's safe mode on and, given the config
the file carries, refuses a model that config would not build. All three raise
:class:`CheckpointRefused` with one paragraph naming the file. Only ``zipfile`` and ``json`` are
needed until Keras loads the model: commands check a path before TensorFlow is imported.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aetrain import exit_codes
from aetrain.errors import AetrainError
from aetrain.run_folder.atomic_files import atomic_path

__all__ = [
    "METADATA_NAME",
    "CheckpointRefused",
    "check_checkpoint_whole",
    "copy_optimizer_state",
    "load_checkpoint",
    "read_metadata",
    "restore_seed_generator_states",
    "save_checkpoint",
    "seed_generator_states",
]

if TYPE_CHECKING:
    import keras

    from aetrain.config import RunConfig

METADATA_NAME = "aetrain.json"
SEED_STATE_SUFFIX = "seed_generator_state"
# What Keras needs to rebuild a model (config.json, model.weights.h5) and what aetrain adds.
REQUIRED_MEMBERS = ("config.json", "model.weights.h5", METADATA_NAME)
# Layers and objects a checkpoint may name: Keras's own and aetrain's registered ones. A Lambda
# carries code; safe mode would refuse it too, but with a traceback-shaped message.
ALLOWED_MODULE_ROOTS = ("keras", "aetrain")
REFUSED_CLASSES = frozenset({"Lambda", "__lambda__", "function"})
FIX = (
    "Use another checkpoint of the run (checkpoints/last.keras or checkpoints/best.keras), a copy "
    "from a backup, or train again."
)


class CheckpointRefused(AetrainError):
    """A checkpoint aetrain will not load: damaged, foreign, or not the model its config describes."""

    exit_code = exit_codes.CONFIG

    def __init__(self, path: Path, problem: str, fix: str = FIX) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"The checkpoint {path} {problem} {fix}".strip())


def check_checkpoint_whole(path: Path) -> None:
    """Refuse ``path`` unless it is a whole .keras archive of Keras and aetrain classes only.

    Reads every member (zipfile's CRC check), so a flipped byte anywhere, in ``model.weights.h5``
    included, is found here and not halfway through loading.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointRefused(
            path, f"is not a whole .keras file (a .keras file is a zip archive; this one gave: {err})."
        ) from None
    try:
        with archive:
            corrupt = archive.testzip()
            names = set(archive.namelist())
            layers = json.loads(archive.read("config.json")) if "config.json" in names else None
    except (OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error) as err:
        raise CheckpointRefused(path, f"is damaged: its archive cannot be read ({err}).") from None
    except ValueError as err:  # config.json not UTF-8 / not JSON
        raise CheckpointRefused(path, f"is damaged: its config.json is not valid JSON ({err}).") from None
    if corrupt is not None:
        raise CheckpointRefused(
            path,
            f"is damaged: its member {corrupt} fails its CRC check (its bytes changed after aetrain "
            "wrote it: a disk error, an interrupted copy, or an edit).",
        )
    missing = [name for name in REQUIRED_MEMBERS if name not in names]
    if missing:
        raise CheckpointRefused(path, f"is not a whole aetrain checkpoint: it lacks {', '.join(missing)}.")
    foreign = _foreign_class(layers)
    if foreign:
        raise CheckpointRefused(
            path,
            f"names a class aetrain does not load ({foreign}): only Keras layers and aetrain's own "
            "are allowed, so this file was not written by aetrain or was edited. Nothing in it was run.",
        )


def read_metadata(checkpoint: Path) -> dict[str, Any]:
    """aetrain's metadata inside a ``.keras`` zip ({} when absent), without importing Keras.

    OSError and zipfile.BadZipFile come through for a file that is no zip at all; a metadata member
    that is not a JSON object is CheckpointRefused.
    """
    with zipfile.ZipFile(checkpoint) as archive:
        if METADATA_NAME not in archive.namelist():
            return {}
        raw = archive.read(METADATA_NAME)
    try:
        metadata = json.loads(raw)
    except ValueError as err:  # UnicodeDecodeError and JSONDecodeError included
        raise CheckpointRefused(
            checkpoint, f"is damaged: its {METADATA_NAME} is not valid JSON ({err})."
        ) from None
    if not isinstance(metadata, dict):
        raise CheckpointRefused(
            checkpoint,
            f"is damaged: its {METADATA_NAME} holds a {type(metadata).__name__}, not a JSON object.",
        )
    return metadata


def save_checkpoint(model: keras.Model, path: Path, metadata: dict[str, Any]) -> None:
    """Write ``model`` (with optimizer state) and ``metadata`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp, overwrite=True)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA_NAME, json.dumps(metadata, indent=2, default=float))


def load_checkpoint(path: Path, compile: bool = True, expected: RunConfig | None = None) -> keras.Model:
    """Reload an aetrain checkpoint, or raise CheckpointRefused naming it.

    The archive is checked whole first; Keras loads it in safe mode (no code from the file runs);
    with ``expected`` (the config the checkpoint carries, validated) the model must be the one that
    config builds. aetrain.models.build is imported first: it registers every custom layer. A
    tied-weights decoder is tied to its encoder again (its kernels are the encoder's, saved once).
    """
    check_checkpoint_whole(path)
    import keras

    import aetrain.models.build  # noqa: F401 (registers every custom layer before load_model)
    from aetrain.models.dense import tie_dense_weights

    try:
        model = tie_dense_weights(keras.models.load_model(path, compile=compile, safe_mode=True))
    except Exception as err:  # Keras reports a bad file with many exception types
        raise CheckpointRefused(path, f"cannot be loaded as a Keras model ({_first_line(err)}).") from None
    if expected is not None:
        check_model_matches(path, model, expected)
    return model


def check_model_matches(path: Path, model: keras.Model, cfg: RunConfig) -> None:
    """Refuse a model that is not the one ``cfg`` builds (another variant, latent size, layer widths).

    Builds the config's model and compares the shapes of every weight: cheap for aetrain's models,
    and it catches an ``aetrain.json`` that was swapped or edited.
    """
    import keras

    from aetrain.models.build import build_model

    reference = build_model(cfg)
    made = [tuple(v.shape) for v in reference.weights]
    found = [tuple(v.shape) for v in model.weights]
    names = {layer.name for layer in model.layers}
    del reference
    if found != made or not {"encoder", "decoder"} <= names or not isinstance(model, keras.Model):
        raise CheckpointRefused(
            path,
            f"holds a model that is not the one its own {METADATA_NAME} describes "
            f"(variant={cfg.variant.name}, latent_size={cfg.latent_size}: {_parameters(made):,} "
            f"parameters in {len(made)} weights expected, {_parameters(found):,} in {len(found)} found), "
            "so the file was assembled or edited outside aetrain.",
        )


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


def _foreign_class(tree: Any) -> str | None:
    """The first class in a Keras ``config.json`` that is not Keras's or aetrain's, described."""
    if isinstance(tree, list):
        return next(filter(None, map(_foreign_class, tree)), None)
    if not isinstance(tree, dict):
        return None
    name, module = tree.get("class_name"), tree.get("module")
    if isinstance(name, str) and name in REFUSED_CLASSES:
        return f"{name} from {module}"
    if module is not None and (
        not isinstance(module, str) or module.split(".")[0] not in ALLOWED_MODULE_ROOTS
    ):
        return f"{name} from module {module}"
    registered = tree.get("registered_name")
    if (
        isinstance(registered, str)
        and ">" in registered
        and registered.split(">")[0] not in ALLOWED_MODULE_ROOTS
    ):
        return f"{name} registered as {registered}"
    return next(filter(None, map(_foreign_class, tree.values())), None)


def _parameters(shapes: list[tuple[int, ...]]) -> int:
    total = 0
    for shape in shapes:
        size = 1
        for dim in shape:
            size *= int(dim or 0)
        total += size
    return total


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__
