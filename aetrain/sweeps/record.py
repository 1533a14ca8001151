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
from aetrain.run_folder.record import UnreadableRecord

SWEEP_RECORD = layout.SWEEP_RECORD


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

    def as_dict(self) -> dict[str, Any]:
        """What sweep.json holds."""
        return {
            "status": self.status,
            "signal": self.signal,
            "process": self.process,
            "jobs": [asdict(job) for _, job in sorted(self.jobs.items())],
        }

    def write(self) -> None:
        write_text_atomically(self.path, json.dumps(self.as_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> SweepRecord | None:
        """The record in ``folder``; None when there is none; UnreadableRecord naming the file and
        what is wrong when it is not one aetrain wrote (damaged, edited)."""
        path = folder / SWEEP_RECORD
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            jobs = {int(job["num"]): SweepJob(**job) for job in raw["jobs"]}
            process = raw.get("process") if isinstance(raw.get("process"), dict) else None
            return cls(folder, raw["status"], raw.get("signal"), jobs, process)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UnreadableRecord(f"{path}: {type(error).__name__}: {first_line}") from None

    @classmethod
    def read(cls, folder: Path) -> SweepRecord | None:
        """The record in ``folder``, or None when there is none or it is unreadable."""
        try:
            return cls.load(folder)
        except UnreadableRecord:
            return None

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            counts[job.status] = counts.get(job.status, 0) + 1
        return counts
