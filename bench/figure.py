"""The time-to-quality picture: validation MSE against wall-clock seconds, seed recipe and aetrain, one
panel per preset."""

from __future__ import annotations

import math
from itertools import accumulate
from pathlib import Path


def plot_time_to_quality(races: list, path: Path) -> Path:
    """One panel per preset: a point per epoch at its cumulative training time; the target dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(races))
    rows = math.ceil(len(races) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), dpi=110, squeeze=False)
    for axis in axes.flat[len(races) :]:
        axis.axis("off")
    for axis, race in zip(axes.flat, races, strict=False):
        curves = [
            ("seed recipe", race.recipe["epoch_seconds"], race.recipe["val_mse"]),
            ("aetrain", race.aetrain["epoch_seconds"], race.aetrain_val_mse),
        ]
        for label, seconds, val_mse in curves:
            axis.plot(list(accumulate(seconds)), val_mse, marker="o", markersize=3, label=label)
        axis.axhline(
            race.target, color="gray", linestyle="--", linewidth=1, label=f"target {race.target:.5f}"
        )
        axis.set(xlabel="training wall time (s)", ylabel="validation MSE", yscale="log", title=race.preset)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
