"""Console scripts that end their process as soon as the command is done.

Once a command has returned, the interpreter still frees every module it loaded, one object at a
time: after TensorFlow or JAX that is most of a second of every run, spent on nothing the user asked
for (docs/performance.md). A command's process ends instead right after the exit handlers that libraries
registered (MLflow's, logging's flush, multiprocessing's) have run and the standard streams are
flushed. Where a non-daemon thread or a child process is still alive, or the command raised, the
interpreter ends as it always does.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def console_script(target: str) -> Callable[[], NoReturn]:
    """The console script of ``target`` ("module:function", imported when the script runs)."""

    def run() -> NoReturn:
        try:
            status = exit_status(command(target)())
        except SystemExit as exit_:
            status = exit_status(exit_.code)
        end_process(status)

    run.target = target  # what the command runs in a process that must go on (the tests')
    return run


def command(target: str) -> Callable[[], object]:
    """The command function ``target`` ("module:function") names."""
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def exit_status(code: object) -> int:
    """The status ``sys.exit(code)`` gives a process: an int as is, None 0, anything else printed, 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def end_process(status: int) -> NoReturn:
    """Exit with ``status``: at once where nothing is left running, else as the interpreter does."""
    if not _nothing_left_running():
        sys.exit(status)
    atexit._run_exitfuncs()  # what the interpreter would run first: the libraries' own handlers
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing left to write it to
            stream.flush()
    os._exit(status)


def _nothing_left_running() -> bool:
    threads = [thread for thread in threading.enumerate() if thread is not threading.main_thread()]
    return not any(not thread.daemon for thread in threads) and not multiprocessing.active_children()
