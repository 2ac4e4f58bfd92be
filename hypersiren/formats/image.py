"""Picture files through PIL: any format it reads in, the format a file name's suffix names out."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hypersiren.errors import InputError
from hypersiren.io import atomic_write, check_input_file, check_output_file


def read_image(path: str | Path, expected: str = "an image file"):
    """The decoded ``PIL.Image`` of ``path``; InputError naming the problem (``expected``: what to ask for)."""
    from PIL import Image, UnidentifiedImageError

    path = check_input_file(path, "image", expected)
    try:
        with Image.open(path) as opened:
            opened.load()
            return opened.copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise InputError(f"cannot read image {path}: {err} (expected a PNG/JPEG/other format PIL reads)") from None


def image_format(path: str | Path) -> str:
    """The PIL format that ``path``'s suffix names (no suffix: PNG); InputError if PIL cannot write it."""
    from PIL import Image

    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix) if suffix else "PNG"
    if fmt not in Image.SAVE:
        raise InputError(f"cannot write a picture named {Path(path).name}: unknown image suffix {suffix!r}; "
                         "expected .png, .jpg or another format PIL writes")
    return fmt


def check_image_output(path: str | Path) -> Path:
    """``check_output_file`` for a picture: also checks that the suffix names a format PIL writes."""
    image_format(path)
    return check_output_file(path)


def write_image(path: str | Path, pixels: np.ndarray) -> None:
    """8-bit pixels (H, W) grey or (H, W, 3) RGB in the format of the suffix (PNG, JPEG...), atomically."""
    from PIL import Image

    fmt = image_format(path)
    picture = Image.fromarray(pixels)
    with atomic_write(path) as f:
        picture.save(f, format=fmt)
