"""``manifest.json``: which code, libraries, machine, data and command made a run.

Written at the start of training (an interrupted run has one too), embedded in every checkpoint's
metadata and repeated in ``eval.json``. Keys are sorted, so two manifests compare line by line.
No TensorFlow here: versions come from the installed packages' metadata.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import write_text_atomically

MANIFEST_NAME = layout.MANIFEST
LIBRARIES = {  # manifest key -> distribution name
    "tensorflow": "tensorflow",
    "keras": "keras",
    "jax": "jax",
    "hydra": "hydra-core",
    "omegaconf": "omegaconf",
    "numpy": "numpy",
}
GIT_TIMEOUT_SECONDS = 2.0
HASH_CHUNK = 1 << 20


def library_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def git_commit(folder: Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the checkout aetrain runs from, or None (installed, no git, timeout).

    Only a folder that is itself a checkout's root counts: an installed aetrain inside some other
    repository's virtual environment must not report that repository's commit.
    """
    folder = folder or Path(__file__).resolve().parents[2]
    if not (folder / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_files(folder: Path, names: list[str] | None = None) -> dict[str, str]:
    """{file name: SHA-256} of ``names`` in ``folder`` (default: every file directly in it)."""
    folder = Path(folder)
    paths = [folder / name for name in names] if names else sorted(p for p in folder.iterdir() if p.is_file())
    return {path.name: sha256_of(path) for path in paths if path.is_file()}


def run_manifest(
    *,
    seed: int,
    device: str,
    precision: str,
    data_dir: Path | None,
    data_names: list[str] | None = None,
    command_line: list[str] | None = None,
) -> dict[str, Any]:
    """The manifest of a run started now, by this process, with this seed, device and data."""
    from aetrain import __version__

    return {
        "aetrain_version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "libraries": {key: library_version(name) for key, name in LIBRARIES.items()},
        "device": device,
        "precision": precision,
        "data_dir": str(data_dir) if data_dir is not None else None,
        "data_files": data_files(data_dir, data_names) if data_dir is not None else {},
        "command_line": shlex.join(command_line if command_line is not None else sys.argv),
        "seed": seed,
    }


def write_manifest(output_dir: Path, manifest: dict[str, Any]) -> Path:
    """``manifest.json`` atomically; a resumed run keeps the earlier starts under ``earlier_starts``."""
    path = Path(output_dir) / MANIFEST_NAME
    earlier = read_manifest(output_dir)
    if earlier is not None and manifest.get("resumed_from_epoch") is not None:
        previous = earlier.pop("earlier_starts", [])
        manifest = {**manifest, "earlier_starts": [*previous, earlier]}
    return write_text_atomically(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_manifest(output_dir: Path) -> dict[str, Any] | None:
    """The run folder's manifest, or None when it has none (or an unreadable one)."""
    try:
        return json.loads((Path(output_dir) / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
