"""The sine layer of a training step on a large CPU batch, with its elementwise work in fused kernels.

``sin(x W^T + b)`` through autograd costs, besides the matrix products, a pass to broadcast the bias into the
product's output, the sine, and in the backward pass a cosine, a product with the incoming gradient and a sum
for the bias gradient: each a full pass over activation-sized memory. Here the product is taken without the
bias, the forward pass is one kernel (bias + sine) and the backward pass one kernel (cosine of the recomputed
pre-activation times the gradient, and its column sums), compiled by ``hypersiren.nn.fused``: about 13% off a
256x256 image-fitting step on 2 CPU cores (``benchmarks/fit_speed.py``).

``Siren.forward`` takes this path only for training with the module's own parameters on CPU (``applies``);
never under ``torch.func`` transforms or inside ``torch.compile``, never when the coordinates require grad
(autograd derivatives of the network). A backward pass that is itself differentiated (``create_graph``)
differentiates the plain formula instead.
"""
from __future__ import annotations

import torch
from torch import Tensor

from hypersiren.nn import fused


def applies(coords: Tensor, width: int) -> bool:
    """Whether a training forward pass on ``coords`` (..., in) through sine layers of ``width`` takes this path."""
    return (torch.is_grad_enabled() and not coords.requires_grad and coords.device.type == "cpu"
            and coords.shape[:-1].numel() * width >= fused.MIN_ELEMENTS and fused.enabled()
            and not torch.compiler.is_compiling() and torch._C._functorch.peek_interpreter_stack() is None)


def sine_of_affine(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``sin(x W^T + b)`` for x (..., in), weight (out, in), bias (out,) -> (..., out)."""
    return _SineOfAffine.apply(x, weight, bias)


def _forward_rows(pre: Tensor, bias: Tensor) -> Tensor:
    return torch.sin(pre + bias)


def _backward_rows(pre: Tensor, bias: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
    """The gradient of the pre-activation (N, out) and of the bias (out,)."""
    g_pre = torch.cos(pre + bias) * grad
    return g_pre, g_pre.sum(0)


class _SineOfAffine(torch.autograd.Function):
    """Saves the input and the pre-activation without the bias (sin and cos are recomputed from it)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        pre = torch.mm(x.reshape(-1, x.shape[-1]), weight.t())
        ctx.save_for_backward(x, weight, bias, pre)
        return fused.kernel(_forward_rows, pre)(pre, bias).reshape(*x.shape[:-1], -1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, bias, pre = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph: differentiate the plain formula
            inputs = [t for t, need in zip((x, weight, bias), needs) if need]
            grads = iter(torch.autograd.grad(torch.sin(x @ weight.t() + bias), inputs, grad, create_graph=True))
            return tuple(next(grads) if need else None for need in needs)
        flat = x.reshape(-1, x.shape[-1])
        g_pre, g_bias = fused.kernel(_backward_rows, pre)(pre, bias, grad.reshape(pre.shape))
        g_x = torch.mm(g_pre, weight).reshape(x.shape) if needs[0] else None
        g_weight = torch.mm(g_pre.t(), flat) if needs[1] else None
        return g_x, g_weight, g_bias if needs[2] else None
