"""Evaluate a coordinate network on a grid of any size in chunks, so memory stays bounded: the output plus one
chunk of coordinates and activations (coordinates are generated per chunk, never for the whole grid)."""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from hypersiren import diff
from hypersiren.data.grid import grid_rows

DEFAULT_CHUNK = 65536


def _chunks(shape: tuple[int, ...], chunk: int, device) -> Iterator[tuple[int, Tensor]]:
    """(first row, coordinates (n <= chunk, d)) of consecutive chunks of ``grid(*shape)``."""
    total = math.prod(shape)
    for start in range(0, total, chunk):
        yield start, grid_rows(shape, start, min(start + chunk, total), device)


def _fill(outputs: list[Tensor | None], start: int, values: tuple[Tensor, ...], total: int) -> None:
    """Write each chunk result into its preallocated (total, ...) output (allocated on the first chunk)."""
    for i, value in enumerate(values):
        if outputs[i] is None:
            outputs[i] = torch.empty(total, *value.shape[1:], dtype=value.dtype, device=value.device)
        outputs[i][start : start + len(value)] = value


@torch.no_grad()
def render_grid(model: nn.Module | Callable[[Tensor], Tensor], shape: tuple[int, ...], device=None,
                chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Network values on ``grid(*shape)``: (*shape, out_features); ``model`` sees at most ``chunk`` points at once."""
    out: list[Tensor | None] = [None]
    for start, coords in _chunks(shape, chunk, device):
        _fill(out, start, (model(coords),), math.prod(shape))
    return out[0].reshape(*shape, -1)


def render_derivatives(model: nn.Module, shape: tuple[int, ...], device=None,
                       chunk: int = DEFAULT_CHUNK // 4) -> tuple[Tensor, Tensor, Tensor]:
    """Values (*shape, m), gradients (*shape, m, d) and Laplacians (*shape, m) on ``grid(*shape)``, computed
    chunk by chunk through ``diff.value_and_laplacian`` (forward mode for a Siren, autograd otherwise), detached."""
    out: list[Tensor | None] = [None, None, None]
    for start, c in _chunks(shape, chunk, device):
        with torch.enable_grad():
            fields = diff.value_and_laplacian(model, c)
        _fill(out, start, tuple(f.detach() for f in fields), math.prod(shape))
    d = len(shape)
    return out[0].reshape(*shape, -1), out[1].reshape(*shape, -1, d), out[2].reshape(*shape, -1)
