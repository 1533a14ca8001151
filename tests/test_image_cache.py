"""An image folder is decoded once: later reads map the cache, a changed folder decodes only what
changed, a damaged cache is rebuilt, two readers at once decode once."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from aetrain.data import image_cache
from aetrain.data.image_cache import cache_folder, decoded_images

SHAPE = (4, 5)


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AETRAIN_CACHE_DIR", str(tmp_path / "cache"))
    images = tmp_path / "images"
    images.mkdir()
    for index in range(6):
        (images / f"{index}.png").write_bytes(bytes([index]) * (index + 1))
    return images


class CountingDecoder:
    """Decodes a file to an image filled with its first byte, and counts the files it decoded."""

    def __init__(self, pause: float = 0.0) -> None:
        self.decoded: list[str] = []
        self.pause = pause
        self.lock = threading.Lock()

    def __call__(self, name: str) -> np.ndarray:
        path = Path(name)
        time.sleep(self.pause)
        with self.lock:
            self.decoded.append(path.name)
        return np.full(SHAPE, path.read_bytes()[0], dtype=np.uint8)


def files_of(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def read(folder: Path, decoder: CountingDecoder) -> np.ndarray:
    return decoded_images(files_of(folder), folder, SHAPE, decoder)


def expected(folder: Path) -> np.ndarray:
    return np.stack([np.full(SHAPE, path.read_bytes()[0], dtype=np.uint8) for path in files_of(folder)])


def test_the_second_read_decodes_nothing_and_maps_the_same_images(folder):
    first, second = CountingDecoder(), CountingDecoder()
    np.testing.assert_array_equal(read(folder, first), expected(folder))
    again = read(folder, second)
    assert len(first.decoded) == 6 and second.decoded == []
    assert isinstance(again, np.memmap) and not again.flags.writeable
    np.testing.assert_array_equal(again, expected(folder))


def test_a_changed_folder_decodes_only_what_changed_and_says_so(folder, caplog):
    read(folder, CountingDecoder())
    (folder / "2.png").write_bytes(b"\x09changed")
    (folder / "7.png").write_bytes(b"\x07")
    (folder / "4.png").unlink()
    decoder = CountingDecoder()
    with caplog.at_level(logging.INFO, logger="aetrain"):
        images = read(folder, decoder)
    assert sorted(decoder.decoded) == ["2.png", "7.png"]
    np.testing.assert_array_equal(images, expected(folder))
    assert "1 files added, 1 changed, 1 removed" in caplog.text


@pytest.mark.parametrize("stat_by", ["this process", "two processes"])
def test_a_changed_file_is_found_by_its_size_or_time_however_the_folder_is_stat_ed(
    folder, monkeypatch, stat_by
):
    """A large folder is stat'ed by two forked processes on a cached start (the threshold lowered)."""
    if stat_by == "two processes":  # forked even where the test worker has loaded a framework
        monkeypatch.setattr(image_cache, "PARALLEL_STAT_FILES", 2)
        monkeypatch.setattr(image_cache, "_framework_loaded", lambda: False)
    read(folder, CountingDecoder())
    unchanged = CountingDecoder()
    np.testing.assert_array_equal(read(folder, unchanged), expected(folder))
    assert unchanged.decoded == []
    os.utime(folder / "5.png", ns=(1, 1))  # same bytes, another time
    (folder / "1.png").write_bytes(b"\x01 and longer")  # same first byte, another size
    decoder = CountingDecoder()
    np.testing.assert_array_equal(read(folder, decoder), expected(folder))
    assert sorted(decoder.decoded) == ["1.png", "5.png"]


def test_a_damaged_cache_is_rebuilt_never_used(folder, caplog):
    read(folder, CountingDecoder())
    (cached,) = cache_folder(folder, *SHAPE, 1).glob("images-*.npy")
    cached.write_bytes(cached.read_bytes()[:100])  # cut short, as a full disk or a kill would
    decoder = CountingDecoder()
    with caplog.at_level(logging.INFO, logger="aetrain"):
        images = read(folder, decoder)
    assert len(decoder.decoded) == 6 and "damaged" in caplog.text
    np.testing.assert_array_equal(images, expected(folder))


def test_two_readers_at_once_decode_the_folder_once(folder):
    decoder = CountingDecoder(pause=0.05)
    results = []
    readers = [threading.Thread(target=lambda: results.append(read(folder, decoder))) for _ in range(2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert sorted(decoder.decoded) == sorted(path.name for path in files_of(folder))  # each file once
    for images in results:
        np.testing.assert_array_equal(images, expected(folder))


def test_worker_processes_decode_real_images_as_one_process_does(tmp_path, monkeypatch):
    """The large-folder path (worker processes) on real PNGs, its threshold lowered for the test."""
    import functools

    from PIL import Image

    from aetrain.data.image_folder import read_image

    monkeypatch.setenv("AETRAIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(image_cache, "PROCESS_FILES", 4)
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(8):
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    files = sorted(folder.glob("*.png"))
    decode = functools.partial(read_image, height=6, width=5, channels=3)
    images = decoded_images(files, folder, (6, 5, 3), decode, workers=2)
    np.testing.assert_array_equal(images, np.stack([decode(path) for path in files]))


def test_listing_a_folder_keeps_the_order_of_sorted_paths(tmp_path):
    """A cached start lists the folder with os.scandir (no stat per plain file): the files and their
    order (which the split is drawn from) are those of sorted Paths, as before; a symlinked folder is
    not entered."""
    from aetrain.data.image_folder import image_files

    names = ["a/b.png", "a-c/x.PNG", "a/sub/z.jpg", "B/y.jpeg", "a.png", "a0/q.png", "notes.txt", "a/c.gif"]
    for name in names:
        (tmp_path / "f" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "f" / name).write_bytes(b"x")
    (tmp_path / "f" / "linked").symlink_to(tmp_path / "f" / "a", target_is_directory=True)
    (tmp_path / "f" / "dir.png").mkdir()
    folder = tmp_path / "f"
    expected = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in (".png", ".jpg", ".jpeg") and not p.is_dir() and "linked" not in p.parts
    )
    assert image_files(folder) == [str(path) for path in expected] and len(expected) == 6
