"""Pieces shared by priors that fit a code to the context pixels by gradient steps (MAML, Reptile, functa,
test-time refinement): gathering the known pixels, the masked context loss, and a batched SGD inner loop.

Context points of a batch are padded to the largest context in it: coords (B, K, 2), values (B, K, 3) and
weights (B, K) with weight 1 for a known pixel and 0 for padding, so per-sample losses ignore the padding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from hypersiren.config import Check, option, positive_float
from hypersiren.data.grid import grid
from hypersiren.priors.base import FunctionPrior, PriorConfig

Code = dict[str, Tensor]


def padded_context(images: Tensor, masks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The known pixels of each image as padded point sets.

    images (B, C, R, R) values; masks (B, R, R) bool, True = known. Pixels outside a mask are never read.
    Returns coords (B, K, 2) as (y, x) in [-1, 1], values (B, K, C) and weights (B, K) in {0, 1}, K = the
    largest number of known pixels in the batch (at least 1).
    """
    batch, channels, height, width = images.shape
    flat_mask = masks.reshape(batch, height * width)
    known = torch.where(masks[:, None], images, 0.0).reshape(batch, channels, height * width).transpose(1, 2)
    count = max(int(flat_mask.sum(dim=1).max()), 1)
    order = torch.sort(flat_mask.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :count]
    coords = grid(height, width, device=images.device).to(images.dtype)[order]
    values = torch.gather(known, 1, order[..., None].expand(-1, -1, channels))
    weights = torch.gather(flat_mask, 1, order).to(images.dtype)
    return coords, values, weights


def masked_mse(prediction: Tensor, values: Tensor, weights: Tensor) -> Tensor:
    """Mean squared error over the weighted points of each sample: (..., K, C), (..., K, C), (..., K) -> (...)."""
    squared = ((prediction - values) ** 2).mean(dim=-1)
    return (squared * weights).sum(dim=-1) / weights.sum(dim=-1).clamp_min(1.0)


def sgd_steps(
    loss_of_one: Callable[[Code, Tensor, Tensor, Tensor], Tensor],
    code: Code,
    context: tuple[Tensor, Tensor, Tensor],
    learning_rates: Code,
    steps: int,
    create_graph: bool,
) -> tuple[Code, Tensor | None]:
    """``steps`` plain SGD steps on every sample's own context loss, all samples at once.

    loss_of_one(code_one, coords (K, 2), values (K, C), weights (K,)) -> scalar: the loss of one sample
        (its per-sample gradient comes from ``torch.func.grad``, batched over samples with ``torch.func.vmap``).
    code: name -> (B, *shape), the starting point (may depend on meta-parameters).
    learning_rates: name -> a tensor broadcastable to one sample's ``code[name]`` (scalar, or per element).
    create_graph: keep the steps differentiable (second-order MAML); False makes the gradients constants
        (first-order MAML, Reptile, inference).
    Returns the adapted code and the per-sample context loss before the first step, (B,) (None if steps == 0).
    """
    step = torch.func.vmap(torch.func.grad_and_value(loss_of_one))
    initial_loss = None
    for index in range(steps):
        grads, loss = step(code, *context)
        if index == 0:
            initial_loss = loss.detach()
        if not create_graph:
            grads = {name: g.detach() for name, g in grads.items()}
        code = {name: value - learning_rates[name] * grads[name] for name, value in code.items()}
    return code, initial_loss


MAX_INNER_STEPS = 1000  # every step is unrolled into the outer loss's graph, like a layer
INNER_STEPS = Check(int, lambda v: 0 <= v <= MAX_INNER_STEPS, f"an integer from 0 to {MAX_INNER_STEPS}")


@dataclass(frozen=True, kw_only=True)
class InnerLoopConfig(PriorConfig):
    """Options of a prior that fits its code to the context by SGD steps."""

    inner_steps: int = option(3, "inner SGD steps on the context", check=INNER_STEPS)
    inner_lr: float = option(1e-2, "inner SGD learning rate (the initial one when learned)", check=positive_float)


class InnerLoopPrior(FunctionPrior):
    """A prior whose code of an image is found by ``config.inner_steps`` SGD steps on the context pixels.

    Subclasses define the starting code, the inner learning rates, one sample's context loss and how a batch of
    codes renders; this class runs the inner loop (``sgd_steps``), ``infer`` and the MAML-style outer loss.
    Codes inside the inner loop are dicts name -> (B, *shape); ``public_code`` turns one into what ``infer``
    returns and ``render`` accepts.
    """

    Config = InnerLoopConfig

    def start(self, batch: int, like: Tensor) -> Code:
        """The code every inner loop starts from, for ``batch`` samples (dtype/device of ``like``)."""
        raise NotImplementedError

    def learning_rates(self) -> Code:
        """Inner SGD learning rates, name -> tensor broadcastable to one sample's code entry."""
        raise NotImplementedError

    def context_loss(self, code: Code, coords: Tensor, values: Tensor, weights: Tensor) -> Tensor:
        """One sample's loss (``masked_mse``): code entries without the batch dim, coords (K, 2), values (K, 3)."""
        raise NotImplementedError

    def public_code(self, code: Code) -> Any:
        return code

    def adapt(self, context: tuple[Tensor, Tensor, Tensor], steps: int, create_graph: bool) -> tuple[Code, Tensor | None]:
        """``steps`` inner SGD steps from ``start`` on ``context`` (coords, values, weights); see ``sgd_steps``."""
        start = self.start(context[0].shape[0], context[1])
        return sgd_steps(self.context_loss, start, context, self.learning_rates(), steps, create_graph)

    def infer(self, images: Tensor, masks: Tensor) -> Any:
        """The code fitted to the known pixels (no autograd graph; works under no_grad and inference_mode)."""
        with torch.inference_mode(False), torch.no_grad():
            images, masks = images.clone(), masks.clone()  # inference-mode tensors cannot enter autograd
            code, _ = self.adapt(padded_context(images, masks), self.config.inner_steps, create_graph=False)
        return self.public_code(code)

    def meta_loss(self, images: Tensor, masks: Tensor, target_coords: Tensor, target_values: Tensor,
                  first_order: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """MSE on the targets of the codes adapted to the contexts, differentiated through the inner steps
        (the gradients inside the steps are constants when ``first_order``)."""
        context = padded_context(images, masks)
        code, before = self.adapt(context, self.config.inner_steps, create_graph=not first_order)
        public = self.public_code(code)
        loss = torch.mean((self.render(public, target_coords) - target_values) ** 2)
        with torch.no_grad():
            after = masked_mse(self.render(public, context[0]), context[1], context[2])
        logs = {"target_mse": loss.detach(), "context_mse_after": after.mean()}
        if before is not None:
            logs["context_mse_before"] = before.mean()
        return loss, logs
