"""An option whose package is not installed says which extra installs it (exit 2, before Hydra
composes anything), as after a plain ``pip install aetrain``; so does a retired key name its new
spelling. The packages are hidden by shims on PYTHONPATH whose import fails (tests/faults/no_sweeps,
tests/faults/no_mlflow), like tests/faults/no_tensorflow hides TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runs import AETRAIN, environment, plain_text

FAULTS = Path(__file__).resolve().parent
HIDDEN = [FAULTS / "no_sweeps", FAULTS / "no_mlflow"]

SWEEPS, MLFLOW = "pip install 'aetrain[sweeps]'", "pip install 'aetrain[mlflow]'"
NO_MLFLOW = "The mlflow logger needs the package mlflow"
# (command line, words the message must hold)
MISSING = [
    (["hparams_search=optuna"], ["`hparams_search=optuna`", "Optuna sweeper", SWEEPS]),
    (["-m", "hydra/launcher=parallel", "seed=1,2"], ["`hydra/launcher=parallel`", SWEEPS]),
    (["-m", "hydra/launcher=slurm", "seed=1,2"], ["`hydra/launcher=slurm`", SWEEPS]),
    (["-m", "hydra/launcher=submitit_local"], ["submitit launcher", SWEEPS]),
    (["logger=mlflow"], [NO_MLFLOW, MLFLOW]),
    (["logger=[csv,mlflow]"], [NO_MLFLOW, MLFLOW]),
    (["trainer.tensorboard=true"], ["`trainer.tensorboard` is gone", "use `logger=tensorboard`"]),
    (["+trainer.tensorboard=true"], ["`trainer.tensorboard` is gone", "`logger=[csv,tensorboard]`"]),
]


def run_without_extras(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = environment(cwd, without_tensorflow=True)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, HIDDEN), env["PYTHONPATH"]])
    return subprocess.run([AETRAIN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "words"), MISSING, ids=[" ".join(a) for a, _ in MISSING])
def test_an_option_without_its_package_names_the_extra(args, words, tmp_path):
    result = run_without_extras(*args, cwd=tmp_path)
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 2, text
    for word in words:
        assert word in text, f"{word!r} missing from: {text}"
    assert "Could not find" not in text and "Traceback" not in text
    assert "forbid importing TensorFlow" not in text  # refused before TensorFlow was imported
    assert not list(tmp_path.rglob(".hydra"))  # no run folder


def test_the_shims_hide_what_they_should(tmp_path):
    """Without the check, Hydra itself reports the hidden plugin (so the tests above hide it)."""
    env = environment(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, HIDDEN), env.get("PYTHONPATH", "")])
    code = "from hydra.core.plugins import Plugins; import importlib; importlib.import_module('{}')"
    for module in ("hydra_plugins.hydra_optuna_sweeper", "hydra_plugins.hydra_joblib_launcher", "mlflow"):
        result = subprocess.run(
            [sys.executable, "-c", code.format(module)], env=env, capture_output=True, text=True
        )
        assert "ImportError" in result.stderr, module
