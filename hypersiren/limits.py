"""Resource limits: the memory budget that every allocation an option or an input implies is checked against
before it is made, and the pixel limit of pictures, checked from a file's header before it is decoded.

- Memory budget: ``HYPERSIREN_MAX_BYTES`` if set (bytes, or with a decimal suffix: ``64G``, ``500M``), else
  ``AVAILABLE_SHARE`` of the memory available when the check is made (``MemAvailable`` in /proc/meminfo, or the
  physical memory where that file does not exist).
- Pixel limit: ``HYPERSIREN_MAX_PIXELS`` if set (``200M``), else ``MAX_PIXELS`` per picture.

A refused request is an InputError naming what asked for it (an option as the user wrote it, or a file), the
bytes or pixels it implies, the limit and how to raise it.
"""
from __future__ import annotations

import os
import re
from typing import Mapping

from hypersiren.errors import InputError

MAX_BYTES_VARIABLE = "HYPERSIREN_MAX_BYTES"
MAX_PIXELS_VARIABLE = "HYPERSIREN_MAX_PIXELS"
AVAILABLE_SHARE = 0.8  # of the available memory, when HYPERSIREN_MAX_BYTES is not set
MAX_PIXELS = 1 << 26  # 67,108,864 pixels (8192 x 8192) per picture, when HYPERSIREN_MAX_PIXELS is not set
FLOAT32 = 4  # bytes per value of the float32 tensors hypersiren computes with

_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?(?:[eE]\d+)?)\s*([KMGTP]?)B?\s*", re.IGNORECASE)


def _setting(variable: str) -> int | None:
    """The positive size an environment variable sets (``8000000000``, ``8G``, ``1.5e9``), or None if unset."""
    text = os.environ.get(variable)
    if text is None or not text.strip():
        return None
    match = _SIZE.fullmatch(text)
    value = float(match[1]) * _UNITS[match[2].upper()] if match else 0.0
    if not 1 <= value < 2**63:
        raise InputError(f"{variable}={text[:40]!r}: expected a positive number below 2^63, optionally with a K, M, "
                         "G or T suffix (e.g. 8G)")
    return int(value)


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (MemAvailable on Linux, else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 34  # 16 GiB where the platform says nothing


def memory_budget() -> tuple[int, str]:
    """(bytes any one request may use, where that number comes from, for messages)."""
    setting = _setting(MAX_BYTES_VARIABLE)
    if setting is not None:
        return setting, f"{MAX_BYTES_VARIABLE}={os.environ[MAX_BYTES_VARIABLE].strip()}"
    budget = int(available_memory() * AVAILABLE_SHARE)
    return budget, f"{AVAILABLE_SHARE:.0%} of the available memory; {MAX_BYTES_VARIABLE} sets another budget"


def max_pixels() -> tuple[int, str]:
    """(pixels a picture may have, where that number comes from, for messages)."""
    setting = _setting(MAX_PIXELS_VARIABLE)
    if setting is not None:
        return setting, f"{MAX_PIXELS_VARIABLE}={os.environ[MAX_PIXELS_VARIABLE].strip()}"
    return MAX_PIXELS, f"the default; {MAX_PIXELS_VARIABLE} raises it"


def format_bytes(count: int | float) -> str:
    """``40.0 GB`` (decimal units), exact below 1 kB."""
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} bytes"


def check_memory(needs: Mapping[str, int | float]) -> None:
    """InputError for the first request in ``needs`` (what asks for it -> bytes, e.g. ``{"--render-size 100000
    (fit.png, 100000x100000 pixels)": 120e9}``) that exceeds the memory budget; nothing is allocated here."""
    if not needs:
        return
    budget, source = memory_budget()
    for what, count in needs.items():
        if count > budget:
            raise InputError(f"{what} needs about {format_bytes(count)} of memory, more than the budget of "
                             f"{format_bytes(budget)} ({source}); expected a smaller value")


def check_pixels(what: str, width: int, height: int) -> None:
    """InputError if a ``width`` x ``height`` picture (``what``: e.g. ``image photo.png``) exceeds the pixel limit."""
    limit, source = max_pixels()
    if width * height > limit:
        raise InputError(f"{what} is {width}x{height} = {width * height:,} pixels, more than the limit of "
                         f"{limit:,} pixels ({source}; a guard against decompression bombs); expected a smaller "
                         "picture")
