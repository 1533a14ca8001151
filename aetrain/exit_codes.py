"""The exit codes of every aetrain command, in one table (the README's "Exit codes" lists the same).

A shell, a scheduler or a sweep reads them; each names what went wrong and so what to do next.
"""

from __future__ import annotations

import signal

OK = 0
HYDRA = 1  # Hydra's own composition errors (an unknown group option, a malformed override)
CONFIG = 2  # the config (or a PATH given to a companion command) refused: fix the named key
DATA = 3  # the data set cannot be found or read
DIVERGED = 4  # training diverged (loss not finite): lower the learning rate
OUTPUT = 5  # the output cannot be written, or its folder is in use by another process
LOST_WORKER = 6  # a sweep ran to its end, but a job's process died from outside (kill -9, OOM)
SIGINT = 128 + signal.SIGINT  # 130: stopped by Ctrl-C, resumable with trainer.resume
SIGTERM = 128 + signal.SIGTERM  # 143: stopped by SIGTERM, resumable with trainer.resume


def stopped_by(signal_number: int) -> int:
    """128 + the signal number, as a shell reports a process ended by that signal (130, 143)."""
    return 128 + signal_number
