"""Generation and the coding maps: sampling, interpolation, the 2-D manifold, PCA and t-SNE."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from aetrain.analysis.projections import pca_2d, tsne_2d, tsne_available
from aetrain.analysis.sampling import (
    decoded_manifold,
    latent_interpolation,
    manifold_coordinates,
)
from aetrain.config import validate
from aetrain.models.build import build_model, encode
from aetrain.models.variational import VARIATIONAL

from conftest import compose_config


@pytest.fixture(scope="module")
def vae():
    return build_model(validate(compose_config("variant=vae", "latent_size=2", "variant.hidden_units=[16]")))


def test_prior_samples_are_seeded_draws_from_n01_decoded(vae):
    decoder = vae.get_layer("decoder")
    first = VARIATIONAL.sample(vae, 5, 2, seed=7)
    np.testing.assert_array_equal(first, VARIATIONAL.sample(vae, 5, 2, seed=7))
    expected = decoder.predict(np.random.default_rng(7).standard_normal((5, 2)).astype("float32"), verbose=0)
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    assert not np.allclose(first, VARIATIONAL.sample(vae, 5, 2, seed=8))


def test_interpolation_starts_and_ends_at_the_two_images_codings(vae):
    images = np.random.default_rng(0).random((2, 28, 28), dtype=np.float32)
    weights, decoded, blend = latent_interpolation(vae, images[0], images[1], steps=5)
    np.testing.assert_allclose(weights, [0, 0.25, 0.5, 0.75, 1])
    ends = vae.get_layer("decoder").predict(encode(vae, images), verbose=0)
    np.testing.assert_allclose(decoded[[0, -1]], ends, atol=1e-6)
    np.testing.assert_allclose(blend[2], (images[0] + images[1]) / 2, atol=1e-6)


def test_manifold_coordinates_are_central_quantiles_of_the_prior():
    coordinates = manifold_coordinates(5)
    np.testing.assert_allclose(coordinates, -coordinates[::-1], atol=1e-6)  # symmetric
    assert coordinates[0] == pytest.approx(NormalDist().inv_cdf(0.05), rel=1e-5)
    assert coordinates[2] == pytest.approx(0.0, abs=1e-6)


def test_decoded_manifold_puts_z2_high_in_the_top_row(vae):
    decoder = vae.get_layer("decoder")
    images, coordinates = decoded_manifold(decoder, 3)
    assert images.shape == (9, 28, 28)
    top_left = decoder.predict(np.array([[coordinates[0], coordinates[-1]]], "float32"), verbose=0)
    np.testing.assert_allclose(images[0], top_left[0], atol=1e-6)


def test_pca_finds_the_direction_the_codings_vary_along():
    rng = np.random.default_rng(1)
    t = rng.normal(size=200)
    codings = np.stack([3 * t, 3 * t, 0.01 * rng.normal(size=200)], axis=1)
    points, explained = pca_2d(codings)
    assert points.shape == (200, 2)
    assert explained[0] > 0.99
    np.testing.assert_allclose(np.abs(points[:, 0]), np.abs(3 * np.sqrt(2) * (t - t.mean())), atol=1e-3)


def test_pca_of_one_dimensional_codings_pads_a_zero_axis():
    points, explained = pca_2d(np.arange(10, dtype=np.float32)[:, None])
    assert points.shape == (10, 2) and (points[:, 1] == 0).all()
    np.testing.assert_allclose(explained, [1.0, 0.0])


@pytest.mark.skipif(not tsne_available(), reason="t-SNE needs scikit-learn (the tsne/dev extra)")
def test_tsne_keeps_separated_clusters_apart_and_is_seeded():
    rng = np.random.default_rng(2)
    codings = np.concatenate([rng.normal(size=(30, 5)), rng.normal(size=(30, 5)) + 20]).astype(np.float32)
    points = tsne_2d(codings, seed=0)
    np.testing.assert_allclose(points, tsne_2d(codings, seed=0))
    gap = np.linalg.norm(points[:30].mean(axis=0) - points[30:].mean(axis=0))
    assert gap > 3 * points[:30].std(axis=0).max()
