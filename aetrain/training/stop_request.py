"""A request to stop a run, set from outside it (commands/train.py's signal handlers), and its phase.

A run goes through the phases ``training``, ``evaluation`` (the test set) and ``pictures`` (the PNGs
and ``reconstructions.npz``). During training the request is only recorded: the training loop looks
at it between batches and stops cleanly, so a Ctrl-C never interrupts a checkpoint being written.
After training nothing can be lost (the checkpoints are complete and every file is written
atomically), and one matplotlib call on a large grid can take tens of seconds: there the request
raises :class:`StopNow` at once, from the signal handler, wherever the run is; a second signal
raises :class:`AbortNow`. A job of a sweep also obeys the sweep's stop request, a file in the sweep
folder (:func:`request_stop`), which the sweep's process writes on a signal, and stops as on SIGHUP
when the sweep's process on this machine died without one (kill -9).

The sweep's jobs run in the sweep's process (the sequential launcher) or in others (parallel,
submitit), so a stop reaches them through that file, :data:`STOP_REQUEST`: every job looks for it at
each batch end (a ``stat``, microseconds) and before it starts. A job that receives a signal itself
writes it too, so one signal anywhere stops the whole sweep the same way; but not a SLURM job
(:func:`keep_signals_to_this_job`): SLURM signals one job to preempt, requeue, cancel it or end its
time, and that is this job's own matter.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from aetrain import exit_codes
from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import write_text_atomically
from aetrain.run_folder.lock import holder_is_gone

STOP_REQUEST = layout.STOP_REQUEST

TRAINING, EVALUATION, PICTURES = "training", "evaluation", "pictures"
REDELIVER_SECONDS = 0.2  # a stop that landed inside TensorFlow is delivered again after this
WATCH_SECONDS = 0.5  # how often a sweep job, after training, looks for the sweep's stop request
OWNER_CHECK_SECONDS = 2.0  # how often a sweep job looks whether the sweep's process still lives
_signals_are_this_jobs_own = False  # set by keep_signals_to_this_job (a SLURM job's process)


class StopNow(BaseException):
    """Raised in the evaluation or pictures phase by a stop request. A BaseException, like
    KeyboardInterrupt, so that no library's ``except Exception`` swallows it."""

    def __init__(self, phase: str) -> None:
        super().__init__(phase)
        self.phase = phase


class AbortNow(BaseException):
    """A second Ctrl-C / SIGTERM: leave at once (files on disk are whole: every write is atomic)."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


class StopRequest:
    """Set once by :meth:`ask`; read by ``callbacks.StopOnRequest`` at every batch end in training,
    and by :meth:`enter` / :meth:`check` between and inside the later phases."""

    def __init__(self, sweep_dir: Path | None = None) -> None:
        self.signal_number: int | None = None
        self.sweep_dir = sweep_dir
        self.phase = TRAINING
        self.reason: str | None = None  # why, when no signal asked (the sweep's process is gone)
        self._at_once = False
        self._nudged = False
        self._closed = False
        self._watcher: threading.Thread | None = None
        self._next_owner_check = time.monotonic() + OWNER_CHECK_SECONDS

    def ask(self, signal_number: int, frame: FrameType | None = None) -> None:
        """Record the request; after training, stop at once (raises StopNow), from the signal
        handler's ``frame``."""
        self.signal_number = signal_number
        self.stop_now_if_safe(frame)

    def stop_now_if_safe(self, frame: FrameType | None) -> None:
        """After training, raise StopNow here, unless ``frame`` runs inside TensorFlow or Keras: an
        exception raised there can cross TensorFlow's C++ (a traced function calling back into
        Python) and come out as a RuntimeError. Then the stop is delivered again in
        REDELIVER_SECONDS, until it lands in aetrain's own code or a library that takes it."""
        if not self._at_once:
            return
        if _inside_tensorflow(frame):
            self._nudge_later(REDELIVER_SECONDS)
            return
        self._at_once = False  # one StopNow: what follows records the stop
        raise StopNow(self.phase)

    def take_nudge(self) -> bool:
        """Whether the signal being handled is this request's own nudge (not a second signal); in a
        SLURM job, any signal after the first: slurmstepd and srun each deliver SLURM's SIGTERM, and
        the job is stopping already (SLURM kills it KillWait seconds later in any case)."""
        nudged, self._nudged = self._nudged, False
        return nudged or (_signals_are_this_jobs_own and self.signal_number is not None)

    def _nudge_later(self, seconds: float) -> None:
        timer = threading.Timer(seconds, self._nudge)
        timer.daemon = True
        timer.start()

    def _nudge(self) -> None:
        """Signal this process again (a real signal: it also wakes a blocking call); the handler
        knows it by :meth:`take_nudge` and decides."""
        if self._closed:
            return
        self._nudged = True
        os.kill(os.getpid(), self.signal_number or signal.SIGTERM)

    def enter(self, phase: str) -> None:
        """Start ``phase`` (evaluation, pictures): stop here if asked already, else at once when asked.
        A sweep job also watches the sweep's stop request from now on: its process gets no signal
        of its own when the sweep is stopped, and a picture can take tens of seconds."""
        self.phase = phase
        self._at_once = True
        self.check()
        if self.sweep_dir is not None and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch_sweep_request, daemon=True)
            self._watcher.start()

    def _watch_sweep_request(self) -> None:
        while not self._closed:
            time.sleep(WATCH_SECONDS)
            if self._at_once and self.signal_number is None and self.requested:
                self._nudge()
                return

    def close(self) -> None:
        """The run is over: no more watching or nudging."""
        self._closed, self._at_once = True, False

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
        if self.signal_number is None and self.sweep_dir and self._sweep_process_gone():
            self.signal_number, self.reason = int(signal.SIGHUP), "the sweep's process is gone"
        return self.signal_number is not None

    def _sweep_process_gone(self) -> bool:
        """Whether the sweep's process on this machine died without a word (kill -9), checked at most
        every OWNER_CHECK_SECONDS: its jobs then stop as on a signal, instead of training on alone."""
        now = time.monotonic()
        if now < self._next_owner_check:
            return False
        self._next_owner_check = now + OWNER_CHECK_SECONDS
        return holder_is_gone(self.sweep_dir)

    @property
    def stops_at_once(self) -> bool:
        return self._at_once

    @property
    def signal_name(self) -> str:
        name = signal.Signals(self.signal_number).name if self.signal_number else "a stop request"
        return f"{name} ({self.reason})" if self.reason else name

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal (130, 143)."""
        return exit_codes.stopped_by(self.signal_number or signal.SIGINT)


# --- a sweep's stop request: a file in the sweep folder -------------------------------------------


def keep_signals_to_this_job() -> None:
    """This process runs one SLURM job of a sweep (aetrain.sweeps.worker): a signal it gets stops
    this job, not the sweep (see the module docstring), and a repeat of it is no second signal."""
    global _signals_are_this_jobs_own
    _signals_are_this_jobs_own = True


def request_stop(sweep_dir: Path, signal_number: int, abort: bool = False) -> None:
    """Ask every job of the sweep to stop at its next batch end (``abort``: at once). The first
    signal's name is kept, so the record says what stopped the sweep. Nothing in a SLURM job's
    process (:func:`keep_signals_to_this_job`)."""
    if _signals_are_this_jobs_own:
        return
    current = read_stop_request(sweep_dir)
    name = current["signal"] if current else signal.Signals(signal_number).name
    with contextlib.suppress(OSError):  # the jobs' own handlers still stop them
        write_text_atomically(sweep_dir / STOP_REQUEST, json.dumps({"signal": name, "abort": abort}))


def read_stop_request(sweep_dir: Path) -> dict[str, Any] | None:
    """``{"signal": "SIGTERM", "abort": False}`` once the sweep was asked to stop, else None."""
    try:
        raw = json.loads((sweep_dir / STOP_REQUEST).read_text())
        return {"signal": str(raw["signal"]), "abort": bool(raw.get("abort"))}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def clear_stop_request(sweep_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (sweep_dir / STOP_REQUEST).unlink()


def signal_number(name: str | None) -> int:
    try:
        return int(signal.Signals[name]) if name else int(signal.SIGINT)
    except KeyError:
        return int(signal.SIGINT)


_LIBRARIES_THAT_MUST_NOT_BE_CUT = (f"{os.sep}tensorflow{os.sep}", f"{os.sep}keras{os.sep}")


def _inside_tensorflow(frame: FrameType | None) -> bool:
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in _LIBRARIES_THAT_MUST_NOT_BE_CUT):
            return True
        frame = frame.f_back
    return False
