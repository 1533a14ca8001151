"""Which Keras backend a run uses (``trainer.backend``), chosen before anything imports Keras.

Keras reads ``KERAS_BACKEND`` once, at its first import, and a process keeps that backend. So aetrain
decides from the config, sets the variable, and only then lets Keras load.

``auto``: ``KERAS_BACKEND`` when the user set it, else the backend measured the faster from process
start to exit for the model's kind of step on a CPU (FASTER_ON_CPU; docs/performance.md): JAX for the
dense and variational models, TensorFlow for the convolutional ones. In a process where Keras is
already loaded (a sequential sweep's later job), ``auto`` keeps that backend, and a backend named
outright that differs is refused, naming ``hydra/launcher``.

No Keras, TensorFlow or JAX is imported here.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from aetrain import exit_codes
from aetrain.config import ConfigError
from aetrain.errors import AetrainError
from aetrain.quiet_imports import prefer_onednn_kernels

BACKENDS = ("tensorflow", "jax")
INSTALL = {"jax": "pip install 'aetrain[jax]'", "tensorflow": "pip install tensorflow"}


@dataclass(frozen=True)
class BackendChoice:
    """The backend a run uses and why, as the start-up log line says it."""

    name: str
    why: str

    def describe(self) -> str:
        return f"{self.name} ({self.why})"


def installed(backend: str) -> bool:
    """Whether ``backend``'s package can be imported here (found without importing it)."""
    try:
        return importlib.util.find_spec(backend) is not None
    except ValueError:  # sys.modules holds None for it: marked as not importable
        return False


def needs_tensorflow(what: str) -> None:
    """NeedsTensorFlow (exit 2) for ``what`` where TensorFlow is not installed."""
    if not installed("tensorflow"):
        raise NeedsTensorFlow(what)


class NeedsTensorFlow(AetrainError):
    """Something only TensorFlow does, asked for where it is not installed."""

    exit_code = exit_codes.CONFIG

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} needs TensorFlow, which is not installed here (this environment trains on Keras's "
            "JAX backend without it). Install it (`pip install tensorflow`), or run this command where "
            "it is installed: a checkpoint is the same file on either backend."
        )


def loaded_backend() -> str | None:
    """The backend Keras runs on in this process, or None while Keras is not loaded."""
    keras = sys.modules.get("keras")
    return keras.config.backend() if keras is not None else None


#: What ``auto`` trains on, on a CPU, by the kind of step a model takes: the faster from process start
#: to exit, measured against each other (bench/RESULTS.md; docs/performance.md, "Backends").
FASTER_ON_CPU = {"convolutional": "tensorflow", "dense": "jax"}


def choose_backend(requested: str, environment: Mapping[str, str] = os.environ, run=None) -> BackendChoice:
    """The backend for a run asking ``requested`` (``trainer.backend``) with the config ``run``;
    ConfigError for a backend named outright that cannot be used here."""
    loaded = loaded_backend()
    if requested != "auto":
        if not installed(requested):
            raise ConfigError(
                "trainer.backend",
                requested,
                f"one of {[name for name in BACKENDS if installed(name)] + ['auto']}",
                f"{requested} is not installed here: {INSTALL[requested]}, or train on another backend.",
            )
        if loaded is not None and loaded != requested:
            raise _already_loaded(requested, loaded)
        return BackendChoice(requested, "trainer.backend")
    if loaded is not None:
        return BackendChoice(loaded, "auto: Keras is already loaded with it in this process")
    return auto_backend_for(run, environment)


def auto_backend_for(run, environment: Mapping[str, str] = os.environ) -> BackendChoice:
    """What ``trainer.backend=auto`` trains the run ``run`` on in a new process here (the benchmark
    marks it): ``KERAS_BACKEND`` when set, JAX where TensorFlow is missing, else FASTER_ON_CPU."""
    from_environment = environment.get("KERAS_BACKEND")
    if from_environment in BACKENDS and installed(from_environment):
        return BackendChoice(from_environment, "auto: KERAS_BACKEND")
    if not installed("tensorflow") and installed("jax"):
        return BackendChoice("jax", "auto: TensorFlow is not installed here")
    if run is None:
        return BackendChoice("tensorflow", "auto: no model to choose for")
    from aetrain.models.family import family_of  # declarations only: no Keras

    kind = "convolutional" if family_of(run).convolutional else "dense"
    faster = FASTER_ON_CPU[kind]
    if not installed(faster):
        return BackendChoice("tensorflow", f"auto: JAX would be faster for {kind} models, and is not "
                             f"installed here ({INSTALL['jax']})")  # fmt: skip
    return BackendChoice(faster, f"auto: the faster from start to exit for {kind} models on a CPU")


def activate(choice: BackendChoice, onednn: bool = True) -> None:
    """Make ``choice`` the backend Keras loads with (before its first import), TensorFlow with its
    oneDNN kernels unless ``onednn`` is false (a deterministic run: two runs under load differed in
    their last digits with them); ConfigError when Keras already runs on another one in this process."""
    loaded = loaded_backend()
    if loaded is None:
        os.environ["KERAS_BACKEND"] = choice.name
        if choice.name == "tensorflow" and onednn:
            prefer_onednn_kernels()
    elif loaded != choice.name:
        raise _already_loaded(choice.name, loaded)


def _already_loaded(wanted: str, loaded: str) -> ConfigError:
    return ConfigError(
        "hydra/launcher",
        "basic",
        "a launcher that runs each job in its own process (hydra/launcher=parallel or submitit_local)",
        f"This job needs Keras's {wanted} backend, and this process already runs Keras on {loaded} (a "
        "sequential sweep runs its jobs in one process, and Keras cannot change its backend there). "
        f"Run the sweep with its own process per job, or give every job the same trainer.backend.",
    )


def backend_for_trained_run(
    trained_on: str | None, environment: Mapping[str, str] = os.environ
) -> BackendChoice:
    """The backend a companion command loads a run with: ``KERAS_BACKEND`` when set, else the one the
    run trained on (``trained_on``, from its manifest) when installed here, else what ``auto`` would
    choose for it. A checkpoint is the same file on either backend."""
    loaded = loaded_backend()
    if loaded is not None:
        return BackendChoice(loaded, "Keras is already loaded with it in this process")
    from_environment = environment.get("KERAS_BACKEND")
    if from_environment in BACKENDS and installed(from_environment):
        return BackendChoice(from_environment, "KERAS_BACKEND")
    if trained_on in BACKENDS and installed(trained_on):
        return BackendChoice(trained_on, "the backend it trained on")
    return choose_backend("auto", environment)


def check_trains_on(model, backend: str, variant: str) -> None:
    """ConfigError when ``model`` cannot train on ``backend``: on JAX, a layer that updates metrics of
    its own inside ``call`` is not recorded by Keras's stateless steps (aetrain.models.term_reporting
    says how a layer reports its loss terms on both backends)."""
    if backend != "jax":
        return
    import keras

    from aetrain.models.term_reporting import TermLayer

    def reporting(layers) -> list[str]:
        found = []
        for layer in layers:
            if isinstance(layer, keras.Model):
                found += reporting(layer.layers)
            elif layer.metrics and not isinstance(layer, TermLayer):
                found.append(layer.name)
        return found

    layers = reporting(model.layers)
    if layers:
        raise ConfigError(
            "trainer.backend",
            "jax",
            "tensorflow (or auto)",
            f"The {variant} variant updates metrics inside its layers ({', '.join(layers)}), which "
            "Keras's JAX backend does not record: make them aetrain.models.term_reporting.TermLayer "
            "layers, or train on TensorFlow.",
        )
