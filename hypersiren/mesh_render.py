"""A shaded picture of a triangle mesh without a GPU or a 3-D library: dense surface samples are projected
orthographically and z-buffered per pixel (nearest sample wins), shaded with interpolated vertex normals."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hypersiren.data.pointcloud import vertex_normals
from hypersiren.mesh import Mesh, surface_samples

BACKGROUND = 1.0
BASE_COLOUR = np.array([0.72, 0.76, 0.86])


@dataclass
class View:
    """Orthographic camera looking at ``center`` from azimuth/elevation (degrees, y is up), showing a square of
    half-width ``extent`` (world units) around it."""

    center: np.ndarray
    extent: float
    azimuth: float = 30.0
    elevation: float = 20.0

    @classmethod
    def framing(cls, vertices: np.ndarray, azimuth: float = 30.0, elevation: float = 20.0) -> "View":
        """A view that shows every vertex from any direction (bounding sphere around the box centre)."""
        center = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
        return cls(center, 1.05 * float(np.linalg.norm(vertices - center, axis=1).max()), azimuth, elevation)

    def axes(self) -> np.ndarray:
        """Rows: screen right, screen up, towards the camera (3, 3)."""
        az, el = math.radians(self.azimuth), math.radians(self.elevation)
        back = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
        right = np.cross([0.0, 1.0, 0.0], back)
        right = right / np.linalg.norm(right) if np.linalg.norm(right) > 1e-9 else np.array([1.0, 0.0, 0.0])
        return np.stack([right, np.cross(back, right), back])


def render_mesh(mesh: Mesh, view: View, size: int = 512, samples_per_pixel: int = 12, seed: int = 0) -> Tensor:
    """Picture (3, size, size) in [0, 1] of ``mesh`` seen through ``view``, white background."""
    axes = view.axes()
    face, u, v = surface_samples(mesh, samples_per_pixel * size * size, np.random.default_rng(seed))
    corners = [mesh.faces[face, i] for i in range(3)]
    weights = [1 - u - v, u, v]
    points = sum(w[:, None] * mesh.vertices[c] for w, c in zip(weights, corners))
    normals = vertex_normals(mesh.vertices, mesh.faces)
    normals = sum(w[:, None] * normals[c] for w, c in zip(weights, corners))
    camera = (points - view.center) @ axes.T  # (n, 3): right, up, towards the camera
    col = np.floor((camera[:, 0] / view.extent + 1) / 2 * size).astype(np.int64)
    row = np.floor((1 - camera[:, 1] / view.extent) / 2 * size).astype(np.int64)
    inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
    pixel, depth = (row * size + col)[inside], camera[inside, 2]
    order = np.lexsort((-depth, pixel))  # by pixel, nearest first
    pixel = pixel[order]
    first = np.r_[True, pixel[1:] != pixel[:-1]]
    visible = np.flatnonzero(inside)[order[first]]
    image = np.full((size * size, 3), BACKGROUND)
    image[pixel[first]] = _shade(normals[visible] @ axes.T)
    return torch.from_numpy(image.reshape(size, size, 3)).permute(2, 0, 1).float()


def _shade(normals: np.ndarray) -> np.ndarray:
    """Two-sided Lambert with a key light from the upper left and a fill light, camera coordinates (n, 3)."""
    normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    key = np.array([-0.4, 0.6, 0.7]) / np.linalg.norm([-0.4, 0.6, 0.7])
    fill = np.array([0.5, -0.2, 0.8]) / np.linalg.norm([0.5, -0.2, 0.8])
    light = 0.2 + 0.65 * np.abs(normals @ key) + 0.2 * np.abs(normals @ fill)
    return np.clip(BASE_COLOUR * light[:, None], 0, 1)
