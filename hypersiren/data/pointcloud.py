"""Oriented point clouds for signed-distance fitting: points with unit normals from any file
``hypersiren.formats.surface`` reads, vertex normals from faces, and the similarity transform into the unit cube.

Normals come from the file when it has them (.xyz with 6 columns, .ply with nx ny nz), otherwise from its faces
(area-weighted vertex normals after welding vertices that share a position, as STL stores every triangle's
corners separately; vertices that no face with a non-zero area touches are dropped), otherwise they are
estimated from the points (``hypersiren.data.normals``: k-nearest-neighbour PCA, oriented outwards).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hypersiren.data.normals import NEIGHBOURS, estimate_normals
from hypersiren.errors import InputError
from hypersiren.formats.surface import read_surface, read_triangles  # noqa: F401 - read_triangles: re-exported

FILL = 0.9  # the unit-cube frame maps the bounding box's longest side to [-FILL, FILL]
UNIT_RESOLUTION = 1e-6  # the coarsest float64 step points may have in the unit frame (far below any mesh cell)


@dataclass
class PointCloud:
    """Oriented points: ``points`` (N, 3) and unit ``normals`` (N, 3), float64, in the file's units."""

    points: np.ndarray
    normals: np.ndarray


@dataclass
class Frame:
    """Similarity transform between file units and the unit-cube frame: ``unit = (p - center) / scale``."""

    center: np.ndarray
    scale: float

    @classmethod
    def fitting(cls, points: np.ndarray, fill: float = FILL) -> "Frame":
        """Centre the bounding box at the origin and scale its longest side to [-fill, fill]. ``points`` (N, 3)
        finite. Computed in halves, so no step overflows even for coordinates near the float64 limit; InputError
        when the points coincide, or when their extent is so small beside their coordinates that float64 places
        them in the unit cube on a grid coarser than UNIT_RESOLUTION (their shape would be lost in rounding)."""
        low, high = points.min(axis=0), points.max(axis=0)
        half_extent = float((high / 2 - low / 2).max())
        largest = float(np.abs(points).max())
        if not half_extent > 0:
            raise InputError(f"all points coincide (at {points[0].tolist()}); expected a surface with a non-zero extent")
        frame = cls(center=low / 2 + high / 2, scale=half_extent / fill)
        resolution = float(np.spacing(largest)) / frame.scale  # the unit frame's step between neighbouring points
        if not (np.isfinite(frame.center).all() and np.isfinite(frame.scale) and resolution <= UNIT_RESOLUTION):
            raise InputError(f"the {len(points)} points span only {2 * half_extent:.3g} at coordinates up to "
                             f"{largest:.3g}, too little for float64 to keep their shape once centred and scaled; "
                             "expected an extent that is not negligible beside the coordinates (rescale the points or "
                             "move them nearer the origin)")
        return frame

    def to_unit(self, points: np.ndarray) -> np.ndarray:
        return (points - self.center) / self.scale

    def from_unit(self, points: np.ndarray) -> np.ndarray:
        return points * self.scale + self.center


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Cross products of triangle edges, (F, 3): direction by the right-hand rule, length twice the area."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return np.cross(b - a, c - a)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (V, 3) of a triangle mesh; zero for vertices no face with area touches."""
    weighted = face_normals(vertices, faces)
    normals = np.zeros_like(vertices, dtype=np.float64)
    for i in range(3):
        np.add.at(normals, faces[:, i], weighted)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def weld(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices at exactly the same position: (unique vertices in order of first use (U, 3), faces (F, 3)
    re-indexed)."""
    _, first, inverse = np.unique(vertices, axis=0, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return vertices[np.sort(first)], rank[inverse.reshape(-1)][faces]


def read_point_cloud(path: str | Path) -> PointCloud:
    """Oriented points of any ``hypersiren.formats.surface.SUFFIXES`` file; see the module docstring."""
    surface = read_surface(path)
    if surface.normals is not None:
        return PointCloud(surface.vertices, _unit_normals(path, surface.normals))
    if surface.faces is not None:
        vertices, faces = weld(surface.vertices, surface.faces)
        normals = vertex_normals(_normalised(vertices), faces)
        keep = np.linalg.norm(normals, axis=1) > 0
        if not keep.any():
            raise InputError(f"every face of {path} has zero area; cannot take normals from its faces")
        return PointCloud(vertices[keep], normals[keep])
    count = len(surface.vertices)
    if count <= NEIGHBOURS:
        raise InputError(f"{path} has neither normals nor faces, and its {count} points without normals are too few "
                         f"to estimate them (at least {NEIGHBOURS + 1}); expected more points, normals "
                         "(x y z nx ny nz) or a mesh")
    unit = _normalised(surface.vertices)
    warnings.warn(f"{path} has no normals or faces: estimated normals from the {NEIGHBOURS} nearest neighbours of "
                  "each point (PCA), oriented outwards by propagation", stacklevel=2)
    return PointCloud(surface.vertices, estimate_normals(unit))


def _normalised(points: np.ndarray) -> np.ndarray:
    """Points (N, 3) in their unit-cube frame, for directions only: cross products and covariances of huge file
    units cannot overflow (InputError, before any work, for points the frame cannot hold)."""
    return Frame.fitting(points).to_unit(points)


def _unit_normals(path: str | Path, normals: np.ndarray) -> np.ndarray:
    """File normals scaled to unit length (without overflow for huge components); zero ones are an error."""
    largest = np.abs(normals).max(axis=1, keepdims=True)
    if (largest == 0).any():
        raise InputError(f"{path} has {int((largest == 0).sum())} zero-length normals; expected a direction per point")
    scaled = normals / largest
    return scaled / np.linalg.norm(scaled, axis=1, keepdims=True)
