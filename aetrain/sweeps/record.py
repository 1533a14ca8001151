"""A sweep's record of its jobs (``sweep.json``, in the sweep folder) and what each job's folder says.

The sweep's own process (the one ``aetrain -m`` started) writes ``sweep.json`` as jobs start and end;
``aetrain-report`` reads it. The sweep's stop request, the other file of the sweep folder, is the
stop request's own (aetrain.training.stop_request): jobs read it between batches.

No TensorFlow and no Hydra here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import write_text_atomically
from aetrain.run_folder.lock import is_locked

SWEEP_RECORD = layout.SWEEP_RECORD

# What a job of a sweep can end as (sweep.json and the job's metrics.json agree).
FINISHED = frozenset({"completed", "refused", "diverged", "failed"})
JOB_STATUSES = FINISHED | {"interrupted", "never_started", "running"}


@dataclass
class SweepJob:
    """One job of the sweep: its number, overrides, folder (relative to the sweep folder), status."""

    num: int
    overrides: list[str]
    dir: str
    status: str = "never_started"
    reason: str | None = None
    lost_worker: bool = False  # its process died from outside (kill -9, out of memory)


@dataclass
class SweepRecord:
    """``sweep.json``: the sweep's status, the signal that stopped it, and every job."""

    folder: Path
    status: str = "running"
    signal: str | None = None
    jobs: dict[int, SweepJob] = field(default_factory=dict)
    process: dict[str, Any] | None = None  # the sweep's own process (pid, host, command, since)

    @property
    def path(self) -> Path:
        return self.folder / SWEEP_RECORD

    def job_dir(self, job: SweepJob) -> Path:
        return self.folder / job.dir

    def write(self) -> None:
        record = {
            "status": self.status,
            "signal": self.signal,
            "process": self.process,
            "jobs": [asdict(job) for _, job in sorted(self.jobs.items())],
        }
        write_text_atomically(self.path, json.dumps(record, indent=2) + "\n")

    @classmethod
    def read(cls, folder: Path) -> SweepRecord | None:
        """The record in ``folder``, or None when there is none (or it is not one aetrain wrote)."""
        try:
            raw = json.loads((folder / SWEEP_RECORD).read_text())
            jobs = {int(job["num"]): SweepJob(**job) for job in raw["jobs"]}
            process = raw.get("process") if isinstance(raw.get("process"), dict) else None
            return cls(folder, raw["status"], raw.get("signal"), jobs, process)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            counts[job.status] = counts.get(job.status, 0) + 1
        return counts


# --- a job's folder --------------------------------------------------------------------------------


def job_outcome(job_dir: Path) -> tuple[str, str | None]:
    """A finished job's status and reason, from the metrics.json it wrote."""
    try:
        return recorded_outcome(json.loads((job_dir / layout.METRICS).read_text()), job_dir)
    except (OSError, ValueError, KeyError, TypeError):
        return "failed", f"the job left no readable {job_dir / layout.METRICS}"


def recorded_outcome(metrics: dict[str, Any], job_dir: Path) -> tuple[str, str | None]:
    """The status and reason a run's metrics.json records. ``running`` (written at each epoch end)
    in a folder no process holds is ``failed``: the process died mid-run."""
    status = str(metrics["status"])
    if status == "running" and not is_locked(job_dir):
        done = metrics.get("epochs_completed", 0)
        return "failed", f"its process ended during training, after epoch {done}, without a word (killed?)"
    reason = metrics.get("error") or metrics.get("interruption") or metrics.get("failure")
    return (status if status in JOB_STATUSES else "failed"), reason


def record_job_failure(job_dir: Path, status: str, message: str, **extra: Any) -> None:
    """Mark a job in its metrics.json (figures it already wrote are kept)."""
    path = job_dir / layout.METRICS
    try:
        metrics = json.loads(path.read_text())
        metrics = metrics if isinstance(metrics, dict) else {}
    except (OSError, ValueError):
        metrics = {}
    metrics.update(status=status, error=message, **extra)
    job_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(metrics, indent=2, default=float))
