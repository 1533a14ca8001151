"""Process-wide Keras set-up: a quiet import, threads, determinism, precision, the device, JAX's
compilation cache.

Called by ``commands/train.py`` and ``training/loop.py`` only; models and data stay free of global state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from aetrain.config import TrainerConfig
from aetrain.quiet_imports import hidden, stderr_silenced

#: Packages Keras imports at start-up where they are installed, for what aetrain never asks of it:
#: its scikit-learn wrappers, pandas inputs and matplotlib galleries.
KERAS_OPTIONAL_PACKAGES = ("sklearn", "pandas", "matplotlib")


@contextlib.contextmanager
def _keras_optional_packages_hidden() -> Iterator[None]:
    """KERAS_OPTIONAL_PACKAGES hidden while Keras loads: every process starts faster, by about half a
    second (docs/performance.md). They stay importable afterwards (t-SNE, pictures)."""
    if "keras" in sys.modules:
        yield
        return
    with contextlib.ExitStack() as hiding:
        for package in KERAS_OPTIONAL_PACKAGES:
            hiding.enter_context(hidden(package))
        yield


def _import_keras_and_tensorflow():
    """Keras first, under the hiding (TensorFlow imports Keras too): the TensorFlow module. JAX is
    hidden too: TFLite imports it where installed, for converting JAX functions, which aetrain never
    asks of it (on Keras's JAX backend it is Keras's own)."""
    tflite_jax = hidden("jax") if _on_tensorflow() else contextlib.nullcontext()
    with _keras_optional_packages_hidden(), tflite_jax:
        import keras  # noqa: F401
        import tensorflow as tf

    return tf


def import_tensorflow_quietly(verbose: bool = False):
    """Import TensorFlow without its start-up log lines (unless ``verbose``); returns the module."""
    if verbose:
        return _import_keras_and_tensorflow()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr_silenced():
        tf = _import_keras_and_tensorflow()
        tf.config.list_physical_devices()  # CUDA probing logs here, once
    tf.get_logger().setLevel("ERROR")
    return tf


def import_keras_quietly(verbose: bool = False):
    """Import Keras on the backend chosen before (aetrain.training.backend), without start-up log
    lines; TensorFlow only when Keras runs on it. Returns the keras module."""
    if _on_tensorflow():
        import_tensorflow_quietly(verbose)  # which imports Keras
    elif "keras" not in sys.modules:
        if not verbose:  # JAX logs its search for a TPU ("Unable to initialize backend 'tpu'") at INFO
            logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
        with _keras_optional_packages_hidden(), contextlib.nullcontext() if verbose else stderr_silenced():
            import keras
    import keras

    return keras


def _on_tensorflow() -> bool:
    keras = sys.modules.get("keras")
    if keras is not None:
        return keras.config.backend() == "tensorflow"
    return os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"


def configure_keras(
    trainer: TrainerConfig,
    seed: int,
    batch_splits: int = 1,
    convolutional: bool = False,
    cache_folder: Path | None = None,
) -> str:
    """Threads, determinism, precision and seeds for one run (safe to call again in a multirun); the
    thread pools and determinism are TensorFlow's, left alone on another backend; on JAX, compiled
    steps are kept under ``cache_folder`` (``trainer.compilation_cache``).

    Returns the precision policy in force (``trainer.precision=auto`` resolved for this machine).
    """
    keras = import_keras_quietly()
    keras.utils.clear_session(free_memory=True)
    if keras.config.backend() == "tensorflow":
        tf = import_tensorflow_quietly()
        _set_threads(tf, *pool_sizes(trainer.intra_op_threads, trainer.inter_op_threads, batch_splits))
        if trainer.deterministic:
            tf.config.experimental.enable_op_determinism()
    elif keras.config.backend() == "jax" and trainer.compilation_cache and cache_folder is not None:
        keep_compiled_steps(cache_folder / COMPILED_STEPS_FOLDER)
    precision = resolve_precision(trainer.precision, has_gpu=has_gpu(), convolutional=convolutional)
    keras.mixed_precision.set_dtype_policy(precision)
    set_random_seed(keras, seed)
    return precision


def set_random_seed(keras, seed: int) -> None:
    """``keras.utils.set_random_seed``, which also seeds TensorFlow wherever it is installed: on another
    backend TensorFlow is hidden while it runs. Keras keeps that answer for the process, so its
    saving code skips its TensorFlow type checks too: importing TensorFlow for them took seconds of a
    JAX run (docs/performance.md). aetrain's own TensorFlow code (a TensorBoard log) still imports it."""
    if keras.config.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)
        return
    with hidden("tensorflow"):
        keras.utils.set_random_seed(seed)


COMPILED_STEPS_FOLDER = "xla"  # in aetrain's cache folder
COMPILED_STEPS_MAX_BYTES = 1 << 30  # JAX evicts the least recently used programs beyond it


def keep_compiled_steps(folder: Path) -> None:
    """JAX's persistent compilation cache in ``folder``: a later run of the same model on this machine
    (a rerun, a resume, a sweep's next job) loads its compiled steps instead of compiling them again,
    which takes seconds of every start-up (docs/performance.md). Every program is kept, however quick
    its compilation. A cache folder the user set (``JAX_COMPILATION_CACHE_DIR``) is left as it is."""
    import jax

    if jax.config.values.get("jax_compilation_cache_dir"):
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # an unwritable cache folder: compile as before (the data cache says so already)
    if not os.access(folder, os.W_OK):
        return
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_compilation_cache_max_size", COMPILED_STEPS_MAX_BYTES)


def pool_sizes(intra: int | None, inter: int | None, batch_splits: int) -> tuple[int | None, int | None]:
    """(intra-op, inter-op) pool sizes; None lets TensorFlow decide (one thread per core).

    With ``batch_splits`` > 1 (aetrain.training.batch_splits) the slices run side by side and share the
    threads: ``intra`` (else every core) is divided between them, and at least ``batch_splits`` ops
    may run at once.
    """
    if batch_splits <= 1:
        return intra, inter
    return max(1, thread_budget(intra) // batch_splits), max(inter or 0, batch_splits)


def thread_budget(intra: int | None) -> int:
    """Threads one run's ops may use at once: ``trainer.intra_op_threads``, else every core granted."""
    return intra or available_cores()


def has_gpu() -> bool:
    """Whether Keras's backend sees a GPU (it then runs there)."""
    return _gpu_name() is not None


def _gpu_name() -> str | None:
    """The first GPU Keras's backend sees (with how many there are), else None."""
    keras = import_keras_quietly()
    if keras.config.backend() == "jax":
        import jax

        gpus = [device for device in jax.devices() if device.platform == "gpu"]
        if not gpus:
            return None
        return gpus[0].device_kind + (f" (x{len(gpus)})" if len(gpus) > 1 else "")
    tf = import_tensorflow_quietly()
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", gpus[0].name) + (f" (x{len(gpus)})" if len(gpus) > 1 else "")


def restore_default_precision() -> None:
    """Back to Keras's float32 policy after a run (models already built keep their own policies)."""
    if "keras" in sys.modules:
        sys.modules["keras"].mixed_precision.set_dtype_policy("float32")


# CPU features that run bfloat16 matrix maths natively (oneDNN uses them); without them it is emulated.
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def resolve_precision(
    requested: str, has_gpu: bool, convolutional: bool, flags: set[str] | None = None
) -> str:
    """``auto``: float16 compute on a GPU (tensor cores); on a CPU with AMX or AVX512-BF16, bfloat16 for
    a model whose steps are convolutions (``convolutional``), the one kind it made faster there;
    float32 elsewhere (a dense model's steps ran slower in bfloat16, and a denoiser's test MSE was
    worse: docs/performance.md). Any other value is taken as asked. Weights stay float32 in every
    mixed policy, and the models keep their output layer in float32."""
    if requested != "auto":
        return requested
    if has_gpu:
        return "mixed_float16"
    flags = cpu_flags() if flags is None else flags
    native = any(flag in flags for flag in BFLOAT16_CPU_FLAGS)
    return "mixed_bfloat16" if native and convolutional else "float32"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where that file does not exist."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags":
                return set(value.split())
    except OSError:
        pass
    return set()


def _set_threads(tf, intra: int | None, inter: int | None) -> None:
    """Thread pools can only be sized before TF's first op; a later identical request is fine."""
    current = (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
    wanted = (intra or 0, inter or 0)
    if current == wanted:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(wanted[0])
        tf.config.threading.set_inter_op_parallelism_threads(wanted[1])
    except RuntimeError:
        pass  # TF already started in this process (a sequential multirun): keep its pools


def thread_pools() -> dict[str, int]:
    """The sizes TensorFlow's thread pools were given (0: TensorFlow's own choice, one per core); on
    another backend, the cores it may use (its affinity mask) for both."""
    if not _on_tensorflow():
        return {"intra_op": available_cores(), "inter_op": available_cores()}
    tf = import_tensorflow_quietly()
    return {
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def describe_device() -> str:
    """'GPU: <name>' when Keras's backend sees one (it then runs there), else 'CPU (<n> cores)'."""
    gpu = _gpu_name()
    return f"GPU: {gpu}" if gpu is not None else f"CPU ({os.cpu_count()} cores)"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask: what SLURM or taskset granted)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_job(launcher: Mapping[str, Any], cores: int) -> int | None:
    """TensorFlow threads for one job of a sweep, so jobs running at once share the cores.

    A joblib launcher runs ``n_jobs`` jobs at once (-1: one per core, -2: all but one, as joblib
    counts), so each gets ``cores // n_jobs``; a submitit launcher grants ``cpus_per_task``. Any other
    launcher runs one job at a time: None, TensorFlow decides.
    """
    if launcher.get("cpus_per_task"):
        return int(launcher["cpus_per_task"])
    n_jobs = launcher.get("n_jobs")
    if not n_jobs:
        return None
    at_once = n_jobs if n_jobs > 0 else max(cores + 1 + n_jobs, 1)
    return max(cores // at_once, 1)
