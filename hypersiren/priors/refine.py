"""Test-time refinement: a few gradient steps on a code so that its SIREN fits the context pixels better,
with a penalty that keeps the code near the one the prior predicted.

Steps and penalty are relative to the size of the predicted code, so one setting suits latents (entries ~1)
and SIREN weights (entries ~0.01) alike: each entry of the code is ``code_0 + scale * u`` with ``scale`` the
root mean square of that entry of the image's predicted code, and Adam (learning rate ``lr``) moves ``u`` from 0
to minimise, per image, ``masked_mse(render(code), context) + penalty * mean(u^2)``. Adam's steps are
element-wise, so every image of a batch is refined independently. Each image keeps the best iterate it reached
(step 0 included), so refinement never makes the objective, and hence the context fit, worse than the
prediction: ``mse(best) <= objective(best) <= objective(code_0) = mse(code_0)``.

A code is a tensor (B, ...) (latents of the hypernetwork or functa) or a (nested) dict of such tensors (the
per-sample SIREN parameters of MAML/Reptile, or a hypernetwork's generated weights).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from hypersiren.errors import InputError
from hypersiren.priors.base import FunctionPrior
from hypersiren.priors.inner_loop import masked_mse, padded_context


def _flatten(code: Any, prefix: str = "") -> dict[str, Tensor]:
    """A tensor or (nested) dict of tensors -> {path: tensor}."""
    if isinstance(code, Tensor):
        return {prefix: code}
    if isinstance(code, dict) and code:
        return {path: t for k, v in code.items() for path, t in _flatten(v, f"{prefix}/{k}").items()}
    raise InputError(f"refinement needs a code that is a tensor or a dict of tensors, got {type(code).__name__}")


def _rebuild(template: Any, flat: dict[str, Tensor], prefix: str = "") -> Any:
    """The structure of ``template`` with the tensors of ``flat`` (inverse of ``_flatten``)."""
    if isinstance(template, Tensor):
        return flat[prefix]
    return {k: _rebuild(v, flat, f"{prefix}/{k}") for k, v in template.items()}


def code_scale(code: dict[str, Tensor]) -> dict[str, Tensor]:
    """Root mean square of every entry of each sample's code, shaped to broadcast, (B, 1, ...); 1 where it is 0."""
    scales = {}
    for k, v in code.items():
        rms = v.detach().flatten(1).pow(2).mean(dim=1).sqrt()
        scales[k] = torch.where(rms > 0, rms, torch.ones_like(rms)).reshape(-1, *[1] * (v.dim() - 1))
    return scales


def relative_distance(code: dict[str, Tensor], start: dict[str, Tensor]) -> Tensor:
    """Per-sample mean over every element of ((code - start) / code_scale(start))^2: (B,)."""
    scales = code_scale(start)
    total = sum((((code[k] - start[k]) / scales[k]) ** 2).flatten(1).sum(dim=1) for k in code)
    return total / sum(v[0].numel() for v in start.values())


def refine_code(render: Callable[[Any, Tensor], Tensor], code: Any, images: Tensor, masks: Tensor, steps: int,
                lr: float = 1e-2, penalty: float = 1e-2) -> Any:
    """Refine ``code`` for ``steps`` Adam steps on the context; returns a code of the same kind, without graph.

    render(code, coords (B, K, 2)) -> values (B, K, 3): how a code is evaluated (e.g. ``prior.render``).
    images (B, 3, R, R) in [-1, 1]; masks (B, R, R) bool, True = known; only known pixels are read.
    lr: Adam learning rate of the relative change u; penalty: weight of mean(u^2) (see the module docstring).
    """
    if steps < 0 or not lr > 0 or not penalty >= 0:
        raise InputError(f"refinement needs steps >= 0, lr > 0 and penalty >= 0, got {steps}, {lr}, {penalty}")
    if steps == 0:
        return code
    with torch.inference_mode(False), torch.enable_grad():
        start = {k: v.detach().clone() for k, v in _flatten(code).items()}
        scales = code_scale(start)
        coords, values, weights = padded_context(images.clone(), masks.clone())
        steps_u = {k: torch.zeros_like(v, requires_grad=True) for k, v in start.items()}
        best = {k: v.clone() for k, v in start.items()}
        best_objective = torch.full((coords.shape[0],), float("inf"), device=coords.device)
        optimizer = torch.optim.Adam(steps_u.values(), lr=lr)
        for step in range(steps + 1):
            current = {k: start[k] + scales[k] * u for k, u in steps_u.items()}
            fit = masked_mse(render(_rebuild(code, current), coords), values, weights)
            objective = fit + penalty * relative_distance(current, start)
            with torch.no_grad():
                better = objective < best_objective
                best_objective = torch.where(better, objective, best_objective)
                for k, v in current.items():
                    best[k] = torch.where(better.reshape(-1, *[1] * (v.dim() - 1)), v, best[k])
            if step == steps:
                break
            optimizer.zero_grad(set_to_none=True)
            objective.sum().backward()
            optimizer.step()
    return _rebuild(code, best)


def refine(prior: FunctionPrior, code: Any, images: Tensor, masks: Tensor, steps: int, lr: float = 1e-2,
           penalty: float = 1e-2, weights: bool = False) -> Any:
    """``refine_code`` with the prior's own ``render``, for every prior whose code is a tensor or a dict of tensors
    (all of hypersiren's).

    weights: refine the SIREN the code describes instead of the code itself, for priors that generate one
        (``prior.generate(code)``, e.g. the hypernetwork's predicted weights or shifts); the result is the refined
        generated SIREN, which the prior's ``render`` accepts like a code.
    """
    if weights:
        if not hasattr(prior, "generate"):
            raise InputError(f"the {prior.method} prior does not generate SIREN weights from its code; refine its code "
                             "(weights=False) instead")
        with torch.no_grad():
            code = prior.generate(code)
    return refine_code(prior.render, code, images, masks, steps, lr, penalty)
