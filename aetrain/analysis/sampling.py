"""New images from a trained VAE: a walk between two codings, the 2-D manifold (its prior samples are
its family's: aetrain.models.variational).

Pure computations on the decoder; ``aetrain-generate`` (aetrain/commands/generate.py) draws them.
"""

from __future__ import annotations

from statistics import NormalDist

import keras
import numpy as np

from aetrain.models.build import encode

BATCH = 512


def latent_interpolation(
    model: keras.Model, first: np.ndarray, second: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode ``steps`` points on the straight line between two images' mean codings.

    Returns (weights t in [0, 1], decoded images, the pixel-space blend (1-t) a + t b for contrast).
    """
    weights = np.linspace(0.0, 1.0, steps, dtype="float32")
    start, end = encode(model, np.stack([first, second]))
    along = weights.reshape(-1, *[1] * start.ndim)  # codings may be vectors or grids
    codings = (1.0 - along) * start + along * end
    decoded = model.get_layer("decoder").predict(codings, batch_size=BATCH, verbose=0)
    per_image = weights.reshape(-1, *[1] * first.ndim)
    blend = (1.0 - per_image) * first + per_image * second
    return weights, decoded, blend


def manifold_coordinates(size: int, coverage: float = 0.9) -> np.ndarray:
    """``size`` values per axis at evenly spaced quantiles of N(0, 1) covering ``coverage`` of its mass.

    Quantiles, not an even grid: equal areas of the prior get equal room in the picture.
    """
    tail = (1.0 - coverage) / 2.0
    return np.array([NormalDist().inv_cdf(p) for p in np.linspace(tail, 1.0 - tail, size)], "float32")


def decoded_manifold(decoder: keras.Model, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decodings of a size x size grid over a 2-D coding space, row by row from the top (z2 high).

    Returns (images of shape (size*size, *image shape), the per-axis coordinates).
    """
    coordinates = manifold_coordinates(size)
    z1, z2 = np.meshgrid(coordinates, coordinates[::-1])
    codings = np.stack([z1.ravel(), z2.ravel()], axis=1)
    return decoder.predict(codings, batch_size=BATCH, verbose=0), coordinates
