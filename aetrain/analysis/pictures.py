"""Pictures of a run, written as PNG: reconstructions, VAE samples and manifolds, loss curves, coding maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from aetrain.run_folder.atomic_files import atomic_path


def show_image(axis: plt.Axes, image: np.ndarray) -> None:
    """One image on ``axis``: grey images (h, w) as ink on paper, colour images (h, w, 3) in colour.

    Pixels are clipped to [0, 1], as an image viewer would show them.
    """
    pixels = np.clip(image, 0.0, 1.0)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 3:
        axis.imshow(pixels)
    else:
        axis.imshow(pixels, cmap="binary", vmin=0.0, vmax=1.0)


def mosaic(rows: Sequence[Sequence[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Images tiled row by row on white paper, ``gap`` pixels apart: one picture to draw, so that a grid
    of a thousand images costs one ``imshow`` rather than a thousand axes."""
    first = np.asarray(rows[0][0])
    if first.ndim == 3 and first.shape[-1] == 1:
        first = first[..., 0]
    height, width = first.shape[:2]
    colour = first.ndim == 3
    columns = max(len(row) for row in rows)
    shape = (len(rows) * (height + gap) - gap, columns * (width + gap) - gap, *first.shape[2:])
    paper = np.full(
        shape, 1.0 if colour else 0.0, dtype=np.float32
    )  # white: ones in colour, zero ink in grey
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = r * (height + gap), c * (width + gap)
            paper[top : top + height, left : left + width] = np.reshape(image, first.shape)
    return paper


def reconstruction_grid(
    rows: Sequence[tuple[str, np.ndarray]],
    titles: Sequence[str],
    path: Path,
    horizontal_labels: bool = False,
) -> None:
    """A labelled grid: one row per (label, images), e.g. original / noisy input / reconstruction.

    ``horizontal_labels`` writes row labels across, for labels of several lines (a sweep's overrides).
    """
    columns, gap = len(titles), 2
    tiles = [[images[c] for c in range(columns)] for _, images in rows]
    height, width = np.asarray(tiles[0][0]).shape[:2]
    figure, axis = plt.subplots(figsize=(1.3 * columns, 1.45 * len(rows) + 0.3))
    show_image(axis, mosaic(tiles, gap))
    axis.xaxis.tick_top()
    axis.set_xticks([c * (width + gap) + width / 2 for c in range(columns)], titles, fontsize=7)
    rotation = (
        {"rotation": 0, "ha": "right", "va": "center"}
        if horizontal_labels
        else {"rotation": 90, "va": "center"}
    )
    axis.set_yticks([r * (height + gap) + height / 2 for r in range(len(rows))], [label for label, _ in rows])
    for label in axis.get_yticklabels():
        label.set(fontsize=8, **rotation)
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)
    figure.tight_layout()
    _save(figure, path)


def sample_grid(images: np.ndarray, path: Path, title: str, columns: int = 10) -> None:
    """New images in a grid (e.g. VAE decodings of codings drawn from N(0, I))."""
    rows = int(np.ceil(len(images) / columns))
    figure, axis = plt.subplots(figsize=(1.2 * columns, 1.2 * rows + 0.4))
    show_image(axis, mosaic([images[r * columns : (r + 1) * columns] for r in range(rows)]))
    axis.axis("off")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    _save(figure, path)


def manifold_grid(images: np.ndarray, coordinates: np.ndarray, path: Path, title: str) -> None:
    """Decoded images tiled on the 2-D coding grid they came from (rows: z2 falling, columns: z1 rising)."""
    size = len(coordinates)
    height, width = images.shape[1:3]
    channels = images.shape[3:]  # () for grey, (3,) for colour
    tiles = images.reshape(size, size, height, width, *channels).swapaxes(1, 2)
    figure, axis = plt.subplots(figsize=(6.4, 6.6))
    show_image(axis, tiles.reshape(size * height, size * width, *channels))
    labels = [f"{c:.1f}" for c in coordinates]
    axis.set_xticks(np.arange(size) * width + width / 2, labels, fontsize=6)
    axis.set_yticks(np.arange(size) * height + height / 2, labels[::-1], fontsize=6)
    axis.set_xlabel("coding z1")
    axis.set_ylabel("coding z2")
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    _save(figure, path)


def coding_map(
    points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: Path, title: str
) -> None:
    """A 2-D scatter of codings, one colour per class, with a legend naming the classes."""
    figure, axis = plt.subplots(figsize=(7.2, 5.6))
    colours = plt.get_cmap("tab10")
    for index, name in enumerate(class_names):
        chosen = labels == index
        if chosen.any():
            axis.scatter(*points[chosen].T, s=4, alpha=0.6, color=colours(index), label=name)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    figure.tight_layout()
    _save(figure, path)


def loss_curve(history: dict[str, list[float]], path: Path) -> None:
    """Training and validation loss per epoch (log scale when it spans a decade or more)."""
    figure, axis = plt.subplots(figsize=(5, 3.2))
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        values = history.get(key, [])
        if values:
            axis.plot(range(1, len(values) + 1), values, marker="o", label=label)
    values = [v for key in ("loss", "val_loss") for v in history.get(key, []) if np.isfinite(v) and v > 0]
    if values and max(values) / min(values) >= 10:
        axis.set_yscale("log")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    _save(figure, path)


def denoising_curve_plot(curve: Sequence[dict], level_label: str, path: Path) -> None:
    """MSE to the clean images of the noisy input and of its reconstruction, against the noise level
    (``level_label``: what the level is, e.g. the noise's ``level_label``, "dropout rate")."""
    levels = [point["level"] for point in curve]
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(levels, [p["noisy_input_mse"] for p in curve], marker="o", label="noisy input")
    axis.plot(levels, [p["reconstruction_mse"] for p in curve], marker="o", label="reconstruction")
    axis.set_xlabel(level_label)
    axis.set_ylabel("MSE to the clean image")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    _save(figure, path)


def unit_activation_histogram(unit_means: Sequence[float], target: float | None, path: Path) -> None:
    """Each coding unit's mean activation over the test set, as a histogram; the KL target as a line."""
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.hist(unit_means, bins=np.linspace(0.0, 1.0, 41), color="tab:blue", alpha=0.8)
    if target is not None:
        axis.axvline(target, color="tab:red", linestyle="--", label=f"KL target {target}")
        axis.legend()
    axis.set_xlabel("mean activation of a coding unit (test set)")
    axis.set_ylabel("units")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> None:
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=110)
    finally:
        plt.close(figure)
