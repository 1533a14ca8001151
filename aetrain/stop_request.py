"""A request to stop training, set from outside the training loop (cli.py's signal handlers).

It only records which signal asked: the training loop looks at it between batches and stops
cleanly, so a Ctrl-C never interrupts a checkpoint being written. A job of a sweep also obeys the
sweep's stop request (aetrain.sweep_record), which the sweep's process writes on a signal.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from aetrain.sweep_record import STOP_REQUEST, read_stop_request, signal_number


class StopRequest:
    """Set once by :meth:`ask`; read by ``callbacks.StopOnRequest`` at every batch end."""

    def __init__(self, sweep_dir: Path | None = None) -> None:
        self.signal_number: int | None = None
        self.sweep_dir = sweep_dir

    def ask(self, signal_number: int) -> None:
        self.signal_number = signal_number

    @property
    def requested(self) -> bool:
        # In a sweep, a stat per batch end (microseconds) for the sweep's stop request.
        if self.signal_number is None and self.sweep_dir and os.path.exists(self.sweep_dir / STOP_REQUEST):
            sweep_stop = read_stop_request(self.sweep_dir)
            if sweep_stop is not None:
                self.signal_number = signal_number(sweep_stop["signal"])
        return self.signal_number is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name if self.signal_number else "a stop request"

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal (130, 143)."""
        return 128 + (self.signal_number or signal.SIGINT)
