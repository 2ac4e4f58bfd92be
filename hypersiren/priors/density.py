"""A full-covariance Gaussian density over latent vectors, for sampling new faces from a prior's latent space.

Fitted by maximum likelihood with Ledoit-Wolf shrinkage (Ledoit & Wolf 2004): the covariance is
``(1 - s) * S + s * (tr(S) / D) * I`` with S the sample covariance (divided by N) of N latents of size D and
the shrinkage s in [0, 1] that minimises the expected Frobenius error, estimated from the samples. With many
samples s -> 0 (S itself); with few (N < D, where S is singular) s grows and keeps the covariance well
conditioned. Stored as its mean (D,) and lower Cholesky factor L (D, D), covariance = L L^T.
``ledoit_wolf`` equals scikit-learn's ``LedoitWolf`` (tested to 1e-12); it stays here, in torch on the latents'
device, rather than costing a scikit-learn dependency for twenty lines.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from hypersiren.errors import InputError


def ledoit_wolf(samples: Tensor) -> tuple[Tensor, Tensor, float]:
    """(mean (D,), shrunk covariance (D, D), shrinkage s) of samples (N, D), N >= 2, computed in float64."""
    x = samples.double()
    mean = x.mean(dim=0)
    centred = x - mean
    n, d = centred.shape
    sample_cov = centred.T @ centred / n
    scale = sample_cov.trace() / d
    target = scale * torch.eye(d, dtype=x.dtype, device=x.device)
    distance = (sample_cov - target).square().sum()  # ||S - mu I||_F^2
    # (1 / N^2) sum_k ||x_k x_k^T - S||_F^2 = (1 / N^2) sum_k (|x_k|^4 - 2 x_k^T S x_k) + ||S||_F^2 / N
    norms = centred.square().sum(dim=1)
    quadratic = ((centred @ sample_cov) * centred).sum(dim=1)
    spread = ((norms.square() - 2 * quadratic).sum() / n**2 + sample_cov.square().sum() / n).clamp_min(0)
    shrinkage = 1.0 if distance <= 0 else float(torch.clamp(spread / distance, 0.0, 1.0))
    return mean, (1 - shrinkage) * sample_cov + shrinkage * target, shrinkage


def _cholesky(covariance: Tensor) -> Tensor:
    """Lower Cholesky factor, adding the smallest jitter (relative to the mean variance) that makes it succeed."""
    d = covariance.shape[0]
    level = max(float(covariance.trace()) / d, 1e-12)
    eye = torch.eye(d, dtype=covariance.dtype, device=covariance.device)
    for jitter in (0.0, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2):
        factor, info = torch.linalg.cholesky_ex(covariance + jitter * level * eye)
        if int(info) == 0:
            return factor
    raise InputError("the latents' covariance is not positive definite even with jitter (are they NaN?)")


class GaussianDensity:
    """N(mean, L L^T) over vectors of size D; every method takes and returns (B, D) batches."""

    def __init__(self, mean: Tensor, scale_tril: Tensor, shrinkage: float = 0.0):
        if mean.dim() != 1 or scale_tril.shape != (mean.shape[0], mean.shape[0]):
            raise InputError(f"a Gaussian needs a mean (D,) and a Cholesky factor (D, D), got shapes "
                             f"{tuple(mean.shape)} and {tuple(scale_tril.shape)}")
        finite = bool(torch.isfinite(mean).all() and torch.isfinite(scale_tril).all())
        if not finite or bool((scale_tril.diagonal() <= 0).any()):
            raise InputError("a Gaussian needs a finite mean and a lower Cholesky factor with a positive diagonal")
        self.mean, self.scale_tril, self.shrinkage = mean.float(), scale_tril.float().tril(), float(shrinkage)

    @classmethod
    def fit(cls, samples: Tensor) -> "GaussianDensity":
        """Ledoit-Wolf fit (see the module docstring) on samples (N, D), N >= 2."""
        if samples.dim() != 2 or samples.shape[0] < 2:
            raise InputError(f"fitting a Gaussian needs at least 2 samples (N, D), got shape {tuple(samples.shape)}")
        if not torch.isfinite(samples).all():
            raise InputError("cannot fit a Gaussian to latents containing NaN or Inf")
        mean, covariance, shrinkage = ledoit_wolf(samples)
        return cls(mean, _cholesky(covariance), shrinkage)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @property
    def covariance(self) -> Tensor:
        return self.scale_tril @ self.scale_tril.T

    def to(self, device: torch.device | str) -> "GaussianDensity":
        return GaussianDensity(self.mean.to(device), self.scale_tril.to(device), self.shrinkage)

    def whiten(self, z: Tensor) -> Tensor:
        """u = L^-1 (z - mean): standard-normal coordinates of z (B, D)."""
        return torch.linalg.solve_triangular(self.scale_tril, (z - self.mean).T, upper=False).T

    def color(self, u: Tensor) -> Tensor:
        """z = mean + L u: the inverse of ``whiten``."""
        return self.mean + u @ self.scale_tril.T

    def log_prob(self, z: Tensor) -> Tensor:
        """Log density (B,) of z (B, D)."""
        u = self.whiten(z)
        log_det = self.scale_tril.diagonal().log().sum()
        return -0.5 * u.square().sum(dim=-1) - log_det - 0.5 * self.dim * math.log(2 * math.pi)

    def sample(self, num: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> Tensor:
        """num draws (num, D) from N(mean, temperature^2 L L^T)."""
        if num < 1 or not temperature >= 0:
            raise InputError(f"sampling needs num >= 1 and temperature >= 0, got num={num}, temperature={temperature}")
        device = generator.device if generator is not None else torch.device("cpu")
        u = torch.randn(num, self.dim, generator=generator, device=device).to(self.mean.device)
        return self.color(temperature * u)

    def state(self) -> dict[str, Tensor]:
        """Tensors that ``from_state`` rebuilds it from (for checkpoints)."""
        return {"mean": self.mean, "scale_tril": self.scale_tril, "shrinkage": torch.tensor(self.shrinkage)}

    @classmethod
    def from_state(cls, state: dict[str, Tensor]) -> "GaussianDensity":
        return cls(state["mean"], state["scale_tril"], float(state["shrinkage"]))
