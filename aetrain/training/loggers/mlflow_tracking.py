"""``logger=mlflow``: the run in MLflow tracking (needs ``pip install 'aetrain[mlflow]'``).

The flattened config as params (``trainer.learning_rate``...), each whole epoch's figures as metrics
(step = epoch), the test figures as ``test/<name>``, and at the end the pictures, metrics.json,
history.csv (with ``logger=csv``) and ``checkpoints/best.keras`` as artifacts. Every call goes through
an explicit ``MlflowClient`` (no global active run), so the jobs of a sweep that share a process do
not share a run. ``RUN/mlflow_run.json`` records the MLflow run, and ``trainer.resume`` continues it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

from aetrain.config import dotted_keys
from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import write_text_atomically
from aetrain.training.loggers import LoggedRun, Logger, LoggerSession

# What MLflow 3 itself uses when nothing is set: a SQLite file in the working directory (artifacts in
# ./mlruns next to it); `mlflow ui` started in that directory opens it.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
RUN_RECORD = layout.MLFLOW_RUN_RECORD
ARTIFACTS = (
    layout.RECONSTRUCTIONS_PNG,
    layout.LOSS_PNG,
    layout.SAMPLES_PNG,
    layout.METRICS,
    layout.HISTORY_CSV,
)
RUN_STATUS = {"completed": "FINISHED", "diverged": "FAILED", "interrupted": "KILLED"}
BATCH = 100  # MLflow's limit on params per log_batch call


@dataclass
class MlflowTracking(Logger):
    requires = ("mlflow", "mlflow")

    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else DEFAULT_TRACKING_URI
    experiment_name: str = "aetrain"
    run_name: str | None = None  # None: the run folder's path
    log_checkpoint: bool = True  # checkpoints/best.keras as an artifact

    def start(self, run: LoggedRun) -> LoggerSession:
        from mlflow import MlflowClient

        from aetrain.config import ConfigError

        uri = absolute_store(
            self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        )
        try:
            with _one_process_at_a_time(uri):
                client = MlflowClient(tracking_uri=uri)  # creates a new SQLite store's tables
                run_id = _resumed_run(client, run, uri) or self._new_run(client, run, uri)
        except Exception as error:  # MlflowException, or the store's own (SQLAlchemy, HTTP, OS) errors
            raise ConfigError(
                "logger.mlflow.tracking_uri",
                uri,
                "a tracking URI MLflow 3 opens (sqlite:///FILE.db, another database URL, http://HOST:PORT; "
                "a folder only with MLFLOW_ALLOW_FILE_STORE=true)",
                f"MLflow could not start the run: {str(error).splitlines()[0]}",
            ) from None
        return _MlflowSession(client, run_id, run.output_dir, self.log_checkpoint)

    def _new_run(self, client, run: LoggedRun, uri: str) -> str:
        from mlflow.entities import Param

        experiment_id = _experiment_id(client, self.experiment_name)
        run_id = client.create_run(
            experiment_id,
            run_name=self.run_name or _display_path(run.output_dir),
            tags={"aetrain.run_folder": str(run.output_dir.resolve())},
        ).info.run_id
        params = [Param(key, str(value)) for key, value in dotted_keys(run.config).items()]
        for start in range(0, len(params), BATCH):
            client.log_batch(run_id, params=params[start : start + BATCH])
        record = {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": run_id}
        write_text_atomically(run.output_dir / RUN_RECORD, json.dumps(record, indent=2))
        return run_id


class _MlflowSession(LoggerSession):
    def __init__(self, client, run_id: str, output_dir: Path, log_checkpoint: bool) -> None:
        self.client, self.run_id = client, run_id
        self.output_dir, self.log_checkpoint = output_dir, log_checkpoint

    def log_epoch(self, epoch: int, figures: dict[str, float]) -> None:
        self._log_metrics(figures, step=epoch)

    def finish(self, metrics: dict[str, Any]) -> None:
        test = metrics.get("test", {})
        self._log_metrics({f"test/{key}": value for key, value in test.items()}, step=0)
        for name in ARTIFACTS:
            if (self.output_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(self.output_dir / name))
        best = self.output_dir / layout.BEST_CHECKPOINT
        if self.log_checkpoint and best.is_file():
            self.client.log_artifact(self.run_id, str(best), artifact_path=layout.CHECKPOINTS)
        self.client.set_terminated(self.run_id, status=RUN_STATUS.get(metrics.get("status"), "FAILED"))

    def _log_metrics(self, figures: dict[str, Any], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        numbers = [
            Metric(key, float(value), now, step)
            for key, value in figures.items()
            if isinstance(value, Real) and not isinstance(value, bool)
        ]
        if numbers:
            self.client.log_batch(self.run_id, metrics=numbers)


def absolute_store(uri: str) -> str:
    """A SQLite store's relative path (``sqlite:///mlflow.db``) made absolute, from the folder the run
    started in: a run resumed from another folder, or a sweep's next job in the same process, then
    reports to the same store."""
    relative = uri.removeprefix("sqlite:///")
    if uri.startswith("sqlite:///") and not relative.startswith("/") and relative != ":memory:":
        return f"sqlite:///{Path(relative).absolute()}"
    return uri


@contextlib.contextmanager
def _one_process_at_a_time(uri: str) -> Iterator[None]:
    """For a SQLite store, one process at a time creates the database, the experiment and its run:
    the jobs of a parallel sweep start together, and two of them creating the same tables or the same
    experiment at once fail."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    with open(f"{uri.removeprefix('sqlite:///')}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def _resumed_run(client, run: LoggedRun, uri: str) -> str | None:
    """The MLflow run a resumed run folder reported to (same tracking URI), marked running again."""
    record_path = run.output_dir / RUN_RECORD
    if not run.resumed or not record_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    if absolute_store(record.get("tracking_uri", "")) != uri:  # a record from before: relative
        return None
    client.update_run(record["run_id"], status="RUNNING")
    return record["run_id"]


def _experiment_id(client, name: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:  # another job of the sweep created it first
        return client.get_experiment_by_name(name).experiment_id


def _display_path(folder: Path) -> str:
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)
