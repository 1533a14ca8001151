"""How much more memory this process may take: what an image folder decoded into memory (its cache
not writable) is checked against before decoding starts, so a run that cannot fit says so at once.

The least of the machine's ``MemAvailable`` (/proc/meminfo) and, for each memory cgroup this process
is in and each of its ancestors, its limit less its use (cgroup v2 ``memory.max`` and
``memory.current``, v1 ``memory.limit_in_bytes`` and ``memory.usage_in_bytes``), the page cache it
could drop (``inactive_file``) counted as free. None where none of them can be read (not Linux).
"""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")
CGROUPS = Path("/sys/fs/cgroup")
#: (limit, usage, the memory.stat key of its droppable page cache) per cgroup version
V2_FILES = ("memory.max", "memory.current", "inactive_file")
V1_FILES = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")


def available_memory(proc: Path = PROC, cgroups: Path = CGROUPS) -> int | None:
    """Bytes this process may still allocate before the machine or its cgroup runs out, or None."""
    found = [_mem_available(proc), *_cgroup_rooms(proc, cgroups)]
    known = [room for room in found if room is not None]
    return min(known) if known else None


def _mem_available(proc: Path) -> int | None:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_rooms(proc: Path, cgroups: Path) -> list[int | None]:
    """The room left under each limit on the way from this process's memory cgroups to their roots."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return []
    rooms = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: mounted alone, or beside v1 as unified/
            mounts = [m for m in (cgroups, cgroups / "unified") if (m / "cgroup.controllers").is_file()]
            files = V2_FILES
        elif "memory" in controllers.split(","):
            mounts, files = [cgroups / "memory"], V1_FILES
        else:
            continue
        for mount in mounts:
            folder = mount / path.lstrip("/")
            while True:  # from this process's own group up to the mount's root
                rooms.append(_room(folder, files))
                if folder == mount:
                    break
                folder = folder.parent
    return rooms


def _room(folder: Path, files: tuple[str, str, str]) -> int | None:
    """The limit of the cgroup at ``folder`` less its use, or None: no limit, or no such group here."""
    limit_file, usage_file, droppable_key = files
    try:
        limit = (folder / limit_file).read_text().strip()
        usage = int((folder / usage_file).read_text())
        stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
    except (OSError, ValueError):
        return None
    if limit == "max" or int(limit) >= 1 << 60:  # v1 writes "no limit" as a page-rounded 2**63
        return None
    return max(0, int(limit) - usage + int(stat.get(droppable_key, 0)))
