"""Finite-difference reference for the 2-D wave equation: second-order leapfrog in time, 5-point Laplacian.

Grid: n x n nodes spread evenly over [-1, 1]^2 (the same nodes as ``hypersiren.data.grid.grid(n, n)``), the edge
nodes held at u = 0 (Dirichlet). Second-order accurate in space and time; stable for c dt / h <= 1 / sqrt(2).
"""
from __future__ import annotations

import math

import numpy as np


def _laplacian(u: np.ndarray, spacing: float) -> np.ndarray:
    """5-point Laplacian on the inner nodes (edges left at 0)."""
    lap = np.zeros_like(u)
    lap[1:-1, 1:-1] = (u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1]) / spacing**2
    return lap


def leapfrog_wave(initial: np.ndarray, speed: float, duration: float, frames: int, cfl: float = 0.5) -> np.ndarray:
    """Solve u_tt = c^2 Laplacian(u) from u(0) = ``initial`` (n, n) at rest, u = 0 on the edges.

    Returns the field at the ``frames`` times linspace(0, duration, frames): (frames, n, n) float64. The time
    step is the largest one with c dt / h <= cfl that lands on every frame time.
    """
    n = initial.shape[0]
    if initial.ndim != 2 or initial.shape[1] != n or n < 3:
        raise ValueError(f"initial must be a square grid of at least 3 x 3 nodes, got {initial.shape}")
    if not 0 < cfl <= 1 / math.sqrt(2):
        raise ValueError(f"cfl must be in (0, 1/sqrt(2)] for stability, got {cfl}")
    spacing = 2.0 / (n - 1)
    u = np.array(initial, dtype=np.float64)
    u[0, :] = u[-1, :] = u[:, 0] = u[:, -1] = 0.0
    out = np.empty((frames, n, n))
    out[0] = u
    if frames == 1:
        return out
    interval = duration / (frames - 1)
    substeps = max(1, math.ceil(interval * speed / (cfl * spacing)))
    dt = interval / substeps
    factor = (speed * dt) ** 2
    previous, u = u, u + 0.5 * factor * _laplacian(u, spacing)  # Taylor start: u_t(0) = 0
    step = 1
    for frame in range(1, frames):
        while step < frame * substeps:
            previous, u = u, 2 * u - previous + factor * _laplacian(u, spacing)
            step += 1
        out[frame] = u
    return out
