"""A request to stop training, set from outside the training loop (cli.py's signal handlers).

It only records which signal asked: the training loop looks at it between batches and stops
cleanly, so a Ctrl-C never interrupts a checkpoint being written.
"""

from __future__ import annotations

import signal


class StopRequest:
    """Set once by :meth:`ask`; read by ``callbacks.StopOnRequest`` at every batch end."""

    def __init__(self) -> None:
        self.signal_number: int | None = None

    def ask(self, signal_number: int) -> None:
        self.signal_number = signal_number

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name if self.signal_number else "a stop request"

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal (130, 143)."""
        return 128 + (self.signal_number or signal.SIGINT)
