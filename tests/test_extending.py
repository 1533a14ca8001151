"""Adding a variant is one YAML file and one module, outside aetrain (docs/extending.md): declared in the
test itself, trained through the real CLI, reloaded; a bad declaration is refused before TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from aetrain.config import ConfigError, registry, validate

from cli_runs import command, plain_text, smoke_args
from conftest import compose_config

TINY_YAML = """\
name: tiny
_declared_in_: tiny_variant
units: 16
activation: relu
output_activation: sigmoid
"""

TINY_MODULE = '''\
"""A variant declared outside aetrain: one hidden Dense layer each way."""

import math
from dataclasses import dataclass

from aetrain.config import Variant, declare, require


@dataclass
class TinyVariant(Variant):
    name: str = "tiny"
    units: int = 16
    activation: str = "relu"
    output_activation: str = "sigmoid"

    def check(self, run):
        super().check(run)  # activation and output_activation
        require(1 <= self.units <= 512, "variant.units", self.units, "an integer from 1 to 512")


def build_tiny(cfg):
    import keras

    from aetrain.data import spec_for

    shape = spec_for(cfg.data).image_shape
    encoder = keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Flatten(),
            keras.layers.Dense(cfg.variant.units, activation=cfg.variant.activation),
            keras.layers.Dense(cfg.latent_size, activation=cfg.variant.activation, name="codings"),
        ],
        name="encoder",
    )
    decoder = keras.Sequential(
        [
            keras.Input((cfg.latent_size,)),
            keras.layers.Dense(cfg.variant.units, activation=cfg.variant.activation),
            keras.layers.Dense(math.prod(shape), activation=cfg.variant.output_activation),
            keras.layers.Reshape(shape),
        ],
        name="decoder",
    )
    return keras.Sequential([keras.Input(shape), encoder, decoder], name="tiny_autoencoder")


declare("variant", "tiny", TinyVariant, build=build_tiny)
'''


def outside_variant(tmp_path: Path, yaml: str = TINY_YAML, module: str | None = TINY_MODULE) -> Path:
    """conf/variant/tiny.yaml under ``tmp_path`` and (unless None) tiny_variant.py beside it."""
    (tmp_path / "conf" / "variant").mkdir(parents=True)
    (tmp_path / "conf" / "variant" / "tiny.yaml").write_text(yaml)
    if module is not None:
        (tmp_path / "tiny_variant.py").write_text(module)
    return tmp_path / "conf"


def run_command(program: str, *args: str, cwd: Path, module_dir: Path, without_tensorflow: bool = False):
    """``program`` (a console script beside ``aetrain``, or a path) with ``module_dir`` on PYTHONPATH."""
    python_path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(module_dir)]))
    return command(program, *args, cwd=cwd, without_tensorflow=without_tensorflow, PYTHONPATH=python_path)


@pytest.mark.slow
def test_a_new_variant_is_one_yaml_file_and_one_module(tiny_data_dir, tmp_path):
    conf = outside_variant(tmp_path)
    cwd, run = tmp_path / "work", tmp_path / "work" / "run"
    cwd.mkdir()
    trained = run_command(
        "aetrain",
        # float32: the scores compared below then agree to the digit (bfloat16 sums round by batch)
        *smoke_args(
            tiny_data_dir, "variant=tiny", "variant.units=12", "latent_size=4", "trainer.precision=float32"
        ),
        f"hydra.searchpath=[file://{conf}]",
        f"hydra.run.dir={run}",
        cwd=cwd,
        module_dir=tmp_path,
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["config"]["variant"] == {
        "name": "tiny",
        "units": 12,
        "activation": "relu",
        "output_activation": "sigmoid",
        "_declared_in_": "tiny_variant",
    }

    # The checkpoint names its variant's module: aetrain-evaluate reloads it and scores the same model.
    evaluated = run_command("aetrain-evaluate", str(run), "--probe-steps", "5", cwd=cwd, module_dir=tmp_path)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    report = json.loads((run / "eval.json").read_text())
    assert report["mse"] == pytest.approx(metrics["test"]["mse"], rel=1e-4)

    # Keras alone reloads it too (Keras layers only), with the same outputs as the model it rebuilds.
    check = run_command(
        sys.executable,
        "-c",
        "import sys, numpy as np, keras, aetrain\n"
        "from aetrain.run_folder.trained_run import locate_trained_run\n"
        "from aetrain.models.build import build_model\n"
        "run = locate_trained_run(sys.argv[1])\n"
        "model = keras.models.load_model(run.checkpoint)\n"
        "keras.config.set_dtype_policy(model.get_layer('decoder').layers[0].dtype_policy)  # the run's\n"
        "rebuilt = build_model(run.config)\n"
        "rebuilt.set_weights(model.get_weights())\n"
        "x = np.random.default_rng(0).random((4, 28, 28), dtype='float32')\n"
        "np.testing.assert_allclose(model.predict(x, verbose=0), rebuilt.predict(x, verbose=0), rtol=1e-6)\n"
        "print(type(run.config.variant).__name__, model.get_layer('encoder').predict(x, verbose=0).shape)\n",
        str(run),
        cwd=cwd,
        module_dir=tmp_path,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.split()[0] == "TinyVariant" and "(4, 4)" in check.stdout


@pytest.mark.parametrize(
    ("yaml", "module", "named"),
    [
        (TINY_YAML.replace("tiny_variant", "no_such_module"), TINY_MODULE, "There is no module"),
        (TINY_YAML, TINY_MODULE.replace(", build=build_tiny", ""), "without a builder"),
    ],
    ids=["module-missing", "no-builder"],
)
def test_a_bad_outside_declaration_is_refused_before_tensorflow(tmp_path, yaml, module, named):
    conf = outside_variant(tmp_path, yaml, module)
    result = run_command(
        "aetrain",
        "variant=tiny",
        f"hydra.searchpath=[file://{conf}]",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        module_dir=tmp_path,
        without_tensorflow=True,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    text = plain_text(result.stdout + result.stderr)
    assert "`variant._declared_in_`" in text and named in text
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def outside_config(tmp_path: Path, monkeypatch, module: str, name: str = "tiny_variant"):
    """A composed config naming the tiny variant that ``module`` declares (imported from tmp_path); the
    registry is as before when the test ends."""
    declared = {kind: dict(options) for kind, options in registry._DECLARED.items()}
    monkeypatch.setattr(registry, "_DECLARED", declared)
    (tmp_path / f"{name}.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    cfg = OmegaConf.to_container(compose_config(), resolve=True)
    cfg["variant"] = {"name": "tiny", "_declared_in_": name, "units": 8}
    return cfg


def test_an_outside_variant_is_checked_by_its_own_schema(tmp_path, monkeypatch):
    cfg = outside_config(tmp_path, monkeypatch, TINY_MODULE, "tiny_checked")
    run = validate(cfg)
    assert (type(run.variant).__name__, run.variant.units) == ("TinyVariant", 8)
    assert run.to_dict()["variant"]["_declared_in_"] == "tiny_checked"
    cfg["variant"]["units"] = 0
    with pytest.raises(ConfigError) as refused:
        validate(cfg)
    assert refused.value.key == "variant.units"
    cfg["variant"].update(units=8, activation="sparkle")
    with pytest.raises(ConfigError) as refused:
        validate(cfg)
    assert refused.value.key == "variant.activation"  # the base class's check
    cfg["variant"].update(activation="relu", name="tiny_typo")
    with pytest.raises(ConfigError) as refused:
        validate(cfg)
    assert refused.value.key == "variant.name" and "tiny_checked declares no variant" in str(refused.value)


@pytest.mark.parametrize(
    ("module", "why"),
    [
        (TINY_MODULE.replace("build=build_tiny", 'build="tiny_bad:no_such_function"'), "cannot be found"),
        (TINY_MODULE.replace("class TinyVariant(Variant)", "class TinyVariant"), "derives from"),
        (TINY_MODULE.replace('"variant", "tiny"', '"variant", "dense"'), "already declared"),
        (TINY_MODULE.replace("import math", "import math, not_installed_here"), "not_installed_here"),
    ],
    ids=["builder-missing", "schema-not-a-variant", "name-taken", "module-fails"],
)
def test_a_bad_declaration_is_refused_naming_the_key(tmp_path, monkeypatch, module, why):
    with pytest.raises(ConfigError) as refused:
        validate(outside_config(tmp_path, monkeypatch, module, "tiny_bad"))
    assert refused.value.key == "variant._declared_in_" and why in str(refused.value)


def test_a_stored_config_cannot_import_the_standard_library():
    saved = validate(compose_config()).to_dict()
    saved["variant"]["_declared_in_"] = "antigravity"  # importing it opens a web browser
    with pytest.raises(ConfigError) as refused:
        validate(saved)
    assert refused.value.key == "variant._declared_in_" and "antigravity" not in sys.modules


STRIPES_YAML = """\
name: stripes
_declared_in_: stripes_data
images: 300
"""

STRIPES_MODULE = '''\
"""A data set declared outside aetrain: 12x12 grey stripes, horizontal or vertical, made on the spot."""

from dataclasses import dataclass

import numpy as np

from aetrain.config import Data, check_drawn_splits, declare, require
from aetrain.data import DataSpec, RawData


@dataclass
class StripesData(Data):
    name: str = "stripes"
    images: int = 300
    limit: int | None = None
    val_size: float = 0.2
    test_size: float = 0.1
    split_seed: int = 0
    test_limit: int | None = None

    def check(self, run):
        check_drawn_splits(self)
        super().check(run)
        require(10 <= self.images <= 10_000, "data.images", self.images, "an integer from 10 to 10000")


def read_stripes(data_cfg, spec, download):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, data_cfg.images)
    rows = (np.arange(12) // 2 % 2 * 255).astype(np.uint8)
    horizontal = np.repeat(rows[:, None], 12, axis=1)
    images = np.stack([horizontal.T if label else horizontal for label in labels])
    return RawData(images, labels, None, None, source="stripes (made by stripes_data.py)")


declare(
    "data",
    "stripes",
    StripesData,
    build=DataSpec(
        title="Stripes",
        height=12,
        width=12,
        channels=1,
        class_names=("horizontal", "vertical"),
        train_images=None,
        test_images=None,
        read=read_stripes,
        where="made by stripes_data.py; no files",
    ),
)
'''


@pytest.mark.slow
def test_a_new_data_set_is_one_yaml_file_and_one_module(tmp_path):
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "stripes.yaml").write_text(STRIPES_YAML)
    (tmp_path / "stripes_data.py").write_text(STRIPES_MODULE)
    run = tmp_path / "run"
    trained = run_command(
        "aetrain",
        "data=stripes",
        "trainer=smoke",
        "data.val_size=0.2",
        "variant=conv",
        "trainer.progress=false",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        module_dir=tmp_path,
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["config"]["data"]["_declared_in_"] == "stripes_data"
    assert metrics["config"]["data"]["images"] == 300
    assert 0 <= metrics["test"]["mse"] < 1


@pytest.mark.parametrize(
    "module",
    ["filelock", "aetrain.__main__", "aetrain.commands.train", "hydra_plugins", "__main__", "tiny.__init__"],
)
def test_a_stored_config_cannot_import_an_installed_package_or_aetrain_itself(module):
    """filelock is installed beside aetrain; aetrain itself is installed too, even in editable mode
    (outside site-packages); a dunder module is nobody's declaration."""
    saved = validate(compose_config()).to_dict()
    saved["variant"]["_declared_in_"] = module
    before = set(sys.modules)
    with pytest.raises(ConfigError) as refused:
        validate(saved)
    assert refused.value.key == "variant._declared_in_" and module in str(refused.value)
    imported = set(sys.modules) - before
    top_level = module.split(".")[0]
    assert not {name for name in imported if name.split(".")[0] == top_level}, imported


def test_importing_aetrains_main_module_runs_no_command():
    result = subprocess.run(
        [sys.executable, "-c", "import aetrain.__main__; print('imported')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "imported", result.stdout + result.stderr


BOUNDED_YAML = """\
name: bounded
_declared_in_: bounded_family
units: 16
weight: 0.01
activation: relu
output_activation: sigmoid
"""

BOUNDED_MODULE = '''\
"""A family declared outside aetrain: tanh codings kept small by an L2 term of its own, and new images
decoded from codings drawn uniformly in [-1, 1]."""

import math
from dataclasses import dataclass

import numpy as np

from aetrain.config import Variant, declare, require
from aetrain.models.family import Family


@dataclass
class BoundedVariant(Variant):
    name: str = "bounded"
    units: int = 16
    weight: float = 0.01
    activation: str = "relu"
    output_activation: str = "sigmoid"

    def check(self, run):
        super().check(run)
        require(self.weight >= 0, "variant.weight", self.weight, "a number >= 0")


def build_bounded(cfg):
    import keras

    from aetrain.data import spec_for

    shape = spec_for(cfg.data).image_shape
    encoder = keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Flatten(),
            keras.layers.Dense(cfg.variant.units, activation=cfg.variant.activation),
            keras.layers.Dense(cfg.latent_size, activation="tanh", name="codings"),
            # float32 under mixed precision: Keras adds up the model's losses in one dtype
            keras.layers.ActivityRegularization(l2=cfg.variant.weight, name="codings_l2", dtype="float32"),
        ],
        name="encoder",
    )
    decoder = keras.Sequential(
        [
            keras.Input((cfg.latent_size,)),
            keras.layers.Dense(math.prod(shape), activation=cfg.variant.output_activation),
            keras.layers.Reshape(shape),
        ],
        name="decoder",
    )
    return keras.Sequential([keras.Input(shape), encoder, decoder], name="bounded_autoencoder")


@dataclass(frozen=True)
class BoundedFamily(Family):
    samples_from_prior: bool = True

    def loss_terms(self, cfg):
        return [f"{cfg.variant.weight:g} x L2 of the codings"]

    def test_figures(self, model, images, cfg):
        codings = model.get_layer("encoder").predict(images, verbose=0)
        return {"codings_square_mean": float(np.mean(np.square(codings)))}

    def sample(self, model, count, latent_size, seed):
        codings = np.random.default_rng(seed).uniform(-1, 1, (count, latent_size)).astype("float32")
        return model.get_layer("decoder").predict(codings, verbose=0)

    def prior_description(self, latent_size):
        return f"uniform in [-1, 1]^{latent_size}"


declare("variant", "bounded", BoundedVariant, build=build_bounded, family=BoundedFamily())
'''


@pytest.mark.slow
def test_a_family_declared_outside_aetrain_trains_evaluates_generates_exports_and_is_reported(
    tiny_data_dir, tmp_path
):
    """A fifth family, its module and YAML in a temporary folder, with its own loss term and sampling."""
    (tmp_path / "conf" / "variant").mkdir(parents=True)
    (tmp_path / "conf" / "variant" / "bounded.yaml").write_text(BOUNDED_YAML)
    (tmp_path / "bounded_family.py").write_text(BOUNDED_MODULE)
    cwd, sweep = tmp_path / "work", tmp_path / "work" / "sweep"
    run = sweep / "0"
    cwd.mkdir()
    trained = run_command(
        "aetrain",
        *smoke_args(tiny_data_dir, "variant=bounded", "latent_size=3"),
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        f"hydra.run.dir={run}",
        cwd=cwd,
        module_dir=tmp_path,
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["loss_terms"] == ["reconstruction", "0.01 x L2 of the codings"]
    assert 0 < metrics["test"]["codings_square_mean"] < 1  # its own figure, of tanh codings
    assert (run / "samples.png").exists()  # drawn from its own prior at the end of the run

    for program, args in (
        ("aetrain-evaluate", ["--probe-steps", "5", "--limit", "50"]),
        ("aetrain-generate", ["--limit", "20"]),
        ("aetrain-export", []),
        ("aetrain-report", []),
    ):
        target = sweep if program == "aetrain-report" else run
        result = run_command(program, str(target), *args, cwd=cwd, module_dir=tmp_path)
        assert result.returncode == 0, program + result.stdout + result.stderr
    assert json.loads((run / "eval.json").read_text())["test_images"] == 50
    assert (run / "interpolation.png").exists() and (run / "export" / "encoder.tflite").exists()
    report = (sweep / "report.csv").read_text()
    assert "completed" in report and "L2 of the codings" in report
