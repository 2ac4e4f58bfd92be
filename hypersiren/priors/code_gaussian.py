"""The Gaussian prior N(M, S) of a face's code, estimated from training faces' codes rather than learned.

A code here is a (d, C) matrix (the output layer of a SIREN basis: d features, C colour channels); the channels
share one covariance S (d, d), estimated from the codes' d-vectors of every channel pooled. Like batch
normalisation, two estimates are kept: running averages of each training batch's statistics (``track``), used
while training, and the exact statistics of many faces (``calibrate``), used outside training once set, the
covariance shrunk towards a multiple of the identity by Ledoit-Wolf (strongly when the faces are few for d
dimensions, hardly when they are many).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from hypersiren.priors.density import ledoit_wolf
from hypersiren.runtime import rank_average


class CodeGaussian(nn.Module):
    """N(M, S) over (dim, channels) codes. momentum: weight of each batch in the running statistics; shrinkage:
    added to the covariance's diagonal before factoring, as a fraction of its mean variance."""

    def __init__(self, dim: int, channels: int, momentum: float, shrinkage: float):
        super().__init__()
        self.momentum, self.shrinkage = momentum, shrinkage
        self.register_buffer("running_mean", torch.zeros(dim, channels))
        self.register_buffer("running_covariance", torch.eye(dim))
        self.register_buffer("calibrated_mean", torch.zeros(dim, channels))
        self.register_buffer("calibrated_covariance", torch.eye(dim))
        self.register_buffer("calibrated_count", torch.zeros((), dtype=torch.long))  # codes calibrated on

    @property
    def calibrated(self) -> bool:
        """Whether ``statistics`` are the calibrated ones: outside training, once calibrated."""
        return not self.training and bool(self.calibrated_count > 0)

    def statistics(self) -> tuple[Tensor, Tensor]:
        """M (dim, channels) and S (dim, dim): the running ones while training, the calibrated ones outside it when
        there are."""
        if self.calibrated:
            return self.calibrated_mean, self.calibrated_covariance
        return self.running_mean, self.running_covariance

    def factor(self) -> Tensor:
        """L (dim, dim), the Cholesky factor of S plus the shrinkage: codes are M + L V with V ~ N(0, I)."""
        covariance = self.statistics()[1]
        ridge = self.shrinkage * covariance.diagonal().mean()
        eye = torch.eye(len(covariance), dtype=covariance.dtype, device=covariance.device)
        return torch.linalg.cholesky(covariance + ridge * eye)

    @torch.no_grad()
    def track(self, codes: Tensor) -> None:
        """Move the running statistics towards those of a batch of ``codes`` (B, dim, channels). Under
        torch.distributed the batch statistics are averaged over the ranks, so every rank keeps the same ones."""
        codes = codes.double()
        self.running_mean.lerp_(rank_average(codes.mean(dim=0)).to(self.running_mean.dtype), self.momentum)
        centred = (codes - self.running_mean.double()).transpose(1, 2).flatten(0, 1)  # (B * channels, dim)
        second = rank_average(centred.T @ centred / len(centred))
        self.running_covariance.lerp_(second.to(self.running_covariance.dtype), self.momentum)

    def calibrated_on(self, codes: Tensor) -> CodeGaussian:
        """A new CodeGaussian of the same shape and shrinkage, in eval mode, calibrated on ``codes`` (N, dim,
        channels): the prior other faces would give."""
        other = CodeGaussian(*self.running_mean.shape, self.momentum, self.shrinkage).to(codes.device).eval()
        other.calibrate(codes)
        return other

    @torch.no_grad()
    def calibrate(self, codes: Tensor) -> None:
        """Set the calibrated statistics to those of ``codes`` (N, dim, channels), the covariance shrunk by
        Ledoit-Wolf."""
        codes = codes.float()
        mean = codes.double().mean(dim=0)
        centred = (codes - mean.float()).transpose(1, 2).flatten(0, 1)  # (N * channels, dim): channels pooled
        self.calibrated_mean.copy_(mean)
        self.calibrated_covariance.copy_(ledoit_wolf(centred)[1])
        self.calibrated_count.fill_(len(codes))
