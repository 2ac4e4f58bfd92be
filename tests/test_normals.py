"""Normals estimated from points alone (k-NN PCA, oriented by propagation) against analytic surfaces."""
import numpy as np
import pytest

from hypersiren.data.normals import estimate_normals


def angle_degrees(estimated, truth):
    """Per-point angle between unoriented directions, and the cosines (sign: orientation)."""
    cos = np.einsum("ij,ij->i", estimated, truth)
    return np.degrees(np.arccos(np.clip(np.abs(cos), 0, 1))), cos


def sphere(count, radius=0.8, seed=0):
    directions = np.random.default_rng(seed).normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return radius * directions, directions


def torus(count, major=0.6, minor=0.2, seed=0):
    """Points uniform by area on a torus around the y axis (rejection sampling) and their outward normals."""
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(0, 2 * np.pi, (2, 8 * count))
    keep = rng.uniform(0, 1, 8 * count) < (major + minor * np.cos(v)) / (major + minor)
    u, v = u[keep][:count], v[keep][:count]
    normals = np.stack([np.cos(v) * np.cos(u), np.sin(v), np.cos(v) * np.sin(u)], axis=1)
    centre = np.stack([major * np.cos(u), np.zeros_like(u), major * np.sin(u)], axis=1)
    return centre + minor * normals, normals


@pytest.mark.parametrize("surface, count, mean_limit, max_limit", [
    (sphere, 3000, 1.5, 8.0),
    (torus, 4000, 3.0, 20.0),
])
def test_estimated_normals_match_the_analytic_ones_and_all_point_outwards(surface, count, mean_limit, max_limit):
    points, truth = surface(count)
    estimated = estimate_normals(points)
    np.testing.assert_allclose(np.linalg.norm(estimated, axis=1), 1, atol=1e-9)
    angle, cos = angle_degrees(estimated, truth)
    assert angle.mean() < mean_limit and angle.max() < max_limit, (angle.mean(), angle.max())
    assert (cos > 0).all()  # every normal outward, the torus's inner ring included


def test_separate_pieces_are_each_oriented_outwards():
    points, truth = sphere(2000, radius=0.3)
    points = np.where(np.arange(2000)[:, None] < 1000, points - 0.5, points + 0.5)  # two spheres far apart
    _, cos = angle_degrees(estimate_normals(points), truth)
    assert (cos > 0).all()


def test_noise_and_file_units_do_not_break_the_orientation():
    points, truth = sphere(3000)
    noisy = 1e6 * (points + 0.005 * np.random.default_rng(1).normal(size=points.shape))  # 0.6 % noise, huge units
    angle, cos = angle_degrees(estimate_normals(noisy), truth)
    assert (cos > 0).all() and angle.mean() < 5
