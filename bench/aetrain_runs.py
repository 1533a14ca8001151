"""aetrain as a user runs it: the real ``aetrain`` command in a subprocess, figures read from metrics.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CliRun:
    """One ``aetrain`` run: its metrics.json and the wall seconds of the whole command."""

    overrides: list[str]
    metrics: dict
    wall_seconds: float

    @property
    def val_loss(self) -> list[float]:
        return self.metrics["history"]["val_loss"]


def aetrain_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m aetrain``."""
    script = Path(sys.executable).with_name("aetrain")
    return [str(script)] if script.exists() else [sys.executable, "-m", "aetrain"]


def run_aetrain(overrides: list[str], run_dir: Path, env: dict[str, str] | None = None) -> CliRun:
    """Run ``aetrain OVERRIDES`` into ``run_dir``; a failed run stops the benchmark with its output."""
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [*aetrain_command(), *overrides, f"hydra.run.dir={run_dir}"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(command)}` failed with exit code {done.returncode}:\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-3000:]}"
        )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return CliRun(overrides, metrics, wall)


def seconds_to_reach(val_loss: list[float], epoch_seconds: list[float], target: float) -> tuple[int, float]:
    """(epochs, cumulative seconds) at the first epoch whose validation MSE is <= target; (0, nan) never."""
    elapsed = 0.0
    for epoch, (loss, seconds) in enumerate(zip(val_loss, epoch_seconds, strict=True), start=1):
        elapsed += seconds
        if loss <= target:
            return epoch, elapsed
    return 0, float("nan")
