"""The time-to-quality picture: validation MSE against wall-clock seconds, seed recipe and aetrain, one
panel per preset."""

from __future__ import annotations

import math
from pathlib import Path


def plot_time_to_quality(races: list, path: Path) -> Path:
    """One panel per preset: a point per epoch at its end, in seconds from its process's start, for the
    recipe and for aetrain on each backend; the target dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = list(dict.fromkeys(race.preset for race in races))
    columns = min(3, len(presets))
    rows = math.ceil(len(presets) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), dpi=110, squeeze=False)
    for axis in axes.flat[len(presets) :]:
        axis.axis("off")
    for axis, preset in zip(axes.flat, presets, strict=False):
        ran = [race for race in races if race.preset == preset]
        curves = [("seed recipe", ran[0].recipe["epoch_end_seconds"], ran[0].recipe["val_mse"])]
        curves += [
            (f"aetrain, {race.backend}" + (" (auto)" if race.auto else ""), race.aetrain["epoch_end_seconds"],
             race.aetrain_val_mse)
            for race in ran
        ]  # fmt: skip
        for label, seconds, val_mse in curves:
            axis.plot(seconds, val_mse, marker="o", markersize=3, label=label)
        axis.axhline(
            ran[0].target, color="gray", linestyle="--", linewidth=1, label=f"target {ran[0].target:.5f}"
        )
        axis.set(xlabel="seconds from process start", ylabel="validation MSE", yscale="log", title=preset)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
