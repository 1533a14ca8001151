"""The process one job of a parallel sweep runs in (``hydra/launcher=parallel``).

``python -m aetrain.sweeps.worker PAYLOAD RESULT PARENT_PID``: reads the job (cloudpickled, as joblib
sends it), runs it as Hydra's joblib launcher would, writes the cloudpickled JobReturn to RESULT.
A fresh process per job: TensorFlow's thread caps are set before its first op, and a worker that
dies (kill -9, out of memory) takes only its own job with it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to send SIGTERM when the sweep's process dies (even by kill -9): the job then stops
    at its next batch end, as on Ctrl-C, instead of training on alone."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the sweep's stop request still reaches the job
        return
    if os.getppid() != parent_pid:  # it died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def main(payload: str, result: str, parent_pid: str) -> int:
    die_with_parent(int(parent_pid))
    import cloudpickle
    from hydra_plugins.hydra_joblib_launcher._core import execute_job

    from aetrain.run_folder.atomic_files import atomic_path
    from aetrain.training.stop_request import AbortNow

    arguments = cloudpickle.loads(Path(payload).read_bytes())
    try:
        job_return = execute_job(*arguments)
    except AbortNow as abort:  # a second signal: files on disk are whole
        return abort.exit_code
    with atomic_path(Path(result)) as partial:
        partial.write_bytes(cloudpickle.dumps(job_return))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
