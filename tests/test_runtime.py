"""Process-level set-up: threads per sweep job, the precision picked for the hardware, the process's age."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from aetrain.training.runtime import pool_sizes, resolve_precision, threads_per_job


@pytest.mark.parametrize(
    ("launcher", "cores", "expected"),
    [
        ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 16, None),
        ({"n_jobs": 4}, 16, 4),
        ({"n_jobs": 3}, 16, 5),  # 3 jobs x 5 threads <= 16 cores
        ({"n_jobs": 4}, 2, 1),  # more jobs than cores: one thread each, never zero
        ({"n_jobs": -1}, 16, 1),  # joblib's -1: one job per core
        ({"n_jobs": -2}, 16, 1),  # all cores but one: 15 jobs
        ({"n_jobs": -9}, 16, 2),  # 8 jobs
        ({"cpus_per_task": 8, "tasks_per_node": 1}, 64, 8),  # submitit: what SLURM grants
        ({"cpus_per_task": None, "tasks_per_node": 1}, 64, None),
    ],
)
def test_threads_per_job_shares_the_cores_between_jobs_at_once(launcher, cores, expected):
    assert threads_per_job(launcher, cores) == expected


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this system")
def test_available_cores_counts_the_cores_this_process_may_use():
    """A process pinned to one core (as taskset or SLURM would) counts one, whatever the machine has."""
    code = (
        "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "from aetrain.training.runtime import available_cores; print(available_cores())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1"


def test_seconds_since_process_start_counts_from_the_process_start():
    code = (
        "import time; time.sleep(0.6)\n"
        "from aetrain.run_folder.record import seconds_since_process_start as age; "
        "print(age())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 0.6 <= float(done.stdout) < 30


@pytest.mark.parametrize(
    ("requested", "has_gpu", "convolutional", "flags", "expected"),
    [
        ("auto", True, False, set(), "mixed_float16"),
        ("auto", True, True, set(), "mixed_float16"),
        ("auto", False, True, {"avx512f", "amx_bf16", "amx_tile"}, "mixed_bfloat16"),
        ("auto", False, True, {"avx512f", "avx512_bf16"}, "mixed_bfloat16"),
        ("auto", False, False, {"avx512f", "avx512_bf16"}, "float32"),  # dense: slower in bfloat16
        ("auto", False, True, {"avx2", "avx512f"}, "float32"),
        ("float32", True, True, {"amx_bf16"}, "float32"),
        ("mixed_bfloat16", False, False, set(), "mixed_bfloat16"),
    ],
)
def test_auto_precision_picks_what_was_measured_faster_for_the_model_on_the_hardware(
    requested, has_gpu, convolutional, flags, expected
):
    assert resolve_precision(requested, has_gpu, convolutional, flags=flags) == expected


@pytest.mark.parametrize(("setting", "expected"), [(None, "False"), ("1", "True")])
def test_the_cli_turns_numpy_hugepage_advice_off_unless_the_user_sets_it(setting, expected):
    """NumPy's madvise(MADV_HUGEPAGE) made filling the training set 5x slower (docs/performance.md)."""
    probe = (
        "import aetrain.commands.train, numpy\n"
        "from numpy._core.multiarray import _set_madvise_hugepage\n"
        "print(_set_madvise_hugepage(True))"  # returns the setting in force before the call
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if setting is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = setting
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == expected


@pytest.mark.parametrize(
    ("intra", "inter", "splits", "expected"),
    [
        (None, None, 1, (None, None)),  # whole batches: TensorFlow decides
        (3, 5, 1, (3, 5)),
        (None, None, 2, (1, 2)),  # 2 cores here (monkeypatched): one thread per slice, both at once
        (8, 8, 4, (2, 8)),  # a sweep job granted 8 threads: 4 slices of 2 threads
        (1, 1, 2, (1, 2)),  # never fewer than one thread, and the slices may always run together
    ],
)
def test_slices_share_the_thread_budget(intra, inter, splits, expected, monkeypatch):
    monkeypatch.setattr("aetrain.training.runtime.available_cores", lambda: 2)
    assert pool_sizes(intra, inter, splits) == expected


def test_keras_optional_packages_are_hidden_only_while_keras_first_loads(monkeypatch):
    from aetrain.training import runtime

    monkeypatch.delitem(sys.modules, "keras", raising=False)  # restored, with the rest, after the test
    for package in runtime.KERAS_OPTIONAL_PACKAGES:
        monkeypatch.delitem(sys.modules, package, raising=False)
    with runtime._keras_optional_packages_hidden():
        for package in runtime.KERAS_OPTIONAL_PACKAGES:  # what Keras tries, and goes without
            with pytest.raises(ImportError):
                importlib.import_module(package)
    assert not set(runtime.KERAS_OPTIONAL_PACKAGES) & set(sys.modules)  # importable again (t-SNE)
    monkeypatch.setitem(sys.modules, "keras", object())  # Keras already loaded: nothing to hide
    with runtime._keras_optional_packages_hidden():
        assert "sklearn" not in sys.modules


@pytest.mark.tensorflow_only
def test_a_tensorflow_start_loads_neither_jax_nor_kerass_optional_packages():
    """TFLite imports JAX where it is installed and Keras its optional packages: fractions of a second
    of every TensorFlow process's start, for features aetrain never uses."""
    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from aetrain.training.runtime import import_keras_quietly as k; k(); print(','.join("
            "n for n in ('jax', 'sklearn', 'pandas', 'matplotlib', 'tensorflow') if n in sys.modules))",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.splitlines()[-1] == "tensorflow"
