"""Pictures: fields turned into (C, H, W) tensors in [0, 1] ready for PNG or TensorBoard, the completion figures
of face priors, and saving matplotlib figures."""
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


UNKNOWN_GRAY = 0.5  # unknown pixels of a context picture


def completion_figure(images_unit: Tensor, examples: dict, masks_by_setting: dict[str, Tensor], scale: int = 2) -> Tensor:
    """(3, H, W) picture: a header row naming the columns, then one row per face: per setting its context (unknown
    pixels gray) and its completions, then the ground truth. Pixels enlarged ``scale`` times.

    examples: {setting: completions (K, 3, R, R) in [0, 1]}, or {setting: {name: completions}} to show several
    models side by side; masks_by_setting: {setting: (K, R, R)} the contexts they were completed from.
    """
    from hypersiren.data.context import hide_unknown

    columns = {s: (e if isinstance(e, dict) else {"out": e}) for s, e in examples.items()}
    count = min(len(v) for per in columns.values() for v in per.values())
    enlarge = lambda x: x.repeat_interleave(scale, dim=-1).repeat_interleave(scale, dim=-2)
    rows = []
    for i in range(count):
        tiles = []
        for setting, per in columns.items():
            masks = masks_by_setting[setting][i : i + 1].cpu()
            tiles += [hide_unknown(images_unit[i : i + 1].cpu(), masks, UNKNOWN_GRAY)[0], *(v[i].cpu() for v in per.values())]
        tiles.append(images_unit[i].cpu())
        rows.append(side_by_side([enlarge(t) for t in tiles]))
    size = images_unit.shape[-1] * scale
    labels = [f"{s} {name}" for s, per in columns.items() for name in ("ctx", *per)] + ["truth"]
    return stack_rows([side_by_side([label(text, size) for text in labels])] + rows)


def context_rows(full: Tensor, small: Tensor, masks: Tensor, completions: Tensor, size: int) -> Tensor:
    """(3, H, W) in [0, 1]: per image a row of its context (B, 3, R, R) under masks (B, R, R) (unknown pixels gray)
    | its completions (B, K, 3, size, size) | the ground truth ``full`` (B, 3, S, S), every tile at ``size``."""
    import torch.nn.functional as F

    from hypersiren.data.context import hide_unknown
    from hypersiren.data.image import resize

    context = F.interpolate(hide_unknown(small, masks, UNKNOWN_GRAY).cpu(), size=size, mode="nearest")
    truth = resize(full.cpu(), size, size)
    return stack_rows([side_by_side([context[i], *completions[i], truth[i]]) for i in range(len(full))])


def label(text: str, width: int) -> Tensor:
    """(3, 14, width) white tile with ``text`` in black (PIL's built-in bitmap font)."""
    import numpy as np
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (width, 14), "white")
    ImageDraw.Draw(canvas).text((1, 1), text, fill="black")
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path, **savefig) -> None:
    """Write a matplotlib figure as a PNG atomically, then close it."""
    from hypersiren.io import atomic_write

    with atomic_write(path) as f:
        figure.savefig(f, format="png", **savefig)
    pyplot().close(figure)
