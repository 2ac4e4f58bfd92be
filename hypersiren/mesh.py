"""Triangle meshes from signed distance functions: the SDF sampled on a grid chunk by chunk, marching cubes,
PLY output (``hypersiren.formats.ply``), surface sampling, and Chamfer distance / normal consistency between
oriented point sets.

Memory of meshing at resolution R: the grid of values is one float32 array (R^3 * 4 bytes: 64 MB at 256, 512 MB
at 512) plus one chunk of network activations; coordinates are generated per chunk, never for the whole grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from hypersiren.data.pointcloud import face_normals, vertex_normals
from hypersiren.errors import HypersirenError, InputError
from hypersiren.render import DEFAULT_CHUNK


class NoSurfaceError(HypersirenError):
    """The sampled function has no zero crossing inside the cube, so there is no surface to mesh."""


@dataclass
class Mesh:
    """Triangles: ``vertices`` (V, 3) float64 and ``faces`` (F, 3) int64, counter-clockwise seen from outside."""

    vertices: np.ndarray
    faces: np.ndarray


@torch.no_grad()
def sdf_volume(sdf: Callable[[Tensor], Tensor], resolution: int, chunk: int = DEFAULT_CHUNK, device=None,
               progress: bool = False) -> np.ndarray:
    """``sdf`` on the grid ``linspace(-1, 1, R)^3``: float32 (R, R, R), ``volume[i, j, k] = sdf(x_i, x_j, x_k)``.

    ``sdf`` maps coordinates (n, 3) to values (n, 1) or (n,); it is called on at most ``chunk`` points at a time.
    """
    if resolution < 2:
        raise InputError(f"mesh resolution must be at least 2, got {resolution}")
    if chunk < 1:
        raise InputError(f"chunk must be a positive number of points, got {chunk}")
    axis = torch.linspace(-1.0, 1.0, resolution, device=device)
    volume = np.empty(resolution**3, dtype=np.float32)
    starts = range(0, resolution**3, chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"sdf grid {resolution}^3", unit="chunk", dynamic_ncols=True, leave=False)
    for start in starts:
        index = torch.arange(start, min(start + chunk, resolution**3), device=device)
        coords = axis[torch.stack([index // resolution**2, index // resolution % resolution, index % resolution], -1)]
        values = sdf(coords).reshape(-1)
        volume[start : start + len(index)] = values.float().cpu().numpy()
    return volume.reshape(resolution, resolution, resolution)


def extract_mesh(volume: np.ndarray, level: float = 0.0) -> Mesh:
    """The ``level`` set of a volume sampled on ``linspace(-1, 1, R)^3`` (values grow outwards), by marching
    cubes; vertices in the same [-1, 1] frame."""
    from skimage.measure import marching_cubes

    low, high = float(volume.min()), float(volume.max())
    if not (low < level < high):
        raise NoSurfaceError(f"the SDF has no zero crossing in the cube (values from {low:.3g} to {high:.3g}); "
                             "no surface to mesh")
    spacing = 2.0 / (volume.shape[0] - 1)
    vertices, faces, _, _ = marching_cubes(volume, level=level, spacing=(spacing,) * 3,
                                           allow_degenerate=False)
    return Mesh(vertices.astype(np.float64) - 1.0, faces.astype(np.int64))


def write_ply(path: str | Path, mesh: Mesh) -> None:
    """Binary PLY with float32 vertices, area-weighted vertex normals and triangle faces, atomically."""
    from hypersiren.formats.ply import write_ply as write_ply_file

    write_ply_file(path, mesh.vertices, mesh.faces, vertex_normals(mesh.vertices, mesh.faces))


def surface_samples(mesh: Mesh, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` samples spread uniformly by area over the triangles: face index (count,) and barycentric
    weights (count,) u, v of the face's second and third vertex."""
    area = np.linalg.norm(face_normals(mesh.vertices, mesh.faces), axis=1)
    if not area.sum() > 0:
        raise InputError("cannot sample a mesh whose triangles all have zero area")
    face = rng.choice(len(mesh.faces), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1  # fold the unit square onto the triangle u + v <= 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    return face, u, v


def sample_surface(mesh: Mesh, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points spread uniformly by area over the triangles, (count, 3), with their unit face normals."""
    face, u, v = surface_samples(mesh, count, rng)
    a, b, c = (mesh.vertices[mesh.faces[face, i]] for i in range(3))
    cross = np.cross(b - a, c - a)
    return a + u[:, None] * (b - a) + v[:, None] * (c - a), cross / np.linalg.norm(cross, axis=1, keepdims=True)


def compare_surfaces(points_a: np.ndarray, normals_a: np.ndarray, points_b: np.ndarray,
                     normals_b: np.ndarray) -> dict[str, float]:
    """Symmetric distances between two oriented point sets (N, 3) and (M, 3):

    ``chamfer`` = (mean_a min_b |a - b| + mean_b min_a |b - a|) / 2, in the points' length unit;
    ``normal_consistency`` = the same symmetric mean of |cos| between each point's normal and its nearest
    neighbour's (1 = parallel; orientation-blind, as in the literature).
    """
    from scipy.spatial import cKDTree

    dist_ab, index_ab = cKDTree(points_b).query(points_a)
    dist_ba, index_ba = cKDTree(points_a).query(points_b)
    cos_ab = np.abs(np.sum(normals_a * normals_b[index_ab], axis=1))
    cos_ba = np.abs(np.sum(normals_b * normals_a[index_ba], axis=1))
    return {"chamfer": float(dist_ab.mean() + dist_ba.mean()) / 2,
            "normal_consistency": float(cos_ab.mean() + cos_ba.mean()) / 2}
