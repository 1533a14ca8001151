"""A request to stop a run, set from outside it (commands/train.py's signal handlers), and its phase.

A run goes through the phases ``training``, ``evaluation`` (the test set) and ``pictures`` (the PNGs
and ``reconstructions.npz``). During training the request is only recorded: the training loop looks
at it between batches and stops cleanly, so a Ctrl-C never interrupts a checkpoint being written.
After training nothing can be lost (the checkpoints are complete and every file is written
atomically), and one matplotlib call on a large grid can take tens of seconds: there the request
raises :class:`StopNow` at once, from the signal handler, wherever the run is. A job of a sweep
also obeys the sweep's stop request (aetrain.sweeps.record), which the sweep's process writes on a signal.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from aetrain.commands import exit_codes
from aetrain.sweeps.record import STOP_REQUEST, read_stop_request, signal_number

TRAINING, EVALUATION, PICTURES = "training", "evaluation", "pictures"


class StopNow(BaseException):
    """Raised in the evaluation or pictures phase by a stop request. A BaseException, like
    KeyboardInterrupt, so that no library's ``except Exception`` swallows it."""

    def __init__(self, phase: str) -> None:
        super().__init__(phase)
        self.phase = phase


class StopRequest:
    """Set once by :meth:`ask`; read by ``callbacks.StopOnRequest`` at every batch end in training,
    and by :meth:`enter` / :meth:`check` between and inside the later phases."""

    def __init__(self, sweep_dir: Path | None = None) -> None:
        self.signal_number: int | None = None
        self.sweep_dir = sweep_dir
        self.phase = TRAINING
        self._at_once = False

    def ask(self, signal_number: int) -> None:
        """Record the request; after training, stop at once (raises StopNow)."""
        self.signal_number = signal_number
        if self._at_once:
            self._at_once = False  # one StopNow: what follows records the stop
            raise StopNow(self.phase)

    def enter(self, phase: str) -> None:
        """Start ``phase`` (evaluation, pictures): stop here if asked already, else at once when asked."""
        self.phase = phase
        self._at_once = True
        self.check()

    def defer(self) -> None:
        """From now on a request is only recorded, until the next :meth:`enter` or :meth:`check`
        (all phases done, or a moment that must not be cut short)."""
        self._at_once = False

    def check(self) -> None:
        """Raise StopNow if a stop was asked (between pictures, between phases)."""
        if self.requested:
            self._at_once = False
            raise StopNow(self.phase)

    @property
    def requested(self) -> bool:
        # In a sweep, a stat per batch end (microseconds) for the sweep's stop request.
        if self.signal_number is None and self.sweep_dir and os.path.exists(self.sweep_dir / STOP_REQUEST):
            sweep_stop = read_stop_request(self.sweep_dir)
            if sweep_stop is not None:
                self.signal_number = signal_number(sweep_stop["signal"])
        return self.signal_number is not None

    @property
    def stops_at_once(self) -> bool:
        return self._at_once

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name if self.signal_number else "a stop request"

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal (130, 143)."""
        return exit_codes.stopped_by(self.signal_number or signal.SIGINT)
