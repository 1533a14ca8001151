"""The peak memory of a command run as a child process, under a memory limit where this machine lets
one be set.

Two peaks: the child's anonymous memory (``RssAnon`` + ``VmSwap`` of /proc/PID/status, polled every
few milliseconds): what it holds and cannot hand back, the figure that grows when a data set is
copied into memory; and its resident set (the kernel's ``ru_maxrss``, from ``wait4``), which also
counts the pages of memory-mapped files it read, page cache the kernel takes back when memory runs
short. The limit is a memory cgroup of its own (v2 ``memory.max``, or v1 ``memory.limit_in_bytes``)
made below this process's own, when it may be made here (root, a writable cgroup folder); ``limited``
says whether it was, and the cgroup's own peak (all it charged, page cache included) comes back too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.005
CGROUPS = Path("/sys/fs/cgroup")
#: A cgroup's (limit, peak) files, per version
V2_FILES = ("memory.max", "memory.peak")
V1_FILES = ("memory.limit_in_bytes", "memory.max_usage_in_bytes")
#: Run the command inside the cgroup whose ``cgroup.procs`` is $0: the shell joins it, then becomes it.
JOIN_CGROUP = 'echo $$ > "$0" && exec "$@"'


@dataclass(frozen=True)
class MeasuredRun:
    returncode: int  # negative: killed by that signal (-9: by the limit's OOM killer)
    output: str  # stdout and stderr together
    wall_seconds: float
    peak_anonymous: int  # bytes
    peak_resident: int  # bytes
    limited: bool  # whether it ran under the limit asked for
    cgroup_peak: int | None  # bytes charged to its cgroup at most (None: it ran in none of its own)


def run_measured(
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    limit: int | None = None,
) -> MeasuredRun:
    """Run ``command`` to its end, its peaks polled; under a ``limit`` of bytes where a cgroup can be
    made (``limit=None``: in a cgroup without a limit where one can be made, for its peak)."""
    with memory_cgroup(limit) as group, tempfile.TemporaryFile("w+") as output:
        procs, peak_file = group if group else (None, None)
        started = time.perf_counter()
        joined = ["sh", "-c", JOIN_CGROUP, str(procs), *command] if procs else command
        child = subprocess.Popen(joined, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
        anonymous, status, usage = 0, 0, None
        while usage is None:
            anonymous = max(anonymous, _anonymous_bytes(child.pid))
            pid, status, rusage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                usage = rusage
            else:
                time.sleep(POLL_SECONDS)
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, with its rusage
        wall = time.perf_counter() - started
        output.seek(0)
        return MeasuredRun(
            returncode=child.returncode,
            output=output.read(),
            wall_seconds=wall,
            peak_anonymous=anonymous,
            peak_resident=usage.ru_maxrss * 1024,
            limited=bool(procs) and limit is not None,
            cgroup_peak=_read_int(peak_file) if peak_file else None,
        )


def _anonymous_bytes(pid: int) -> int:
    """RssAnon + VmSwap of ``pid`` now, in bytes (0 once it is gone)."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "VmSwap:")):
                total += int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return 0
    return total


@contextlib.contextmanager
def memory_cgroup(limit: int | None) -> Iterator[tuple[Path, Path] | None]:
    """(its cgroup.procs, its peak file) of a new memory cgroup with ``limit`` below this process's
    own, removed after; None where none can be made here."""
    made = _make_cgroup(limit)
    if made is None:
        yield None
        return
    folder, peak_file = made
    try:
        yield folder / "cgroup.procs", peak_file
    finally:
        for _ in range(100):  # its last process may take a moment to leave
            try:
                folder.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def _make_cgroup(limit: int | None) -> tuple[Path, Path] | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            parent, files = CGROUPS / "memory" / path.lstrip("/"), V1_FILES
        elif controllers == "" and (CGROUPS / "cgroup.controllers").is_file():
            parent, files = CGROUPS / path.lstrip("/"), V2_FILES
            if "memory" not in _read_text(parent / "cgroup.subtree_control").split():
                continue  # its children get no memory controller (v2 delegates it explicitly)
        else:
            continue
        folder = parent / f"aetrain-measured-{os.getpid()}-{time.monotonic_ns()}"
        try:
            folder.mkdir()
        except OSError:
            continue
        try:
            if limit is not None:
                (folder / files[0]).write_text(str(limit))
            if (folder / files[1]).is_file():
                return folder, folder / files[1]
        except OSError:
            pass
        folder.rmdir()
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None
