"""Chunked SDF grids, marching cubes on analytic SDFs, PLY output, surface sampling, Chamfer distance, rendering."""
import math
import os

import numpy as np
import pytest
import torch

from hypersiren.data.pointcloud import read_point_cloud, read_triangles
from hypersiren.errors import InputError
from hypersiren.mesh import Mesh, NoSurfaceError, compare_surfaces, extract_mesh, sample_surface, sdf_volume, write_ply
from hypersiren.mesh_render import View, render_mesh


def sphere(radius):
    return lambda x: x.norm(dim=-1, keepdim=True) - radius


def torus(major, minor):
    """Torus around the y axis: distance to the circle of radius ``major`` in the xz plane, minus ``minor``."""
    def sdf(x):
        ring = torch.sqrt(x[:, 0] ** 2 + x[:, 2] ** 2) - major
        return torch.sqrt(ring**2 + x[:, 1] ** 2) - minor
    return sdf


def signed_volume(mesh):
    a, b, c = (mesh.vertices[mesh.faces[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


def test_sdf_volume_respects_the_chunk_and_matches_the_function():
    sizes = []

    def recorded(x):
        sizes.append(len(x))
        return sphere(0.5)(x)

    volume = sdf_volume(recorded, 9, chunk=100)
    assert volume.dtype == np.float32 and volume.shape == (9, 9, 9)
    assert max(sizes) <= 100 and sum(sizes) == 9**3 and len(sizes) == math.ceil(9**3 / 100)
    axis = np.linspace(-1, 1, 9)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    np.testing.assert_allclose(volume, np.sqrt(x**2 + y**2 + z**2) - 0.5, atol=1e-6)
    assert volume[8, 4, 4] == pytest.approx(0.5)  # first index is x: (1, 0, 0)


def test_sphere_mesh_has_the_right_radius_and_faces_outwards():
    mesh = extract_mesh(sdf_volume(sphere(0.5), 32, chunk=4096))
    radius = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(radius - 0.5).max() < 0.005
    assert signed_volume(mesh) == pytest.approx(4 / 3 * math.pi * 0.5**3, rel=0.03)


def test_torus_mesh_lies_on_the_torus():
    mesh = extract_mesh(sdf_volume(torus(0.6, 0.2), 40))
    x, y, z = mesh.vertices.T
    distance = np.sqrt((np.sqrt(x**2 + z**2) - 0.6) ** 2 + y**2)
    assert np.abs(distance - 0.2).max() < 0.01
    assert signed_volume(mesh) == pytest.approx(2 * math.pi**2 * 0.6 * 0.2**2, rel=0.05)


def test_no_zero_crossing_is_a_clear_error():
    with pytest.raises(NoSurfaceError, match="no zero crossing"):
        extract_mesh(sdf_volume(sphere(5.0), 8))
    with pytest.raises(InputError, match="at least 2"):
        sdf_volume(sphere(0.5), 1)


def test_ply_round_trip(tmp_path):
    mesh = extract_mesh(sdf_volume(sphere(0.5), 12))
    path = tmp_path / "m.ply"
    write_ply(path, mesh)
    assert os.listdir(tmp_path) == ["m.ply"]  # the atomic write left no temporary file
    vertices, faces = read_triangles(path)
    np.testing.assert_allclose(vertices, mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(faces, mesh.faces)
    cloud = read_point_cloud(path)  # normals written with the mesh point outwards on a sphere
    cos = np.sum(cloud.normals * cloud.points / np.linalg.norm(cloud.points, axis=1, keepdims=True), axis=1)
    assert cos.min() > 0.95


def test_surface_samples_are_uniform_on_the_triangles():
    square = Mesh(np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float), np.array([[0, 1, 2], [0, 2, 3]]))
    points, normals = sample_surface(square, 20000, np.random.default_rng(0))
    assert points.min() >= 0 and points.max() <= 1
    np.testing.assert_allclose(points.mean(0), [0.5, 0.5, 0], atol=0.01)
    np.testing.assert_allclose(points[:, :2].var(0), [1 / 12, 1 / 12], atol=0.003)  # uniform on [0, 1]
    np.testing.assert_allclose(normals, np.tile([0, 0, 1.0], (20000, 1)))


def test_chamfer_distance_and_normal_consistency_closed_forms():
    axis = np.arange(5.0)
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    up = np.tile([0.0, 0.0, 1.0], (len(points), 1))
    same = compare_surfaces(points, up, points, up)
    assert same == {"chamfer": 0.0, "normal_consistency": 1.0}
    shifted = compare_surfaces(points, up, points + [0.1, 0, 0], -up)  # |cos| ignores the orientation
    assert shifted["chamfer"] == pytest.approx(0.1)
    assert shifted["normal_consistency"] == pytest.approx(1.0)
    across = compare_surfaces(points, up, points, np.tile([1.0, 0, 0], (len(points), 1)))
    assert across["normal_consistency"] == pytest.approx(0.0)


def test_sampled_sphere_mesh_is_close_to_the_sphere():
    mesh = extract_mesh(sdf_volume(sphere(0.5), 24))
    points, normals = sample_surface(mesh, 4000, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(4000, 3))
    truth /= np.linalg.norm(truth, axis=1, keepdims=True)
    result = compare_surfaces(points, normals, 0.5 * truth, truth)
    assert result["chamfer"] < 0.02  # about the spacing of 4000 points on the sphere
    assert result["normal_consistency"] > 0.98


def test_render_of_a_sphere_is_a_shaded_disc():
    mesh = extract_mesh(sdf_volume(sphere(0.5), 24))
    image = render_mesh(mesh, View(np.zeros(3), 1.0), size=64)
    assert image.shape == (3, 64, 64) and 0 <= image.min() and image.max() <= 1
    covered = (image < 1).any(dim=0).float().mean().item()
    assert covered == pytest.approx(math.pi * 0.5**2 / 4, abs=0.02)  # disc of radius 0.5 in a 2 x 2 square
    assert (image[:, 0, 0] == 1).all()
