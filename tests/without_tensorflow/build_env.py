"""Build (once) a virtual environment with aetrain, Keras and JAX and no TensorFlow: aetrain installed
with ``--no-deps`` beside its dependencies less TensorFlow and TensorBoard, plus the ``jax`` extra, at
the versions the project's own environment has (so pip takes them from its cache).

    python tests/without_tensorflow/build_env.py [FOLDER]   # prints the folder's python

Rebuilt when pyproject.toml changes (a stamp holds its hash).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / ".venv-without-tensorflow"
LEFT_OUT = ("tensorflow", "tensorboard")


def requirements() -> list[str]:
    """aetrain's dependencies less TensorFlow's, plus its jax extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    kept = [spec for spec in project["dependencies"] if not spec.lower().startswith(LEFT_OUT)]
    return kept + project["optional-dependencies"]["jax"]


def pinned_versions() -> str:
    """``pip freeze`` of the environment running this: the same versions, from pip's cache."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "\n".join(line for line in frozen.splitlines() if not line.lower().startswith(LEFT_OUT))


def build(folder: Path = DEFAULT) -> Path:
    """The environment's python, built first when missing or older than pyproject.toml."""
    python = folder / "bin" / "python"
    stamp = folder / ".built-from"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    constraints = folder / "constraints.txt"
    constraints.write_text(pinned_versions())
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-c", str(constraints), *requirements()], check=True)
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    stamp.write_text(wanted)
    return python


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT))
