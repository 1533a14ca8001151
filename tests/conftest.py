"""Shared fixtures: composed configs, a tiny Fashion-MNIST on disk, quiet TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The suite trains on TensorFlow (trainer.backend=auto follows KERAS_BACKEND), as in-process runs must:
# the test workers load Keras once; tests/test_backend.py trains on JAX in processes of their own.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if os.environ.get("PYTEST_XDIST_WORKER"):  # make test: the workers share the cores, one op thread each
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import pytest
from hydra import compose, initialize_config_dir

from aetrain.commands.train import config_dir
from aetrain.config import RunConfig, validate

from idx_files import small_fashion_arrays, write_fashion_files

TINY_TRAIN, TINY_TEST = 320, 200


def compose_config(*overrides: str):
    """The config Hydra would compose for ``aetrain OVERRIDES`` (unchecked DictConfig)."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def tiny_run_config(data_dir: Path, *overrides: str) -> RunConfig:
    """``aetrain trainer=smoke OVERRIDES`` on the tiny data: 192 training, 64 validation images,
    eagerly (``trainer.run_eagerly=false`` among ``overrides`` traces, as a real run does)."""
    return validate(
        compose_config(
            "trainer=smoke",
            f"data.dir={data_dir}",
            "data.limit=256",
            "data.val_size=64",
            "data.test_limit=null",
            "trainer.batch_size=32",
            "trainer.progress=false",
            "trainer.run_eagerly=true",
            *overrides,
        )
    )


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """320 training and 200 test images in the original IDX gz format."""
    folder = tmp_path_factory.mktemp("fashion-mnist")
    return write_fashion_files(folder, small_fashion_arrays(TINY_TRAIN, TINY_TEST))


@pytest.fixture
def make_config(tiny_data_dir, tmp_path, monkeypatch):
    """RunConfig for ``aetrain trainer=smoke OVERRIDES`` on the tiny data, caches in tmp_path."""
    monkeypatch.setenv("AETRAIN_CACHE_DIR", str(tmp_path / "cache"))

    def make(*overrides: str) -> RunConfig:
        return tiny_run_config(tiny_data_dir, *overrides)

    return make


@pytest.fixture(scope="session")
def trained_runs(tiny_data_dir, tmp_path_factory):
    """Run folders of one-epoch trainings on the tiny data, made once per session and shared.

    ``trained_runs("variant=conv_vae", ...)`` trains on first use and returns the run folder after.
    """
    import io

    from rich.console import Console

    from aetrain.training import loop as train

    made: dict[tuple[str, ...], Path] = {}
    patch = pytest.MonkeyPatch()
    patch.setenv("AETRAIN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))

    def trained(*overrides: str) -> Path:
        if overrides not in made:
            cfg = tiny_run_config(tiny_data_dir, *overrides)
            folder = tmp_path_factory.mktemp("run")
            train.run(cfg, folder, Console(file=io.StringIO(), width=100))
            made[overrides] = folder
        return made[overrides]

    yield trained
    patch.undo()


@pytest.fixture(scope="session")
def once_per_session(tmp_path_factory):
    """``once_per_session(NAME, make)``: ``make()``'s JSON-able result, made by the first test worker
    that asks and read back by the others (a module fixture is otherwise made again by every worker
    that runs one of its module's tests)."""
    import json

    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest-xdist: the workers' temp folders share a parent
        shared = shared.parent

    def once(name: str, make):
        result = shared / f"{name}.json"
        with FileLock(str(result) + ".lock"):
            if not result.exists():
                result.write_text(json.dumps(make()))
            return json.loads(result.read_text())

    return once


def pytest_collection_modifyitems(config, items):
    """Slow tests first, by module: spread over the cores (``make test``), the long tests then start
    early and the quick ones fill the gaps at the end. Under ``make test-jax`` (the workers' Keras on
    JAX) the tests of TensorFlow's own features are left to ``make test``, which runs them."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: modules stay in order
    if os.environ["KERAS_BACKEND"] != "tensorflow":
        only_there = pytest.mark.skip(reason="a TensorFlow feature: make test runs it on TensorFlow")
        for item in items:
            if item.get_closest_marker("tensorflow_only"):
                item.add_marker(only_there)
