"""Loggers: where a run reports its figures besides metrics.json (the ``logger`` config group).

A logger is one YAML file in ``conf/logger/`` holding one key, the logger's name, whose settings name
their class with ``_target_``, plus (at most) one module here defining that class: a dataclass derived
from :class:`Logger` whose fields are the YAML's settings. ``validate`` (aetrain.config.schema) types
the settings and calls :meth:`Logger.check` (this module imports neither Keras nor the logger's
library); training asks each logger for its Keras callbacks and tells it when the run ends. Several
run at once:
``aetrain logger=[csv,mlflow]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from aetrain.config import ConfigError
from aetrain.config.logger_settings import LoggerSettings
from aetrain.run_folder.layout import user_path_problem

log = logging.getLogger("aetrain")


@dataclass(frozen=True)
class LoggedRun:
    """What a logger may know about the run it reports."""

    config: dict[str, Any]  # RunConfig.to_dict(): plain values
    output_dir: Path
    history: dict[str, list[float]]  # the epochs before this start (a resumed run's), else empty
    resumed: bool


class LoggerSession:
    """One run's report through one logger: told each whole epoch's figures, then the run's end."""

    def log_epoch(self, epoch: int, figures: dict[str, float]) -> None:
        """Epoch ``epoch`` (from 1) finished with these figures (loss, val_loss, learning_rate...)."""

    def finish(self, metrics: dict[str, Any]) -> None:
        """The run ended (``metrics["status"]``: completed, diverged or interrupted); metrics.json,
        the pictures and the checkpoints are on disk (on ``completed``, with ``metrics["test"]``)."""

    def keras_callbacks(self) -> list:
        """Keras callbacks of the logger's own, when its library brings them (TensorBoard)."""
        return []


@dataclass
class Logger(LoggerSettings):
    """Base class of every logger: a dataclass whose fields are the settings in its YAML file."""

    #: the settings that name a file or folder in the run folder (checked at the door).
    path_settings: ClassVar[tuple[str, ...]] = ()

    def check(self, key: str) -> None:
        """A setting that names a file stays inside the run folder and off aetrain's own files."""
        for setting in self.path_settings:
            value = getattr(self, setting)
            problem = user_path_problem(value) if isinstance(value, str) else "it must be a path (a string)"
            if problem is not None:
                raise ConfigError(
                    f"{key}.{setting}",
                    value,
                    "a relative path inside the run folder, e.g. `history.csv`",
                    problem,
                )

    def start(self, run: LoggedRun) -> LoggerSession:
        """Called before training starts (Keras and the logger's library may be imported here)."""
        raise NotImplementedError


class RunLoggers:
    """The run's loggers, started: a Keras callback list for ``fit``, and one call when the run ends.

    A logger is a report, not the run: one that fails (a tracking store gone, a full disk under its
    folder) is turned off with one warning and recorded (:meth:`record`); the checkpoints, the run's
    own files and the other loggers go on. A logger that cannot *start* is refused before training
    (its ``start`` raises the refusal).
    """

    def __init__(self, loggers: dict[str, Logger], run: LoggedRun) -> None:
        self.sessions = {name: logger.start(run) for name, logger in loggers.items()}
        self.failures: dict[str, str] = {}  # logger name -> when and why it failed

    def callbacks(self) -> list:
        from aetrain.training.callbacks import ContainedCallback, LogEpochs

        own = [
            ContainedCallback(callback, lambda when, error, name=name: self._failed(name, when, error))
            for name, session in self.sessions.items()
            for callback in session.keras_callbacks()
        ]
        return [LogEpochs(self.log_epoch), *own]

    def log_epoch(self, epoch: int, figures: dict[str, float]) -> None:
        for name, session in self._working():
            try:
                session.log_epoch(epoch, figures)
            except Exception as error:
                self._failed(name, f"epoch {epoch}", error)

    def finish(self, metrics: dict[str, Any]) -> None:
        """Tell every working logger; one that fails now is recorded like one that failed earlier."""
        for name, session in self._working():
            try:
                session.finish(metrics)
            except Exception as error:
                self._failed(name, "the run's end", error)

    def record(self, metrics: dict[str, Any]) -> None:
        """Put each logger's state in ``metrics``: ``loggers`` (``ok``, or ``failed`` with the reason),
        and a line in ``warnings`` for each failed one."""
        if not self.sessions:
            return
        metrics["loggers"] = {
            name: {"status": "failed", "reason": self.failures[name]}
            if name in self.failures
            else {"status": "ok"}
            for name in self.sessions
        }
        warnings = metrics.setdefault("warnings", [])
        for name, reason in self.failures.items():
            line = f"logger {name} failed and was turned off ({reason}); its record of this run is incomplete"
            if line not in warnings:
                warnings.append(line)

    def _working(self) -> list[tuple[str, LoggerSession]]:
        return [(name, session) for name, session in self.sessions.items() if name not in self.failures]

    def _failed(self, name: str, when: str, error: Exception) -> None:
        if name in self.failures:
            return
        first_line = (str(error).strip().splitlines() or [""])[0]
        self.failures[name] = f"at {when}: {type(error).__name__}: {first_line}".rstrip(": ")
        log.warning(
            f"logger {name} failed {self.failures[name]}; it is off for the rest of the run (the "
            "checkpoints, metrics.json and the other loggers go on)"
        )
