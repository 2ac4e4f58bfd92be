"""Picture files through PIL: any format it reads in, the format a file name's suffix names out.

Reading checks the picture's size from its header against hypersiren's pixel limit (``hypersiren.limits``)
before anything is decoded; PIL's own decompression-bomb check (a warning above 89 million pixels, an error above
twice that) is replaced by it, so the limit is one documented number that ``HYPERSIREN_MAX_PIXELS`` changes.
"""
from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from hypersiren.errors import InputError
from hypersiren.io import atomic_write, check_input_file, check_output_file
from hypersiren.limits import check_memory, check_pixels

_PIL_LIMIT = threading.Lock()  # PIL's limit is a module global: lift it for one open at a time
_DECODE_COPIES = 4  # bytes per channel of the float32 arrays a decoded picture becomes, counted once each


@contextlib.contextmanager
def open_image(path: str | Path, expected: str = "an image file") -> Iterator:
    """The opened, not yet decoded ``PIL.Image`` of ``path``, once its header's size passed the pixel limit and the
    memory budget; InputError naming the problem (``expected``: what to ask for)."""
    from PIL import Image, UnidentifiedImageError

    path = check_input_file(path, "image", expected)
    try:
        with _PIL_LIMIT:
            pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                opened = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = pil_limit
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise _unreadable(path, err) from None
    with opened:
        width, height = opened.size
        check_pixels(f"image {path}", width, height)
        check_memory({f"decoding image {path} ({width}x{height})":
                      width * height * len(opened.getbands()) * 4 * _DECODE_COPIES})
        yield opened


def read_image(path: str | Path, expected: str = "an image file"):
    """The decoded ``PIL.Image`` of ``path`` (``open_image``'s checks first). A palette picture with transparency
    comes back as RGBA, as PIL asks (converting it to RGB directly would warn)."""
    from PIL import Image

    with open_image(path, expected) as opened:
        try:
            opened.load()
            image = opened.copy()
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
            raise _unreadable(Path(path), err) from None
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image


def _unreadable(path: Path, err: Exception) -> InputError:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return InputError(f"cannot read image {path}: {reason} (expected a PNG/JPEG/other format PIL reads)")


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
