"""``logger=csv``: the per-epoch history as ``history.csv`` in the run folder."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import write_text_atomically
from aetrain.training.loggers import LoggedRun, Logger, LoggerSession


@dataclass
class CsvHistory(Logger):
    """One row per whole epoch: ``epoch``, then every figure Keras logs (loss, ..., val_loss, ...)."""

    path_settings = ("filename",)

    filename: str = layout.HISTORY_CSV

    def start(self, run: LoggedRun) -> LoggerSession:
        return _CsvSession(run.output_dir / self.filename, run.history)


class _CsvSession(LoggerSession):
    """Rewrites the whole file atomically after each epoch from the history so far: a reader or a kill
    never sees half a row, and a resumed run (which starts from its checkpoint's history) continues
    the file with no gap and no repeated epoch."""

    def __init__(self, path: Path, history: dict[str, list[float]]) -> None:
        self.path = path
        self.history = {key: list(values) for key, values in history.items()}

    def log_epoch(self, epoch: int, figures: dict[str, float]) -> None:
        for key, value in figures.items():
            self.history.setdefault(key, []).append(value)
        write_text_atomically(self.path, history_csv(self.history))


def history_csv(history: dict[str, list[float]]) -> str:
    """A header ``epoch,<training figures>,<val_ figures>``, then one row per epoch."""
    keys = sorted(history, key=lambda key: (key.startswith("val_"), key))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    epochs = max((len(values) for values in history.values()), default=0)
    for epoch in range(epochs):
        values = [repr(history[key][epoch]) if epoch < len(history[key]) else "" for key in keys]
        writer.writerow([epoch + 1, *values])
    return text.getvalue()
