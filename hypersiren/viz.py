"""Turning fields into pictures: (C, H, W) tensors in [0, 1] ready for PNG or TensorBoard."""
from __future__ import annotations

import torch
from torch import Tensor


def normalize(field: Tensor, symmetric: bool = False, quantile: float = 0.99) -> Tensor:
    """Scale a (H, W) field to [0, 1]; symmetric maps 0 to 0.5. Robust to outliers through ``quantile``."""
    field = field.detach().float().cpu()
    flat = field.abs().flatten() if symmetric else field.flatten()
    if symmetric:
        scale = torch.quantile(flat[: 1 << 24], quantile).clamp_min(1e-12)
        return (field / scale).clamp(-1, 1) * 0.5 + 0.5
    low, high = torch.quantile(flat[: 1 << 24], torch.tensor([1 - quantile, quantile]))
    return ((field - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)


def colormap(field01: Tensor, name: str = "viridis") -> Tensor:
    """Apply a matplotlib colormap to a (H, W) field in [0, 1]: (3, H, W)."""
    from matplotlib import colormaps

    rgba = colormaps[name](field01.numpy())
    return torch.from_numpy(rgba[..., :3]).permute(2, 0, 1).float()


def side_by_side(images: list[Tensor], pad: int = 2) -> Tensor:
    """Concatenate (C, H, W) images horizontally with white gaps; grayscale is promoted to RGB."""
    height = max(im.shape[1] for im in images)
    parts = []
    for im in images:
        im = im.expand(3, -1, -1) if im.shape[0] == 1 else im
        if im.shape[1] < height:
            im = torch.cat([im, torch.ones(3, height - im.shape[1], im.shape[2])], dim=1)
        parts += [im, torch.ones(3, height, pad)]
    return torch.cat(parts[:-1], dim=2)


def stack_rows(rows: list[Tensor], pad: int = 2) -> Tensor:
    """Concatenate (3, H, W) images of one width vertically with white gaps."""
    width = max(r.shape[2] for r in rows)
    parts = []
    for r in rows:
        if r.shape[2] < width:
            r = torch.cat([r, torch.ones(3, r.shape[1], width - r.shape[2])], dim=2)
        parts += [r, torch.ones(3, pad, width)]
    return torch.cat(parts[:-1], dim=1)
