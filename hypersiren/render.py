"""Evaluate a coordinate network on a grid of any size in chunks, so memory stays bounded."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from hypersiren import diff
from hypersiren.data.grid import grid

DEFAULT_CHUNK = 65536


def _chunks(shape: tuple[int, ...], chunk: int, device) -> list[Tensor]:
    coords = grid(*shape, device=device)
    return list(coords.split(chunk))


@torch.no_grad()
def render_grid(model: nn.Module | Callable[[Tensor], Tensor], shape: tuple[int, ...], device=None,
                chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Network values on ``grid(*shape)``: (*shape, out_features)."""
    outputs = [model(c) for c in _chunks(shape, chunk, device)]
    return torch.cat(outputs).reshape(*shape, -1)


def render_derivatives(model: nn.Module, shape: tuple[int, ...], device=None,
                       chunk: int = DEFAULT_CHUNK // 4) -> tuple[Tensor, Tensor, Tensor]:
    """Values (*shape, m), gradients (*shape, m, d) and Laplacians (*shape, m) on ``grid(*shape)``,
    computed chunk by chunk with autograd and detached."""
    values, grads, lapls = [], [], []
    for c in _chunks(shape, chunk, device):
        with torch.enable_grad():
            x = c.requires_grad_(True)
            y = model(x)
            g = diff.jacobian(y, x)
            lap = torch.stack([
                diff.divergence(g[..., i, :], x)[..., 0] for i in range(y.shape[-1])
            ], dim=-1)
        values.append(y.detach())
        grads.append(g.detach())
        lapls.append(lap.detach())
    d = len(shape)
    return (torch.cat(values).reshape(*shape, -1), torch.cat(grads).reshape(*shape, -1, d),
            torch.cat(lapls).reshape(*shape, -1))
