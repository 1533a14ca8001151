"""trainer.backend: how auto chooses, what is refused, and a checkpoint that crosses backends (trained
on one, resumed, evaluated and exported on the other)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aetrain.config import ConfigError, validate
from aetrain.training import backend
from aetrain.training.backend import backend_for_trained_run, choose_backend

from cli_runs import command, environment, smoke_args
from conftest import compose_config


@pytest.fixture
def fresh_process(monkeypatch):
    """As in a process where Keras is not loaded yet, with both backends installed."""
    monkeypatch.setattr(backend, "loaded_backend", lambda: None)
    monkeypatch.setattr(backend, "installed", lambda name: True)
    return monkeypatch


def test_auto_follows_keras_backend_else_the_measured_rule_per_kind_of_model(fresh_process):
    dense = compose_config("variant=dense")
    conv = compose_config("variant=conv")
    for run in (dense, conv):  # KERAS_BACKEND, when set, decides
        choice = choose_backend("auto", environment={"KERAS_BACKEND": "tensorflow"}, run=validate(run))
        assert (choice.name, choice.why) == ("tensorflow", "auto: KERAS_BACKEND")
    for run, kind in ((dense, "dense"), (conv, "convolutional")):
        choice = choose_backend("auto", environment={}, run=validate(run))
        assert choice.name == backend.FASTER_ON_CPU[kind] and kind in choice.why
    assert (
        choose_backend("auto", environment={}, run=validate(compose_config("variant=vae"))).name
        == (backend.FASTER_ON_CPU["dense"])
    )
    fresh_process.setattr(backend, "installed", lambda name: name != "jax")  # no JAX: TensorFlow
    for run in (dense, conv):
        assert (
            choose_backend("auto", environment={"KERAS_BACKEND": "jax"}, run=validate(run)).name
            == "tensorflow"
        )
    fresh_process.setattr(backend, "installed", lambda name: name != "tensorflow")  # no TensorFlow: JAX
    choice = choose_backend("auto", environment={}, run=validate(conv))
    assert (choice.name, choice.why) == ("jax", "auto: TensorFlow is not installed here")


def test_a_backend_named_outright_that_is_not_installed_is_refused_naming_the_key(fresh_process):
    fresh_process.setattr(backend, "installed", lambda name: name != "jax")
    with pytest.raises(ConfigError) as caught:
        choose_backend("jax", environment={})
    assert caught.value.key == "trainer.backend" and "aetrain[jax]" in str(caught.value)


def test_in_a_process_that_runs_keras_auto_keeps_its_backend_and_another_is_refused(fresh_process):
    fresh_process.setattr(backend, "loaded_backend", lambda: "jax")
    assert choose_backend("auto", environment={}).name == "jax"
    with pytest.raises(ConfigError) as caught:
        choose_backend("tensorflow", environment={})
    assert caught.value.key == "hydra/launcher" and "own process" in str(caught.value)


def test_a_companion_command_uses_keras_backend_else_the_runs_own(fresh_process):
    assert backend_for_trained_run("jax", {"KERAS_BACKEND": "tensorflow"}).name == "tensorflow"
    assert backend_for_trained_run("jax", {}).name == "jax"
    assert backend_for_trained_run(None, {}).name == "tensorflow"  # an older run: as auto would


def test_a_layer_that_updates_its_own_metric_in_call_is_refused_on_jax(make_config):
    """Keras's stateless JAX step drops such updates; aetrain's loss-term layers report through the
    model instead (aetrain.models.term_reporting), so the VAE and every family train there."""
    import keras

    from aetrain.models.build import build_model
    from aetrain.training.backend import check_trains_on

    class CountsItself(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seen = keras.metrics.Mean(name="seen")

        def call(self, inputs):
            self.seen.update_state(keras.ops.mean(inputs))
            return inputs

    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, CountsItself(name="counts_itself")(inputs))
    check_trains_on(model, "tensorflow", "outside")
    with pytest.raises(ConfigError) as caught:
        check_trains_on(model, "jax", "outside")
    assert caught.value.key == "trainer.backend" and "counts_itself" in str(caught.value)
    assert "TermLayer" in str(caught.value)
    check_trains_on(
        build_model(make_config("variant=vae", "variant.hidden_units=[8]", "latent_size=2")), "jax", "vae"
    )


def test_an_unknown_backend_is_refused_naming_the_key():
    with pytest.raises(ConfigError) as caught:
        validate(compose_config("trainer.backend=torch"))
    assert caught.value.key == "trainer.backend"


def test_batch_splits_are_refused_on_jax(make_config):
    from aetrain.training.batch_splits import resolve_batch_splits

    cfg = make_config("variant=conv", "trainer.batch_splits=2")
    with pytest.raises(ConfigError) as caught:
        resolve_batch_splits(cfg, cores=2, has_gpu=False, backend="jax")
    assert caught.value.key == "trainer.batch_splits"
    assert resolve_batch_splits(make_config("variant=conv"), cores=2, has_gpu=False, backend="jax") == 1


def _train(tiny_data_dir, tmp_path, run, *overrides):
    """``aetrain`` in a process of its own (Keras picks its backend once per process)."""
    done = command(
        "aetrain",
        *smoke_args(tiny_data_dir, f"hydra.run.dir={run}", "trainer.run_eagerly=false", *overrides),
        cwd=tmp_path,
        own_process=True,
        KERAS_BACKEND="",  # what auto decides, not the suite's default
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((run / "metrics.json").read_text()), done.stdout


@pytest.mark.slow
def test_a_checkpoint_trained_on_one_backend_resumes_evaluates_and_exports_on_the_other(
    tiny_data_dir, tmp_path
):
    on_jax, on_tensorflow = tmp_path / "jax_first", tmp_path / "tensorflow_first"
    # the JAX-first run keeps the weights' average too: it travels in the optimizer's state
    metrics, out = _train(tiny_data_dir, tmp_path, on_jax, "trainer.backend=jax", "trainer.ema=0.9")
    assert metrics["backend"] == "jax" and "backend jax (trainer.backend)" in " ".join(out.split())
    assert json.loads((on_jax / "manifest.json").read_text())["backend"] == "jax"
    resumed, _ = _train(
        tiny_data_dir,
        tmp_path,
        on_jax,
        f"trainer.resume={on_jax}",
        "trainer.epochs=2",
        "trainer.backend=tensorflow",
        "trainer.ema=0.9",
    )
    assert resumed["backend"] == "tensorflow" and resumed["resumed_from_epoch"] == 1
    assert resumed["epochs_completed"] == 2 and resumed["history"]["loss"][1] < resumed["history"]["loss"][0]

    _train(tiny_data_dir, tmp_path, on_tensorflow, "trainer.backend=tensorflow")
    resumed, _ = _train(
        tiny_data_dir,
        tmp_path,
        on_tensorflow,
        f"trainer.resume={on_tensorflow}",
        "trainer.epochs=2",
        "trainer.backend=jax",
    )
    assert resumed["backend"] == "jax" and resumed["epochs_completed"] == 2
    assert resumed["history"]["loss"][1] < resumed["history"]["loss"][0]

    # evaluated on the backend it last trained on (JAX), and exported from TensorFlow
    evaluated = command(
        "aetrain-evaluate",
        str(on_tensorflow),
        "--probe-steps",
        "5",
        cwd=tmp_path,
        own_process=True,
        KERAS_BACKEND="",
    )
    assert evaluated.returncode == 0, evaluated.stdout[-3000:] + evaluated.stderr[-3000:]
    report = json.loads((on_tensorflow / "eval.json").read_text())
    assert report["mse"] == pytest.approx(resumed["test"]["mse"], rel=1e-3)
    exported = command("aetrain-export", str(on_tensorflow), cwd=tmp_path, own_process=True, KERAS_BACKEND="")
    assert exported.returncode == 0, exported.stdout[-3000:] + exported.stderr[-3000:]
    assert (on_tensorflow / "export" / "encoder.tflite").is_file()


_TRAIN_AND_LIST_MODULES = """
import json, os, sys
from aetrain.commands.train import entry
sys.argv = ["aetrain", *sys.argv[2:]]
try:
    entry()
finally:
    loaded = [name for name in ("tensorflow", "sklearn", "pandas") if name in sys.modules]
    open(os.environ["LOADED_FILE"], "w").write(json.dumps(loaded))
"""


@pytest.mark.slow
def test_a_jax_run_loads_no_tensorflow_and_a_rerun_compiles_nothing_new(tiny_data_dir, tmp_path):
    """Importing TensorFlow (Keras seeds it wherever it is installed) and Keras's optional packages
    took seconds of a JAX run's start-up; compiled steps are kept in aetrain's cache folder; JAX's
    start-up log lines stay out of the run's."""
    programs = []
    for run in ("first", "second"):
        loaded = tmp_path / f"{run}.json"
        overrides = (f"hydra.run.dir={tmp_path / run}", "trainer.backend=jax", "trainer.run_eagerly=false")
        done = subprocess.run(
            [sys.executable, "-c", _TRAIN_AND_LIST_MODULES, "--", *smoke_args(tiny_data_dir, *overrides)],
            cwd=tmp_path,
            env=environment(tmp_path, LOADED_FILE=str(loaded), KERAS_BACKEND=""),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert json.loads(loaded.read_text()) == []
        assert "Unable to initialize backend" not in done.stdout + done.stderr  # JAX's TPU search, quiet
        programs.append(sorted(path.name for path in (tmp_path / "cache" / "xla").glob("*-cache")))
    assert programs[0] and programs[1] == programs[0]


_ACTIVATE_AND_REPORT_ONEDNN = """
import json, os, sys
from aetrain.training.backend import BackendChoice, activate
activate(BackendChoice(sys.argv[1], "a test"), onednn=sys.argv[2] == "onednn")
report = {"variable": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}
if sys.argv[1] == "tensorflow":
    from aetrain.training.runtime import import_keras_quietly
    import_keras_quietly()
    from tensorflow.python.util import _pywrap_util_port
    report["onednn"] = _pywrap_util_port.IsMklEnabled()
print(json.dumps(report))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend_name", "wanted", "users_setting", "expected"),
    [
        ("tensorflow", "onednn", None, {"variable": "1", "onednn": True}),
        ("tensorflow", "onednn", "0", {"variable": "0", "onednn": False}),  # the user's word stands
        ("jax", "onednn", None, {"variable": None}),
        ("tensorflow", "deterministic", None, {"variable": None}),  # TensorFlow's own default
    ],
)
def test_tensorflow_loads_with_onednn_kernels_unless_the_user_says_otherwise(
    tmp_path, backend_name, wanted, users_setting, expected
):
    """TensorFlow leaves its oneDNN kernels off on CPUs without AVX512-VNNI, AVX512-BF16 or AMX, where
    they trained faster (docs/performance.md): aetrain turns them on as it activates TensorFlow."""
    env = environment(tmp_path)
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if users_setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = users_setting
    done = subprocess.run(
        [sys.executable, "-c", _ACTIVATE_AND_REPORT_ONEDNN, backend_name, wanted],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert {key: report[key] for key in expected} == expected
