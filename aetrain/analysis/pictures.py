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


def reconstruction_grid(
    rows: Sequence[tuple[str, np.ndarray]],
    titles: Sequence[str],
    path: Path,
    horizontal_labels: bool = False,
) -> None:
    """A labelled grid: one row per (label, images), e.g. original / noisy input / reconstruction.

    ``horizontal_labels`` writes row labels across, for labels of several lines (a sweep's overrides).
    """
    columns = len(titles)
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(1.3 * columns, 1.45 * len(rows) + 0.3), squeeze=False
    )
    for r, (label, images) in enumerate(rows):
        for c in range(columns):
            axis = axes[r][c]
            show_image(axis, images[c])
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_title(titles[c], fontsize=7)
        if horizontal_labels:
            axes[r][0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
        else:
            axes[r][0].set_ylabel(label, fontsize=8)
    figure.tight_layout()
    _save(figure, path)


def sample_grid(images: np.ndarray, path: Path, title: str, columns: int = 10) -> None:
    """New images in a grid (e.g. VAE decodings of codings drawn from N(0, I))."""
    rows = int(np.ceil(len(images) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.2 * rows + 0.4), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            show_image(axis, images[index])
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


def denoising_curve_plot(curve: Sequence[dict], kind: str, path: Path) -> None:
    """MSE to the clean images of the noisy input and of its reconstruction, against the noise level."""
    levels = [point["level"] for point in curve]
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(levels, [p["noisy_input_mse"] for p in curve], marker="o", label="noisy input")
    axis.plot(levels, [p["reconstruction_mse"] for p in curve], marker="o", label="reconstruction")
    axis.set_xlabel("Gaussian noise stddev" if kind == "gaussian" else "dropout rate")
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
