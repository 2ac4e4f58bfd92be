"""What an option accepts: a ``Check`` (a kind, a test and the words for it) and the standard ones. Every value
reaches torch and numpy as int64 or float32, so beyond each check integers must lie within int64 and numbers be 0
or of a magnitude in ``FLOAT32_BAND`` (finite): an option's whole range is refused at parse time, from the
command line, Python or a checkpoint's JSON, before any computation sees it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

INT64 = 2**63  # integers reach torch and numpy as int64: every int option lies in [-INT64, INT64)
FLOAT32_BAND = (1e-30, 1e30)  # numbers are computed with in float32: every float option is 0 or of a magnitude in it


@dataclass(frozen=True)
class Check:
    """What an option accepts: ``kind`` (int, float or str), a test, and the words for it ("a positive integer").
    NaN, infinite numbers, numbers outside ``FLOAT32_BAND`` (but 0) and integers outside int64 are never accepted."""

    kind: type
    accepts: Callable[[Any], bool]
    what: str

    def ok(self, value) -> bool:
        return in_range(value) and self.accepts(value)

    def parse(self, text: str):
        """Command-line text -> value; argparse.ArgumentTypeError("expected ..., got ...")."""
        import argparse

        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.what}, got {shown(text)}") from None
        if not self.ok(value):
            raise argparse.ArgumentTypeError(f"expected {self.expected(value)}, got {shown(text, quote=False)}")
        return value

    def expected(self, value) -> str:
        """What the option accepts, in words, with the range of int64 or float32 when only that refuses a finite
        ``value``."""
        if in_range(value) or (isinstance(value, float) and not math.isfinite(value)) or not self.accepts(value):
            return self.what
        return f"{self.what} {RANGE_WORDS[type(value)]}"


def in_range(value) -> bool:
    """Whether an integer lies within int64 and a float is 0 or of a magnitude in ``FLOAT32_BAND`` (so finite);
    anything else: True."""
    if isinstance(value, int):
        return -INT64 <= value < INT64
    return not isinstance(value, float) or value == 0 or FLOAT32_BAND[0] <= abs(value) <= FLOAT32_BAND[1]


RANGE_WORDS = {int: "of magnitude below 2^63 (int64)", float: "of magnitude from 1e-30 to 1e30 (float32), or 0"}


MAX_WIDTH = 1 << 16  # features of one layer: wider networks exceed any memory budget long before
MAX_LAYERS = 1000  # layers of one network: every layer is a Python object, built before any budget check
DEVICE = re.compile(r"auto|cpu|mps|cuda(:(0|[1-9]\d{0,3}))?")

positive_int = Check(int, lambda v: v > 0, "a positive integer")
non_negative_int = Check(int, lambda v: v >= 0, "an integer >= 0")
positive_float = Check(float, lambda v: v > 0, "a positive number")
non_negative_float = Check(float, lambda v: v >= 0, "a number >= 0")
unit_fraction = Check(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
width = Check(int, lambda v: 0 < v <= MAX_WIDTH, f"an integer from 1 to {MAX_WIDTH}")
layer_count = Check(int, lambda v: 0 <= v <= MAX_LAYERS, f"an integer from 0 to {MAX_LAYERS}")
device_name = Check(str, lambda v: bool(DEVICE.fullmatch(v)), "auto, cpu, cuda, cuda:N or mps")


def shown(value: Any, limit: int = 60, quote: bool = True) -> str:
    """``repr(value)`` (``str`` without ``quote``) for a message, shortened: values may come from untrusted JSON
    or command lines (huge strings and integers)."""
    try:
        text = repr(value) if quote else str(value)
    except ValueError:  # an integer too long to print
        return f"an integer of {value.bit_length()} bits"
    return text if len(text) <= limit else text[: limit - 3] + "..."
