"""The errors aetrain reports as one paragraph instead of a traceback, each knowing its exit code.

Every layer raises its own (``ConfigError``, ``DataError``, ``RunFolderBusy``, ...), derived from
:class:`AetrainError` with the code of :mod:`aetrain.exit_codes` it ends a command with; every
command turns one into what it prints and exits with through :func:`failure`, and nowhere else.
This module imports nothing of aetrain but that table, so the lowest layer may import it.
"""

from __future__ import annotations

from aetrain import exit_codes


class AetrainError(Exception):
    """An error a user can act on: the message names what went wrong and the fix.

    Each subclass sets ``exit_code``, a class attribute (an instance may set its own, as a stop by a
    signal does: 128 + the signal's number); a subclass without one is refused where it is defined.
    """

    exit_code: int

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "exit_code", None), int):
            raise TypeError(f"{cls.__qualname__} sets no exit_code (one of aetrain.exit_codes)")


def failure(error: AetrainError | OSError) -> tuple[str, int]:
    """The message and exit code a command ends with on ``error``: the error's own code, or for an
    OSError no aetrain code caught (a library's write that failed midway, e.g. on a full disk) the
    code of an output that cannot be written."""
    if isinstance(error, AetrainError):
        return str(error), error.exit_code
    return str(error), exit_codes.OUTPUT
