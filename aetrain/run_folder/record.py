"""``metrics.json``, a run's record: the one module that writes it and reads it back.

A run rewrites it at each epoch end (status ``running``), once every phase is done (``completed``),
and when it stops early (``refused``, ``failed``, ``diverged``, ``interrupted``); a sweep marks a job
it lost or never started. Every write is atomic (a reader never sees half a file), strict JSON (NaN
as null), and stamps ``wall_seconds``, the writing process's age: what the user waited, imports
included. Every reader gets the same answers: a run's status and the reason it gives.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import write_json_atomically
from aetrain.run_folder.lock import is_locked

# What a run (a sweep's job too) can end as; sweep.json and the job's metrics.json agree.
FINISHED = frozenset({"completed", "refused", "diverged", "failed"})
RUN_STATUSES = FINISHED | {"interrupted", "never_started", "running"}


class UnreadableRecord(ValueError):
    """metrics.json is missing (``missing``) or cannot be read as a JSON object; the message says why."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def seconds_since_process_start() -> float | None:
    """How long this process has run, from Linux's /proc (10 ms resolution); None elsewhere.

    Measured from the kernel's start of the process, so it includes the interpreter's start and every
    import (TensorFlow's is most of it), which a timer started in Python would miss.
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, after "comm)"
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> Path:
    """Write ``metrics`` as ``run_dir``'s metrics.json, stamped with ``wall_seconds``."""
    metrics["wall_seconds"] = seconds_since_process_start()
    return write_json_atomically(run_dir / layout.METRICS, metrics)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """``run_dir``'s metrics.json, or UnreadableRecord naming the file and what is wrong with it."""
    path = run_dir / layout.METRICS
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnreadableRecord(f"{path}: no such file", missing=True) from None
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UnreadableRecord(f"{path}: {first_line}") from None
    if not isinstance(metrics, dict):
        raise UnreadableRecord(f"{path}: holds a JSON {type(metrics).__name__}, not an object")
    return metrics


def read_metrics_or_empty(run_dir: Path) -> dict[str, Any]:
    """``run_dir``'s metrics.json, or {} when it is missing or unreadable (a run that never finished)."""
    try:
        return read_metrics(run_dir)
    except UnreadableRecord:
        return {}


def record_failure(run_dir: Path, status: str, message: str, **extra: Any) -> Path:
    """Mark a run that did not finish, keeping the figures it already recorded: ``status`` (one of
    RUN_STATUSES) and ``message`` as its ``error``, so a sweep and aetrain-report can say why."""
    metrics = read_metrics_or_empty(run_dir)
    metrics.update(status=status, error=message, **extra)
    run_dir.mkdir(parents=True, exist_ok=True)
    return write_metrics(run_dir, metrics)


def recorded_outcome(metrics: dict[str, Any], run_dir: Path) -> tuple[str, str | None]:
    """The status and reason ``metrics`` (``run_dir``'s) records (KeyError: it records none).
    ``running`` (written at each epoch end) in a folder no process holds is ``failed``: the process
    died mid-run."""
    status = str(metrics["status"])
    if status == "running" and not is_locked(run_dir):
        done = metrics.get("epochs_completed", 0)
        return "failed", f"its process ended during training, after epoch {done}, without a word (killed?)"
    reason = metrics.get("error") or metrics.get("interruption") or metrics.get("failure")
    return (status if status in RUN_STATUSES else "failed"), reason


def run_outcome(run_dir: Path) -> tuple[str, str | None]:
    """A finished run's status and reason, from the metrics.json it wrote (``failed`` if it left none
    readable)."""
    try:
        return recorded_outcome(read_metrics(run_dir), run_dir)
    except (UnreadableRecord, KeyError, TypeError):
        return "failed", f"the job left no readable {run_dir / layout.METRICS}"
