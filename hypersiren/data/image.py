"""Images as signals: loading (picture files via ``hypersiren.formats.image``, or scikit-image's bundled
samples), resizing, value normalisation, saving, and the adapters that read the images a user hands to
``HyperSiren`` (PIL, numpy, torch; uint8 or float; batched or not) and give results back in the same form.

Tensors are (C, H, W) float in [0, 1] unless stated; network values are ``2 v - 1`` in [-1, 1].
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """Read an image file (anything PIL reads) or a built-in name (``camera``, ``astronaut``): ``picture_tensor``
    of it. Raises InputError naming the problem."""
    from PIL import Image

    if str(source) in BUILTIN_IMAGES and not Path(source).exists():
        image = Image.fromarray(_builtin(str(source)))
    else:
        image = read_image(source, f"an image file or one of {', '.join(BUILTIN_IMAGES)}")
    return picture_tensor(image, mode, source)


def picture_tensor(image, mode: str | None = None, source: Any = "") -> Tensor:
    """A PIL image as (C, H, W) float32 in [0, 1], turned upright as its EXIF orientation says.

    mode: None keeps grayscale as 1 channel and turns everything else into RGB; "L" or "RGB" forces it.
    Values are divided by their type's full range: 8-bit by 255, 16-bit (PNG, TIFF, PGM alike) by 65535; float
    pictures must hold values in [0, 1]. InputError (naming ``source``) for values outside the type's range.
    """
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in _GRAY_DEEP:
        tensor = torch.from_numpy(_deep_gray(image, source))[None]
        tensor = tensor.expand(3, -1, -1) if mode == "RGB" else tensor
    else:
        mode = mode or ("L" if image.mode in ("L", "1") else "RGB")
        array = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array)
        tensor = tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)
    return tensor.contiguous()


_GRAY_DEEP = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # one-channel PIL modes beyond 8 bits
_FULL_RANGE = 65535.0  # 16-bit; PIL holds 16-bit PGM (and older PIL 16-bit PNG) in 32-bit mode "I"


def _deep_gray(image, source) -> np.ndarray:
    """(H, W) float32 in [0, 1] of a 16-bit, 32-bit integer or float grayscale picture; InputError for values the
    type's range does not explain (negative or beyond 16 bits, floats outside [0, 1], NaN/Inf)."""
    array = np.asarray(image, dtype=np.float64)
    if not np.isfinite(array).all():
        raise InputError(f"image {source} contains NaN or Inf values")
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if image.mode == "F":
        if low < 0 or high > 1:
            raise InputError(f"float image {source} has values in [{low:.4g}, {high:.4g}]; expected floats in [0, 1] "
                             "(or an 8/16-bit integer picture)")
        return array.astype(np.float32)
    if low < 0 or high > _FULL_RANGE:
        raise InputError(f"image {source} has integer values in [{low:.0f}, {high:.0f}]; expected 8-bit (0..255) or "
                         "16-bit (0..65535) pixels")
    return (array / _FULL_RANGE).astype(np.float32)


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


@dataclass
class ImageKind:
    """How the caller's images were given (``read_images``), to return results the same way (``restore_images``)."""

    library: str  # "pil", "numpy" or "torch"
    batched: bool  # a batch array/tensor or a list
    is_list: bool
    uint8: bool
    dtype: Any = None
    device: Any = None
    shape: tuple[int, int] = (0, 0)  # (H, W) before the square crop


def _as_tensor(image: Any) -> tuple[Tensor, ImageKind]:
    """One image or batch -> (B, C, H, W) float in [0, 1] and its kind."""
    from PIL import Image

    if isinstance(image, Image.Image):  # upright, 8/16-bit scaled, alpha dropped: as a picture file is read
        tensor = picture_tensor(image, "RGB", "PIL image")[None]
        return _normalise(tensor, "PIL image"), ImageKind("pil", False, False, True)
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3, 4):
            raise InputError(f"numpy image has shape {image.shape}; expected (H, W), (H, W, C) or (B, H, W, C)")
        tensor = torch.from_numpy(np.array(image))  # a copy: the caller's array may be read-only
        tensor = tensor[None, None] if image.ndim == 2 else (tensor.permute(2, 0, 1)[None] if image.ndim == 3 else tensor.permute(0, 3, 1, 2))
        return _normalise(tensor, "numpy image"), ImageKind("numpy", image.ndim == 4, False, image.dtype == np.uint8, image.dtype)
    if isinstance(image, Tensor):
        if image.dim() not in (2, 3, 4):
            raise InputError(f"tensor image has shape {tuple(image.shape)}; expected (H, W), (C, H, W) or (B, C, H, W)")
        tensor = image.detach().cpu()
        tensor = tensor[None, None] if image.dim() == 2 else (tensor[None] if image.dim() == 3 else tensor)
        return _normalise(tensor, "tensor image"), ImageKind("torch", image.dim() == 4, False, image.dtype == torch.uint8,
                                                               image.dtype, image.device)
    raise InputError(f"cannot read an image from a {type(image).__name__}; expected a PIL image, a numpy array or a "
                     "torch tensor (or a list of them)")


def _normalise(tensor: Tensor, what: str) -> Tensor:
    """(B, C, H, W) of any supported dtype -> float32 in [0, 1] with 3 channels (gray repeated, alpha dropped)."""
    if tensor.dtype == torch.uint8:
        tensor = tensor.float() / 255
    elif tensor.is_floating_point():
        tensor = tensor.float()
        if not torch.isfinite(tensor).all():
            raise InputError(f"{what} contains NaN or Inf values")
        if tensor.numel() and (tensor.min() < 0 or tensor.max() > 1):
            raise InputError(f"{what} has float values in [{tensor.min():.3g}, {tensor.max():.3g}]; expected "
                             "floats in [0, 1] or uint8 in 0..255")
    else:
        raise InputError(f"{what} has dtype {tensor.dtype}; expected uint8 (0..255) or float (0..1)")
    channels = tensor.shape[1]
    if channels in (1, 2):  # gray (+ alpha)
        tensor = tensor[:, :1].expand(-1, 3, -1, -1)
    elif channels == 4:  # RGBA
        tensor = tensor[:, :3]
    elif channels != 3:
        raise InputError(f"{what} has {channels} channels; expected 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); "
                         "numpy images are channels-last (H, W, C), tensors channels-first (C, H, W)")
    if min(tensor.shape[-2:]) < 1:
        raise InputError(f"{what} is empty ({tuple(tensor.shape[-2:])} pixels)")
    return tensor.contiguous()


def read_images(image: Any) -> tuple[Tensor, ImageKind]:
    """Any supported input (or a list of inputs of one size) -> (B, 3, S, S) in [0, 1] and its kind. Gray is
    repeated to RGB, alpha dropped, and a non-square image centre-cropped to a square (with a warning)."""
    if isinstance(image, (list, tuple)):
        if not image:
            raise InputError("empty list of images; expected at least one image")
        parts = [_as_tensor(item) for item in image]
        sizes = {tuple(t.shape[-2:]) for t, _ in parts}
        if len(sizes) > 1:
            raise InputError(f"images in a list must share one size, got {sorted(sizes)}")
        tensor = torch.cat([t for t, _ in parts])
        kind = parts[0][1]
        kind.batched, kind.is_list = True, True
    else:
        tensor, kind = _as_tensor(image)
    height, width = kind.shape = tuple(tensor.shape[-2:])
    if height != width:
        from hypersiren.data.face_cache import square_crop

        warnings.warn(f"image is {height}x{width}, not square: using its centred {min(height, width)}x"
                      f"{min(height, width)} square", stacklevel=3)
        tensor = square_crop(tensor)
    return tensor, kind


def restore_images(images_unit: Tensor, kind: ImageKind):
    """(B, 3, r, r) in [0, 1] -> the caller's kind (PIL results are RGB)."""
    images_unit = images_unit.detach().cpu()
    if kind.library == "pil":
        from PIL import Image

        arrays = (images_unit * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        result = [Image.fromarray(a, "RGB") for a in arrays]
        return result if kind.batched else result[0]
    if kind.uint8:
        images = (images_unit * 255).round().to(torch.uint8)
    else:
        images = images_unit.to(kind.dtype if kind.library == "torch" else torch.float32)
    if kind.library == "numpy":
        arrays = images.permute(0, 2, 3, 1).numpy().astype(kind.dtype, copy=False)  # float64 in, float64 out
        if kind.is_list:
            return list(arrays)
        return arrays if kind.batched else arrays[0]
    images = images.to(kind.device)
    if kind.is_list:
        return list(images)
    return images if kind.batched else images[0]
