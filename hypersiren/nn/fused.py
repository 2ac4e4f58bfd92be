"""Chains of elementwise operations fused into one compiled CPU kernel each, with a fallback to eager mode.

Run eagerly, every operation of a chain reads its inputs from memory and writes its result back; compiled
(``torch.compile``, inductor's C++ backend) the chain is one loop that reads the inputs and writes the outputs
once, which is what bounds memory-bound work on CPU. Compiling takes seconds (once per shape; inductor caches
the kernels on disk), so only work of at least ``MIN_ELEMENTS`` elements is compiled. It needs a C++ compiler:
when compiling fails, the process warns once and runs the functions eagerly. ``HYPERSIREN_FUSED_KERNELS=0`` in
the environment turns compiling off. GPUs run the functions eagerly (not measured there).
"""
from __future__ import annotations

import logging
import os
import warnings
from typing import Callable

import torch
from torch import Tensor

MIN_ELEMENTS = 1 << 22
_compiled: dict[Callable, Callable] = {}
_failed = False


def enabled() -> bool:
    """Whether large CPU work is compiled: unless turned off by the environment or after a failed compile."""
    return not _failed and os.environ.get("HYPERSIREN_FUSED_KERNELS", "1") != "0"


def kernel(fn: Callable, like: Tensor) -> Callable:
    """``fn`` (tensors in, tensors out; other arguments plain Python values) as one fused kernel for work on
    tensors like ``like``, or ``fn`` itself for GPU tensors, small work, when compiling is off or while an outer
    ``torch.compile`` traces the caller."""
    if (like.device.type != "cpu" or like.numel() < MIN_ELEMENTS or not enabled()
            or torch.compiler.is_compiling()):  # inside a caller's torch.compile: it traces the plain maths
        return fn

    def run(*args):
        global _failed
        if _failed:
            return fn(*args)
        try:
            return _compile(fn)(*args)
        except Exception as error:  # e.g. no working C++ compiler: eager mode from now on
            _failed = True
            message = str(error).strip().splitlines()
            warnings.warn(f"hypersiren: compiling fused kernels failed ({type(error).__name__}: "
                          f"{message[0] if message else ''}); running them eagerly", RuntimeWarning, stacklevel=2)
            return fn(*args)

    return run


def _compile(fn: Callable) -> Callable:
    if fn not in _compiled:
        if not _compiled:
            _import_compiler_quietly()
        _compiled[fn] = torch.compile(fn)
    return _compiled[fn]


def _import_compiler_quietly() -> None:
    """Import what inductor imports when it first compiles, with torch.utils.cpp_extension's warning about a
    CUDA toolkit on a machine without a GPU silenced (a CUDA build of torch on CPU says it mid progress bar;
    CPU kernels need no CUDA)."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import torch.utils.cpp_extension  # noqa: F401
    finally:
        logger.setLevel(level)
