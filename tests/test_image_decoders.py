"""The two PNG decoders of data=image_folder (OpenCV where installed, else Pillow) give the same images:
the same shapes and channels, pixels within a few grey levels (their resizing filters differ)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aetrain.data import image_folder
from aetrain.data.image_cache import decoded_images
from aetrain.data.image_folder import read_image_with_pillow, read_png_with_opencv

pytest.importorskip("cv2", reason="the fast-decode extra (make setup installs it)")


def _photo(height: int, width: int) -> np.ndarray:
    """Smooth colour gradients with an edge: what resizing filters disagree on most, within reason."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1)
    rgb[height // 3 : height // 2, width // 4 : width // 2] = [250, 20, 120]
    return rgb.astype(np.uint8)


MODES = {  # a PNG of each kind people save, from the same picture
    "RGB": lambda rgb: Image.fromarray(rgb, "RGB"),
    "RGBA": lambda rgb: Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]), "RGBA"),
    "L": lambda rgb: Image.fromarray(rgb, "RGB").convert("L"),
    "LA": lambda rgb: Image.fromarray(rgb, "RGB").convert("LA"),
    "P": lambda rgb: Image.fromarray(rgb, "RGB").convert("P", palette=Image.Palette.ADAPTIVE),
}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    ("stored", "wanted"), [((64, 64), (28, 28)), ((40, 50), (40, 50)), ((20, 16), (32, 32))]
)
def test_opencv_and_pillow_decode_a_png_alike(tmp_path, mode, channels, stored, wanted):
    path = tmp_path / f"{mode}.png"
    MODES[mode](_photo(*stored)).save(path)
    fast = read_png_with_opencv(path, *wanted, channels)
    reference = read_image_with_pillow(path, *wanted, channels)
    assert fast is not None and fast.dtype == np.uint8
    assert fast.shape == reference.shape == (wanted if channels == 1 else (*wanted, 3))
    difference = np.abs(fast.astype(int) - reference.astype(int))
    if stored == wanted:  # no resizing: only the colour conversions' rounding
        assert difference.max() <= 1
    else:
        assert difference.mean() <= 3.0, difference.mean()


def test_a_16_bit_png_goes_to_pillow_which_scales_it(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(path)
    assert read_png_with_opencv(path, 8, 8, 1) is None  # not plain 8-bit pixels
    np.testing.assert_array_equal(image_folder.read_image(path, 8, 8, 1), np.full((8, 8), 255, np.uint8))


def test_a_cache_made_by_the_other_decoder_is_decoded_again(tmp_path, monkeypatch):
    monkeypatch.setenv("AETRAIN_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "images"
    folder.mkdir()
    files = []
    for index in range(3):
        files.append(folder / f"{index}.png")
        Image.fromarray(_photo(8, 8)).save(files[-1])
    calls = []

    def counting(path):
        calls.append(path)
        return read_image_with_pillow(path, 8, 8, 3)

    for decoded_by in ("pillow", "pillow", "opencv"):
        decoded_images(files, folder, (8, 8, 3), counting, workers=1, decoded_by=decoded_by)
    assert len(calls) == 6  # the second pillow run read the cache; the opencv one did not
