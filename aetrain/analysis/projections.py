"""Views of what a trained autoencoder learned: its codings mapped to 2-D, its denoising at work.

Pure computations; ``aetrain-look`` (aetrain/commands/look.py) draws them.
"""

from __future__ import annotations

import importlib.util

import numpy as np


def pca_2d(codings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project codings on their first two principal components (SVD of the centred codings).

    Returns (points of shape (n, 2), the share of the variance each of the two components explains).
    A 1-D coding gets a zero second axis.
    """
    centred = codings - codings.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    points = centred @ components[:2].T
    if points.shape[1] < 2:
        points = np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
    variance = np.square(singular)
    explained = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    return points, np.pad(explained, (0, 2 - len(explained)))


def tsne_available() -> bool:
    """t-SNE comes from scikit-learn, an optional extra (`pip install 'aetrain[tsne]'`)."""
    return importlib.util.find_spec("sklearn") is not None


def tsne_2d(codings: np.ndarray, seed: int) -> np.ndarray:
    """scikit-learn's t-SNE (PCA initialisation, perplexity 30 or less for tiny sets), seeded."""
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(codings) - 1) / 3.0)
    return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(codings)
