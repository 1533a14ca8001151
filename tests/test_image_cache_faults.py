"""Bad input to the image cache: every unreadable, truncated or bomb-sized file is named at once (exit 3),
by worker processes as by threads; a cache folder that cannot be written decodes into memory with
one warning, or refuses (exit 5) where memory would not suffice; a full disk leaves no partial cache."""

from __future__ import annotations

import errno
import logging
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from aetrain.data import image_cache, npy_cache
from aetrain.data.image_cache import FRAMEWORK_BYTES, ImageCacheUnwritable, cache_folder, decoded_images
from aetrain.data.image_folder import read_image
from aetrain.data.raw import DataError

from cli_runs import aetrain, plain_text
from read_only_folders import read_only

SHAPE = (64, 64, 3)  # 12 KiB a row: a few dozen rows overfill the small disks below
DISK = 256 * 1024


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AETRAIN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def write_pngs(folder: Path, count: int) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.full((16, 16, 3), 10 * index, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"good-{index:02d}.png")
    return sorted(folder.glob("*.png"))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 30_000) -> bytes:
    """A 100-byte PNG that declares side x side pixels: Pillow refuses it as a decompression bomb."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b"")


def add_bad_files(folder: Path) -> list[str]:
    """A garbage file, a PNG cut in half, a bomb-sized PNG and an empty file: their names."""
    import io

    from PIL import Image

    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(noise, "PNG")
    whole = noise.getvalue()
    bad = {
        "garbage.png": b"this is not an image",
        "truncated.png": whole[: len(whole) // 2],
        "bomb.png": bomb_png(),
        "empty.jpg": b"",
    }
    for name, content in bad.items():
        (folder / name).write_bytes(content)
    return sorted(bad)


def decode_pngs(path: str) -> np.ndarray:
    return read_image(path, *SHAPE)


def never_decode(path: str) -> np.ndarray:
    raise AssertionError(f"{path} was decoded again: the cache should have held it")


class CountingDecoder:
    """Decodes a file to a row filled with its first byte, and counts the files it decoded."""

    def __init__(self) -> None:
        self.decoded: list[str] = []

    def __call__(self, name: str) -> np.ndarray:
        path = Path(name)
        self.decoded.append(path.name)
        return np.full(SHAPE, path.read_bytes()[0], dtype=np.uint8)


def byte_files(folder: Path, count: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(start, start + count):
        (folder / f"{index:03d}.png").write_bytes(bytes([index % 256]))
    return sorted(folder.glob("*.png"))


def rows_of(files: list[Path]) -> np.ndarray:
    return np.stack([np.full(SHAPE, path.read_bytes()[0], dtype=np.uint8) for path in files])


def warnings_in(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


def leftovers(cache: Path) -> list[str]:
    """Files of the image cache other than its lock files and a whole cache's index and array."""
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


@pytest.mark.parametrize("pool", ["threads", "worker processes"])
def test_every_bad_file_is_named_at_once_and_the_others_are_cached(tmp_path, monkeypatch, pool):
    if pool == "worker processes":
        monkeypatch.setattr(image_cache, "PROCESS_FILES", 4)
    folder = tmp_path / "photos"
    good = write_pngs(folder, 8)
    bad = add_bad_files(folder)
    files = sorted(p for p in folder.iterdir())
    with pytest.raises(DataError) as refused:
        decoded_images(files, folder, SHAPE, decode_pngs, workers=2)
    message = str(refused.value)
    assert refused.value.exit_code == 3
    assert message.startswith(f"4 of the 12 images of {folder} cannot be read")
    for name in bad:
        assert f"{folder / name} cannot be read as an image" in message, name
    assert "DecompressionBombError" in message and "image file is truncated" in message
    assert message.count("Replace or remove it") == 0  # said once, for all of them
    assert "good-" not in message and "The 8 other images are cached" in message
    for name in bad:  # the user removes them: the good rows come from the cache, nothing is decoded
        (folder / name).unlink()
    images = decoded_images(good, folder, SHAPE, never_decode, workers=2)
    np.testing.assert_array_equal(images, np.stack([decode_pngs(path) for path in good]))


def test_the_cli_names_every_bad_file_and_exits_3(tmp_path):
    folder = tmp_path / "photos"
    write_pngs(folder, 3)
    bad = add_bad_files(folder)
    done = aetrain("data=image_folder", f"data.dir={folder}", cwd=tmp_path, without_tensorflow=True)
    text = plain_text(done.stdout + done.stderr)
    assert done.returncode == 3, text
    assert all(name in text for name in bad) and "Traceback" not in text


@pytest.mark.parametrize("how", ["read-only folder", "a file where the folder should be"])
def test_an_unwritable_cache_folder_decodes_into_memory_with_one_warning(
    tmp_path, monkeypatch, caplog, cache_home, how
):
    files = byte_files(tmp_path / "photos", 5)
    decoder = CountingDecoder()
    if how == "read-only folder":
        cache_home.mkdir()
        with read_only(cache_home), caplog.at_level(logging.INFO, logger="aetrain"):
            images = decoded_images(files, files[0].parent, SHAPE, decoder)
    else:
        cache_home.write_text("not a folder")
        with caplog.at_level(logging.INFO, logger="aetrain"):
            images = decoded_images(files, files[0].parent, SHAPE, decoder)
    np.testing.assert_array_equal(images, rows_of(files))
    assert not isinstance(images, np.memmap) and len(decoder.decoded) == 5
    warnings = warnings_in(caplog)
    assert len(warnings) == 1 and "cannot be written" in warnings[0] and "decoded into memory" in warnings[0]


def test_an_unwritable_cache_whose_images_would_not_fit_in_memory_is_refused_before_decoding(
    tmp_path, monkeypatch, cache_home
):
    files = byte_files(tmp_path / "photos", 5)
    cache_home.write_text("not a folder")
    monkeypatch.setattr(image_cache, "available_memory", lambda: FRAMEWORK_BYTES)  # no room for the rows
    decoder = CountingDecoder()
    with pytest.raises(ImageCacheUnwritable) as refused:
        decoded_images(files, files[0].parent, SHAPE, decoder)
    assert refused.value.exit_code == 5 and decoder.decoded == []
    message = str(refused.value)
    assert "The 5 images of" in message and "0.1 MB" in message and "$AETRAIN_CACHE_DIR" in message


class FullDiskFile:
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, path: Path, room: list[int], mode: str = "wb") -> None:
        self.handle, self.room = open(path, mode), room  # noqa: SIM115 (closed by __exit__)

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        if size > self.room[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room[0] -= size
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


@pytest.fixture(params=["tmpfs", "simulated"])
def small_disk(request, cache_home, monkeypatch):
    """The cache folder on a disk of DISK bytes: a tmpfs where this process may mount one (root), else
    a disk whose files and reservations fail past DISK bytes (ENOSPC), as a full disk does."""
    cache_home.mkdir()
    if request.param == "tmpfs":
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(cache_home)])
        if mounted.returncode:
            pytest.skip("no tmpfs can be mounted here (not root); the simulated disk covers it")
        yield cache_home
        subprocess.run(["umount", str(cache_home)], check=True)
        return
    room = [DISK]

    def reserve(fd: int, offset: int, length: int) -> None:
        if length > room[0]:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(npy_cache, "_created", lambda path: FullDiskFile(path, room))
    monkeypatch.setattr(npy_cache, "_opened", lambda path: FullDiskFile(path, room, "r+b"))
    monkeypatch.setattr(npy_cache.os, "posix_fallocate", reserve)
    yield cache_home


def test_a_disk_too_full_for_the_cache_is_found_before_decoding_and_keeps_the_old_cache(
    tmp_path, small_disk, caplog
):
    folder = tmp_path / "photos"
    first = byte_files(folder, 8)  # 96 KiB: fits
    np.testing.assert_array_equal(decoded_images(first, folder, SHAPE, CountingDecoder()), rows_of(first))
    whole = leftovers(small_disk)
    everything = byte_files(folder, 30, start=8)  # 38 rows, 456 KiB: does not
    decoder = CountingDecoder()
    with caplog.at_level(logging.WARNING, logger="aetrain"):
        images = decoded_images(everything, folder, SHAPE, decoder)
    np.testing.assert_array_equal(images, rows_of(everything))
    assert len(decoder.decoded) == 30  # the reservation failed before any decoding: once each
    (warning,) = warnings_in(caplog)
    assert "No space left on device" in warning
    assert leftovers(small_disk) == whole  # no partial file; the old cache is whole, and still used
    np.testing.assert_array_equal(decoded_images(first, folder, SHAPE, never_decode), rows_of(first))


def test_a_disk_that_fills_while_the_rows_are_written_leaves_no_partial_file(
    tmp_path, small_disk, monkeypatch, caplog
):
    """A file system that cannot reserve space ahead: the write itself fails midway."""
    monkeypatch.setattr(npy_cache, "_reserve", lambda handle, nbytes: handle.flush())
    files = byte_files(tmp_path / "photos", 40)  # 480 KiB
    with caplog.at_level(logging.WARNING, logger="aetrain"):
        images = decoded_images(files, files[0].parent, SHAPE, CountingDecoder())
    np.testing.assert_array_equal(images, rows_of(files))
    (warning,) = warnings_in(caplog)
    assert "No space left on device" in warning
    assert leftovers(small_disk) == []
    assert not cache_folder(files[0].parent, *SHAPE).joinpath("index.json").exists()


def test_a_multi_line_refusal_lists_files_in_folder_order(tmp_path):
    files = byte_files(tmp_path / "photos", 6)

    def refuse_odd(path: str) -> np.ndarray:
        if int(Path(path).stem) % 2:
            raise DataError(f"{path} cannot be read as an image (test). Replace or remove it.")
        return np.zeros(SHAPE, dtype=np.uint8)

    with pytest.raises(DataError) as refused:
        decoded_images(files, files[0].parent, SHAPE, refuse_odd)
    lines = str(refused.value).splitlines()
    assert [Path(line.split()[0]).name for line in lines[1:4]] == ["001.png", "003.png", "005.png"]
