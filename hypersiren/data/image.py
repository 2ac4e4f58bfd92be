"""Images as signals: loading (picture files via ``hypersiren.formats.image``, or scikit-image's bundled
samples), resizing, value normalisation, saving.

Tensors are (C, H, W) float in [0, 1] unless stated; network values are ``2 v - 1`` in [-1, 1].
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hypersiren.errors import InputError
from hypersiren.formats.image import check_image_output, read_image, write_image  # noqa: F401 (re-export)

BUILTIN_IMAGES = ("camera", "astronaut")


def to_unit(values: Tensor) -> Tensor:
    """Network values in [-1, 1] -> image values in [0, 1] (clamped)."""
    return ((values + 1) / 2).clamp(0, 1)


def from_unit(image: Tensor) -> Tensor:
    """Image values in [0, 1] -> network values in [-1, 1]."""
    return image * 2 - 1


def _builtin(name: str) -> np.ndarray:
    from skimage import data

    return getattr(data, name)()


def load_image(source: str | Path, mode: str | None = None) -> Tensor:
    """Read an image file (anything PIL reads) or a built-in name (``camera``, ``astronaut``).

    mode: None keeps grayscale as 1 channel and turns everything else into RGB; "L" or "RGB" forces it.
    Returns (C, H, W) float32 in [0, 1]. Raises InputError naming the problem.
    """
    from PIL import Image

    if str(source) in BUILTIN_IMAGES and not Path(source).exists():
        image = Image.fromarray(_builtin(str(source)))
    else:
        image = read_image(source, f"an image file or one of {', '.join(BUILTIN_IMAGES)}")
    if mode is None:
        mode = "L" if image.mode in ("L", "I", "I;16", "F", "1") else "RGB"
    if image.mode in ("I", "I;16", "F") and mode == "L":
        array = np.asarray(image, dtype=np.float64)
        if not np.isfinite(array).all():
            raise InputError(f"image {source} contains NaN or Inf values")
        span = array.max() - array.min()
        array = (array - array.min()) / (span if span > 0 else 1)
        tensor = torch.from_numpy(array.astype(np.float32))[None]
    else:
        array = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array)
        tensor = tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)
    if not torch.isfinite(tensor).all():
        raise InputError(f"image {source} contains NaN or Inf values")
    return tensor.contiguous()


def resize(image: Tensor, height: int, width: int) -> Tensor:
    """Antialiased bilinear resize of (C, H, W) or (B, C, H, W) to (height, width); values stay in range."""
    import torch.nn.functional as F

    batched = image if image.dim() == 4 else image[None]
    if batched.shape[-2:] != (height, width):
        batched = F.interpolate(batched, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    batched = batched.clamp(0, 1)
    return batched if image.dim() == 4 else batched[0]


def fit_size(height: int, width: int, longer_side: int) -> tuple[int, int]:
    """(h, w) with the longer side ``longer_side`` and the aspect ratio kept."""
    scale = longer_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def save_image(image: Tensor, path: str | Path) -> None:
    """Write (C, H, W) in [0, 1] (C = 1 or 3) as an 8-bit picture in the format of the suffix (PNG, JPEG...),
    atomically."""
    array = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    write_image(path, array[0].numpy() if array.shape[0] == 1 else array.permute(1, 2, 0).numpy())
