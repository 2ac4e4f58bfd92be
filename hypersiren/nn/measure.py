"""Networks measured before they are built: a constructor run on torch's meta device records every tensor's shape
and allocates nothing, so a configuration asking for a huge network is refused (``build_checked``) and a
checkpoint's tensors are compared with what its configuration implies (``hypersiren.checkpoint.restore_module``)
before any memory is used. ``step_bytes`` estimates the activations of a training step the same way, by arithmetic.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from hypersiren.limits import FLOAT32, check_memory

TRAINING_COPIES = 4  # memory of a trained parameter: its value, its gradient and Adam's two moments


class _SkipInitialisation(TorchFunctionMode):
    """Skips in-place initialisers (``uniform_``, ``kaiming_normal_``, ...): on the meta device there are no
    values to draw, and torch's meta ``normal_`` imports sympy on first use (2 s)."""

    NAMES = ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
             "xavier_normal_", "orthogonal_", "constant_", "zeros_", "ones_")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) in self.NAMES:
            return args[0] if args else kwargs.get("tensor")
        return func(*args, **kwargs)


def skeleton(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` on the meta device: the module's structure and tensor shapes, without their memory (or values)."""
    with torch.device("meta"), _SkipInitialisation():
        return build()


def build_checked(build: Callable[[], nn.Module], what: str) -> nn.Module:
    """``build()``, once the module it makes, trained with Adam (``TRAINING_COPIES`` per parameter), is known to fit
    the memory budget (``hypersiren.limits``). ``what`` names the options that size it, for the message."""
    tensors = skeleton(build).state_dict().values()
    size = sum(t.numel() * t.element_size() for t in tensors)
    check_memory({f"{what} ({sum(t.numel() for t in tensors):,} parameters)": size * TRAINING_COPIES})
    return build()


def step_bytes(points: int, hidden_features: int, hidden_layers: int, derivatives: int = 0) -> int:
    """A lower estimate of the activations of one training step of a coordinate network on ``points`` points: one
    float32 per point, feature and layer, for the values and each of ``derivatives`` propagated derivatives."""
    return points * hidden_features * (hidden_layers + 1) * FLOAT32 * (1 + derivatives)
