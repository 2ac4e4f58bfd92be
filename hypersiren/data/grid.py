"""Coordinate grids. Convention: each axis of a signal with n samples maps to n points spread evenly over
[-1, 1] (``linspace(-1, 1, n)``); the last coordinate runs fastest (row-major, like the signal's memory)."""
from __future__ import annotations

import torch
from torch import Tensor


def grid(*sizes: int, device: torch.device | str | None = None) -> Tensor:
    """Coordinates of a grid of shape ``sizes``: (prod(sizes), len(sizes)), e.g. grid(H, W) -> (H*W, 2) as (y, x)."""
    if any(s < 1 for s in sizes):
        raise ValueError(f"grid sizes must be positive, got {sizes}")
    axes = [torch.linspace(-1.0, 1.0, s, device=device) if s > 1 else torch.zeros(1, device=device) for s in sizes]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(sizes))


def grid_rows(sizes: tuple[int, ...], start: int, stop: int, device: torch.device | str | None = None) -> Tensor:
    """Rows ``start:stop`` of ``grid(*sizes)`` (the same numbers), built without the whole grid: (stop - start, d)."""
    index = torch.arange(start, stop, device=device)
    columns, stride = [], 1
    for size in reversed(sizes):
        axis = torch.linspace(-1.0, 1.0, size, device=device) if size > 1 else torch.zeros(1, device=device)
        columns.append(axis[index // stride % size])
        stride *= size
    return torch.stack(columns[::-1], dim=-1)


def grid_spacing(size: int) -> float:
    """Distance between neighbouring grid points along an axis of ``size`` samples."""
    return 2.0 / (size - 1) if size > 1 else 2.0
