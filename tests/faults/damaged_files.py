"""Ways a checkpoint or a run folder gets damaged or crafted, for the tests in tests/faults/."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path


def flip_bytes_inside(checkpoint: Path, member: str = "model.weights.h5", count: int = 16) -> None:
    """Invert ``count`` bytes in the middle of ``member``'s data; the zip directory stays intact."""
    with zipfile.ZipFile(checkpoint) as archive:
        info = archive.getinfo(member)
    raw = bytearray(checkpoint.read_bytes())
    name_length = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_length = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
    for offset in range(start, start + count):
        raw[offset] ^= 0xFF
    checkpoint.write_bytes(bytes(raw))


def rewrite_member(checkpoint: Path, member: str, change: Callable[[bytes], bytes]) -> None:
    """Replace ``member`` by ``change(its bytes)``: a crafted archive, whole (every CRC right)."""
    with zipfile.ZipFile(checkpoint) as archive:
        contents = {info.filename: archive.read(info) for info in archive.infolist()}
    contents[member] = change(contents[member])
    with zipfile.ZipFile(checkpoint, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)


def edit_stored_config(checkpoint: Path, edit: Callable[[dict], None]) -> None:
    """Change the run config inside the checkpoint's aetrain.json with ``edit(config)``."""

    def change(raw: bytes) -> bytes:
        metadata = json.loads(raw)
        edit(metadata["config"])
        return json.dumps(metadata).encode()

    rewrite_member(checkpoint, "aetrain.json", change)


def copy_run(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to, symlinks=True)
    return to


def folder_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (and every folder, as '-'), with its SHA-256: equal means untouched."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "-"
        for path in sorted(folder.rglob("*"))
    }
