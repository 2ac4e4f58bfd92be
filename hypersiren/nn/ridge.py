"""Closed-form fit of a linear output layer to the known points of each sample (ridge regression, batched).

With features H (P, d) shared by every sample (a basis evaluated on a grid of P points), the known points of
sample b (mask row b) and residuals r_b (P, C) of those points, the fit is

    dW_b = argmin_W  sum over known points p of |H_p W - r_bp|^2 + lambda_b |W|^2      (d, C)

the posterior mean of the weights under a Gaussian prior N(0, s^2 I) and observation noise lambda_b s^2
(Bayesian linear regression). It is differentiable in H, r and lambda. Each sample is solved in the cheaper of two
equivalent forms:

- dual, for n_b <= d/2 known points: dW = H_k^T (H_k H_k^T + lambda I)^-1 r_k, an n_b x n_b system;
- primal otherwise: dW = (H_k^T H_k + lambda I)^-1 H_k^T r_k, a d x d system whose Gram H_k^T H_k is summed over
  the known rows, or, when most points are known, as H^T H minus the sum over the unknown rows.
"""
from __future__ import annotations

import torch
from torch import Tensor

MIN_LAMBDA = 1e-3  # the smallest regularisation accepted: keeps every system positive definite in float32


def _rows(selected: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """Indices (B, count) of each row's True entries first (in order), and (B, count) bool: which are real."""
    order = torch.sort(selected.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :count]
    return order, selected.gather(1, order)


def _gather(features: Tensor, index: Tensor, valid: Tensor) -> Tensor:
    """Rows ``index`` (B, K) of shared ``features`` (P, d), zero where not ``valid``: (B, K, d)."""
    rows = features.index_select(0, index.flatten()).reshape(*index.shape, features.shape[-1])
    return rows.masked_fill_(~valid[..., None], 0.0)  # in place: no second (B, K, d) allocation


def _solve(matrix: Tensor, right: Tensor, lam: Tensor) -> Tensor:
    """(matrix + lam I)^-1 right for symmetric positive semi-definite matrices (B, m, m), right (B, m, C)."""
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    return torch.cholesky_solve(right, torch.linalg.cholesky(matrix + lam.reshape(-1, 1, 1) * eye))


def ridge_fit(features: Tensor, masks: Tensor, residuals: Tensor, lam: Tensor) -> Tensor:
    """dW (B, d, C) fitting ``residuals`` (B, P, C) at the known points ``masks`` (B, P) bool of ``features``
    (P, d) with regularisation ``lam`` (B,) (clamped to at least MIN_LAMBDA). Unknown points are never read."""
    points, dim = features.shape
    residuals = torch.where(masks[..., None], residuals, 0.0)
    lam = lam.clamp_min(MIN_LAMBDA)
    counts = masks.sum(dim=1)
    out = residuals.new_zeros(len(masks), dim, residuals.shape[-1])
    dual = counts <= dim // 2
    chosen = dual.nonzero().flatten()
    if len(chosen):
        index, valid = _rows(masks[chosen], max(int(counts[chosen].max()), 1))
        known = _gather(features, index, valid)
        right = residuals[chosen].gather(1, index[..., None].expand(-1, -1, residuals.shape[-1]))
        solved = _solve(known @ known.transpose(1, 2), right, lam[chosen])  # (n, C); H_k^T times it, as its transpose:
        out = out.index_put((chosen,), (solved.transpose(1, 2) @ known).transpose(1, 2))  # a few columns, read fast
    for mostly_known in (False, True):
        chosen = (~dual & ((2 * counts > points) == mostly_known)).nonzero().flatten()
        if not len(chosen):
            continue
        side = ~masks[chosen] if mostly_known else masks[chosen]
        index, valid = _rows(side, max(int(side.sum(dim=1).max()), 1))
        rows = _gather(features, index, valid)
        gram = rows.transpose(1, 2) @ rows
        if mostly_known:
            gram = features.T @ features - gram
        right = features.T @ residuals[chosen]
        out = out.index_put((chosen,), _solve(gram, right, lam[chosen]))
    return out
