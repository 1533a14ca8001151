"""The time-to-quality picture: validation MSE against wall-clock seconds, seed recipe and aetrain."""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path


def plot_time_to_quality(baseline: dict, aetrain_metrics: dict, path: Path) -> Path:
    """One line per run, a point per epoch at its cumulative training time; the target dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = baseline["val_loss"][-1]
    runs = [
        ("seed recipe (batch 32, Nadam, float32)", baseline["epoch_seconds"], baseline["val_loss"]),
        ("aetrain defaults", aetrain_metrics["epoch_seconds"], aetrain_metrics["history"]["val_loss"]),
    ]
    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    for label, seconds, val_loss in runs:
        axes.plot(list(accumulate(seconds)), val_loss, marker="o", markersize=3, label=label)
    axes.axhline(target, color="gray", linestyle="--", linewidth=1, label=f"target {target:.5f}")
    axes.set(xlabel="training wall time (s)", ylabel="validation MSE", yscale="log")
    axes.set_title("conv autoencoder, 10 epochs: time to quality")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
