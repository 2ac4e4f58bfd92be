"""Context masks for image completion: which pixels of an R x R image a prior is shown.

A mask is a (B, R, R) bool tensor, True where a pixel is known (the context); pixel (i, j) is row i, column j,
matching ``hypersiren.data.grid.grid(R, R)`` row i*R + j. Every sampler draws its randomness from the given
``torch.Generator`` (or torch's global RNG), on the generator's device, so a seeded generator repeats exactly;
the masks are then moved to ``device``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hypersiren.data.grid import grid
from hypersiren.errors import InputError

HALF_SIDES = ("top", "bottom", "left", "right")
EVALUATION_SETTINGS_HELP = "a pixel count such as 10, 100 or 1000, 'half' (top half known) or 'full' (every pixel)"
SPREAD_CELLS = 32  # ``context_spread`` measures masks larger than this on SPREAD_CELLS x SPREAD_CELLS cells
SPREAD_FLOOR = 0.1  # added before the log in ``context_spread``: every pixel known gives log(0.1)


def _sampling_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """Uniform [0, 1) samples on the generator's device."""
    return torch.rand(shape, generator=generator, device=_sampling_device(generator))


def _randint(low: int, high: int, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """Integers uniform in [low, high] (both included) on the generator's device."""
    return torch.randint(low, high + 1, shape, generator=generator, device=_sampling_device(generator))


def _check_size(batch: int, resolution: int) -> None:
    if batch < 1 or resolution < 1:
        raise InputError(f"masks need a positive batch size and resolution, got batch={batch}, resolution={resolution}")


def _impossible(count, resolution: int) -> InputError:
    return InputError(f"a context of {count} pixels is impossible in a {resolution}x{resolution} image; expected 1 "
                      f"to {resolution * resolution} pixels")


def random_pixel_masks(batch: int, resolution: int, num_pixels: int | Tensor, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> Tensor:
    """(B, R, R) masks with exactly ``num_pixels`` known pixels per sample, chosen uniformly without replacement.

    num_pixels: one count for all samples or a (B,) integer tensor of per-sample counts, each in [1, R*R].
    """
    _check_size(batch, resolution)
    total = resolution * resolution
    if isinstance(num_pixels, int) and not 1 <= num_pixels <= total:  # before torch, which stops at int64
        raise _impossible(num_pixels, resolution)
    counts = torch.as_tensor(num_pixels).to(_sampling_device(generator))
    if counts.is_floating_point() or counts.dim() > 1 or (counts.dim() == 1 and counts.shape[0] != batch):
        raise InputError(f"num_pixels must be an integer or a ({batch},) integer tensor, got {num_pixels!r}")
    if counts.numel() and (counts.min() < 1 or counts.max() > total):
        raise _impossible(counts.tolist(), resolution)
    order = _uniform((batch, total), generator).argsort(dim=1)
    chosen = torch.arange(total, device=order.device).expand(batch, total) < counts.reshape(-1, 1)
    masks = torch.zeros(batch, total, dtype=torch.bool, device=order.device).scatter(1, order, chosen)
    return masks.reshape(batch, resolution, resolution).to(device or masks.device)


def _half_patterns(resolution: int, device: torch.device) -> Tensor:
    """(4, R, R): top, bottom, left and right halves (R // 2 rows or columns; the centre line of an odd R
    belongs to neither half)."""
    idx = torch.arange(resolution, device=device)
    rows, cols = idx.reshape(-1, 1).expand(resolution, resolution), idx.reshape(1, -1).expand(resolution, resolution)
    half = resolution // 2 if resolution > 1 else 1
    return torch.stack([rows < half, rows >= resolution - half, cols < half, cols >= resolution - half])


def half_masks(batch: int, resolution: int, side: str = "top", device: torch.device | str | None = None) -> Tensor:
    """(B, R, R) masks where the ``side`` half ("top", "bottom", "left" or "right") is known."""
    _check_size(batch, resolution)
    if side not in HALF_SIDES:
        raise InputError(f"unknown half {side!r}; expected one of {', '.join(HALF_SIDES)}")
    pattern = _half_patterns(resolution, torch.device(device or "cpu"))[HALF_SIDES.index(side)]
    return pattern.expand(batch, resolution, resolution).clone()


def _block_masks(batch: int, resolution: int, generator: torch.Generator | None) -> Tensor:
    """(B, R, R): a random axis-aligned block (sides 1/4 to 3/4 of R) that is the only known region for half of
    the samples and the only missing region (a hole to inpaint) for the other half."""
    device = _sampling_device(generator)
    low, high = max(1, resolution // 4), max(1, (3 * resolution) // 4)
    heights, widths = _randint(low, high, (batch, 1, 1), generator), _randint(low, high, (batch, 1, 1), generator)
    top = (_uniform((batch, 1, 1), generator) * (resolution - heights + 1)).long()
    left = (_uniform((batch, 1, 1), generator) * (resolution - widths + 1)).long()
    idx = torch.arange(resolution, device=device)
    rows, cols = idx.reshape(1, -1, 1), idx.reshape(1, 1, -1)
    inside = (rows >= top) & (rows < top + heights) & (cols >= left) & (cols < left + widths)
    known_inside = _uniform((batch, 1, 1), generator) < 0.5
    masks = torch.where(known_inside, inside, ~inside)
    return masks | ~masks.flatten(1).any(dim=1).reshape(-1, 1, 1)  # a block covering the image: show everything


def _stroke_masks(batch: int, resolution: int, generator: torch.Generator | None, strokes: int = 3,
                  vertices: int = 5) -> Tensor:
    """(B, R, R): free-form brush strokes (random walks of thick line segments, as in free-form inpainting)
    are missing, the rest is known."""
    device = _sampling_device(generator)
    r = float(resolution)
    start = _uniform((batch, strokes, 1, 2), generator) * r
    angles = _uniform((batch, strokes, vertices - 1), generator) * (2 * math.pi)
    lengths = (0.1 + 0.2 * _uniform((batch, strokes, vertices - 1), generator)) * r
    steps = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1) * lengths.unsqueeze(-1)
    points = torch.cat([start, start + steps.cumsum(dim=2)], dim=2).clamp(0, r - 1)  # (B, S, V, 2) as (y, x)
    radius = (0.02 + 0.04 * _uniform((batch, strokes, 1), generator)) * r + 0.5  # (B, S, 1) pixels
    a, b = points[:, :, :-1].reshape(batch, -1, 1, 2), points[:, :, 1:].reshape(batch, -1, 1, 2)  # (B, K, 1, 2)
    radius = radius.expand(batch, strokes, vertices - 1).reshape(batch, -1, 1)
    pixels = torch.stack(torch.meshgrid(torch.arange(resolution, device=device), torch.arange(resolution, device=device),
                                        indexing="ij"), dim=-1).reshape(1, 1, -1, 2).float()  # (1, 1, R*R, 2)
    ab, ap = b - a, pixels - a
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-9)).clamp(0, 1)  # (B, K, R*R)
    squared_distance = (ap - t.unsqueeze(-1) * ab).square().sum(dim=-1)
    known = ~(squared_distance <= radius.square()).any(dim=1)  # (B, R*R)
    known = known | ~known.any(dim=1, keepdim=True)  # strokes covering everything: show everything
    return known.reshape(batch, resolution, resolution)


STRUCTURED_KINDS = ("half", "block", "strokes")


def structured_masks(batch: int, resolution: int, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """(B, R, R) structured masks, each sample one of: a random half (top/bottom/left/right) known, a random
    block known or missing, or free-form strokes missing (equal chances)."""
    _check_size(batch, resolution)
    kind = _randint(0, len(STRUCTURED_KINDS) - 1, (batch,), generator)
    side = _randint(0, len(HALF_SIDES) - 1, (batch,), generator)
    masks = _half_patterns(resolution, kind.device)[side]
    for index, sampler in ((1, _block_masks), (2, _stroke_masks)):
        chosen = (kind == index).nonzero().flatten()
        if len(chosen):
            masks[chosen] = sampler(len(chosen), resolution, generator)
    return masks.to(device or masks.device)


def training_masks(batch: int, resolution: int, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None, *, min_pixels: int = 10, max_pixels: int = 200,
                   large_fraction: float = 0.25, structured_fraction: float = 0.25) -> Tensor:
    """(B, R, R) training contexts: most samples get the paper's uniform ``min_pixels``..``max_pixels`` random
    pixels; a ``large_fraction`` of samples get more random pixels (``max_pixels`` up to the whole image) and a
    ``structured_fraction`` get a structured mask (halves, blocks, free-form strokes), so one prior serves any
    mask at inference. Every mask has at least one known pixel."""
    _check_size(batch, resolution)
    total = resolution * resolution
    if not 1 <= min_pixels <= max_pixels:
        raise InputError(f"context sizes must satisfy 1 <= min_pixels <= max_pixels, got {min_pixels}..{max_pixels}")
    if min(large_fraction, structured_fraction) < 0 or large_fraction + structured_fraction > 1:
        raise InputError(f"large_fraction and structured_fraction must be >= 0 and sum to at most 1, got "
                         f"{large_fraction} and {structured_fraction}")
    low, high = min(min_pixels, total), min(max_pixels, total)
    choice = _uniform((batch,), generator)
    small = _randint(low, high, (batch,), generator)
    large = _randint(high, total, (batch,), generator)
    is_large = (choice >= structured_fraction) & (choice < structured_fraction + large_fraction)
    masks = random_pixel_masks(batch, resolution, torch.where(is_large, large, small), generator)
    structured = (choice < structured_fraction).nonzero().flatten()
    if len(structured):
        masks[structured] = structured_masks(len(structured), resolution, generator)
    return masks.to(device or masks.device)


def evaluation_masks(setting: str, batch: int, resolution: int, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """(B, R, R) masks of an evaluation setting: an integer string ("10", "100", "1000") = that many random
    pixels, "half" = top half known, "full" = every pixel known."""
    _check_size(batch, resolution)
    setting = str(setting)
    if setting == "full":
        return torch.ones(batch, resolution, resolution, dtype=torch.bool, device=device)
    if setting == "half":
        return half_masks(batch, resolution, "top", device=device)
    if setting.isdigit():
        if len(setting) > 18:  # more pixels than int64 counts (and too long for int() beyond 4300 digits)
            raise _impossible(f"{setting[:18]}...", resolution)
        return random_pixel_masks(batch, resolution, int(setting), generator, device)
    raise InputError(f"unknown context setting {setting!r}; expected {EVALUATION_SETTINGS_HELP}")


def _mask_from_array(array: Tensor, batch: int, resolution: int, what: str) -> Tensor:
    if array.dtype != torch.bool:
        if array.is_complex() or not bool(((array == 0) | (array == 1)).all()):
            raise InputError(f"{what} must be boolean or hold only 0 and 1 (True/1 = known pixel)")
        array = array != 0
    if array.dim() == 2:
        array = array.unsqueeze(0)
    if array.dim() != 3 or array.shape[1:] != (resolution, resolution) or array.shape[0] not in (1, batch):
        raise InputError(f"{what} has shape {tuple(array.shape)}; expected ({resolution}, {resolution}) or "
                         f"({batch}, {resolution}, {resolution})")
    return array.expand(batch, resolution, resolution).clone()


def read_mask_picture(path: str | Path, shape: tuple[int, int] | None = None) -> Tensor:
    """A mask picture as an (H, W) bool mask: white (> 0.5 after averaging channels) = known; resized to ``shape``
    (nearest neighbour) if given."""
    import torch.nn.functional as F

    from hypersiren.data.image import load_image

    mask = load_image(path).mean(dim=0) > 0.5
    if shape is not None and tuple(mask.shape) != tuple(shape):
        mask = F.interpolate(mask[None, None].float(), size=tuple(shape), mode="nearest")[0, 0] > 0.5
    return mask


def hide_unknown(images_unit: Tensor, masks: Tensor, fill: float = 0.0) -> Tensor:
    """Images (B, C, R, R) with every pixel outside ``masks`` (B, R, R) set to ``fill``."""
    return torch.where(masks[:, None], images_unit, torch.as_tensor(fill, dtype=images_unit.dtype,
                                                                   device=images_unit.device))


def mask_from_spec(spec, batch: int, resolution: int, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> Tensor:
    """The (B, R, R) context an inference call asks for.

    spec: a boolean (or 0/1) array or tensor of shape (R, R) or (B, R, R), True = known; a pixel count (int
    or digit string: that many random pixels per sample); "half"/"top"/"bottom"/"left"/"right" (that half
    known; "half" = top); "full" (every pixel); or the path of a mask picture (white = known).
    Raises InputError for anything else and for a mask without a known pixel.
    """
    _check_size(batch, resolution)
    if isinstance(spec, (np.ndarray, Tensor)):
        masks = _mask_from_array(torch.as_tensor(spec), batch, resolution, "context mask")
    elif isinstance(spec, (bool, np.bool_)):
        raise InputError(f"context {spec!r} is not a mask; expected {EVALUATION_SETTINGS_HELP}, a side, or a mask")
    elif isinstance(spec, (int, np.integer)):
        masks = random_pixel_masks(batch, resolution, int(spec), generator)
    elif isinstance(spec, (str, Path)):
        text = str(spec)
        if text in HALF_SIDES:
            masks = half_masks(batch, resolution, text)
        elif text in ("half", "full") or text.isdigit():
            masks = evaluation_masks(text, batch, resolution, generator)
        elif Path(text).is_file():
            masks = read_mask_picture(text, (resolution, resolution)).expand(batch, resolution, resolution).clone()
        else:
            raise InputError(f"unknown context {text!r}; expected {EVALUATION_SETTINGS_HELP}, top/bottom/left/right, "
                             "or the path of a mask picture (white = known)")
    else:
        raise InputError(f"context of type {type(spec).__name__} not understood; expected a boolean mask, a pixel "
                         "count, 'half' or 'full'")
    if not masks.flatten(1).any(dim=1).all():
        raise InputError("the context mask has no known pixel; expected at least one True (known) pixel")
    return masks.to(device or masks.device)


def context_spread(masks: Tensor) -> Tensor:
    """How unevenly each context of ``masks`` (B, H, W) covers its image, (B,): log(2 sqrt(n) D + SPREAD_FLOOR), with
    D the mean distance (in image widths) from a pixel to the nearest known one and n the count of known pixels.

    n pixels spread evenly at random lie D ~ 1 / (2 sqrt(n)) from the average pixel, which gives about 0; a known
    half of a 32 x 32 face about 1.8 (most pixels lie far from any known one); every pixel known log(0.1). Masks
    larger than SPREAD_CELLS a side are measured on that many cells a side, a cell known when any of its pixels is.
    A mask without a known pixel gets 0."""
    counts = masks.flatten(1).sum(dim=1).float()
    cells = masks[:, None].float()
    if max(masks.shape[1:]) > SPREAD_CELLS:
        cells = torch.nn.functional.adaptive_max_pool2d(cells, [min(n, SPREAD_CELLS) for n in masks.shape[1:]])
    cells = cells.flatten(1) > 0
    centres = grid(*(min(n, SPREAD_CELLS) for n in masks.shape[1:]), device=masks.device) / 2  # image widths
    spread = torch.zeros(len(masks), device=masks.device)
    for i, known in enumerate(cells):
        if known.any():
            mean_distance = torch.cdist(centres, centres[known]).amin(dim=1).mean()
            spread[i] = torch.log(2 * counts[i].sqrt() * mean_distance + SPREAD_FLOOR)
    return spread
