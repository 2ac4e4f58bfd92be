"""Completions without a SIREN, to read a prior's numbers against: the conditional mean of a Gaussian over the
training faces' pixels (eigenfaces), and its mean face.

``PixelGaussian`` estimates the mean face mu and the covariance S of the training faces' pixels (P = R x R pixels;
the colour channels share one P x P covariance, estimated from every channel of every face, with their mirror
images, and shrunk towards its mean variance), and completes a face from its known pixels k by the posterior mean

    mu + S[:, k] (S[k, k] + noise I)^-1 (x_k - mu_k)

the best linear estimate of every pixel from the known ones under that covariance. It is tied to one resolution and
holds P^2 numbers (16.8M at 64x64), so it is a reference for evaluations, not a prior: no code, no rendering at
another resolution, and a cost per face that grows as the cube of its known pixels.
"""
from __future__ import annotations

import torch
from torch import Tensor

from hypersiren.errors import InputError

MAX_RESOLUTION = 64  # the covariance is (R^2)^2 float64 numbers: 128 MB at 64x64, 2 GB at 128x128


class PixelGaussian:
    """The Gaussian over the pixels of ``faces`` (N, 3, R, R) in [0, 1] (a tensor, or a data set that slices into
    uint8 or float tensors), with their mirror images when ``mirror``. noise: the observation noise of the known
    pixels and shrinkage: added to the covariance's diagonal, both as fractions of its mean variance (chosen on
    the dev split of the 800 CelebA faces: see the README)."""

    def __init__(self, faces, *, noise: float = 0.01, shrinkage: float = 0.01, mirror: bool = True,
                 chunk: int = 256):
        if len(faces) < 2:
            raise InputError(f"the pixel Gaussian needs at least 2 training faces, got {len(faces)}")
        resolution = faces[:1].shape[-1]
        if resolution > MAX_RESOLUTION:
            raise InputError(f"the pixel Gaussian holds a (R^2 x R^2) covariance: at most {MAX_RESOLUTION}x"
                             f"{MAX_RESOLUTION} faces, got {resolution}x{resolution}")
        total, outer, count = 0.0, 0.0, 0
        for start in range(0, len(faces), chunk):
            part = faces[start:start + chunk]
            part = part.double() / (1 if part.is_floating_point() else 255)
            for images in (part, part.flip(-1)) if mirror else (part,):
                pixels = images.flatten(2)  # (B, 3, P)
                total = total + pixels.sum(dim=0)
                rows = pixels.flatten(0, 1)  # (B * 3, P): every channel one sample of the shared covariance
                outer = outer + rows.T @ rows
                count += len(images)
        self.mean = total / count  # (3, P)
        covariance = (outer / count - self.mean.T @ self.mean) / 3  # each channel about its own mean, then pooled
        scale = covariance.diagonal().mean()
        self.covariance = covariance + shrinkage * scale * torch.eye(len(covariance), dtype=covariance.dtype)
        self.noise = noise * scale
        self.resolution = resolution

    def mean_face(self) -> Tensor:
        """(3, R, R) in [0, 1]: the training faces' mean."""
        return self.mean.float().reshape(3, self.resolution, self.resolution)

    def complete(self, images_unit: Tensor, masks: Tensor) -> Tensor:
        """Completions (B, 3, R, R) in [0, 1] of images (B, 3, R, R) in [0, 1] from their known pixels ``masks``
        (B, R, R) bool; faces that share a mask share one solve (a half, the full image)."""
        if images_unit.shape[1:] != (3, self.resolution, self.resolution) or masks.shape[1:] != images_unit.shape[2:]:
            raise InputError(f"the pixel Gaussian completes (B, 3, {self.resolution}, {self.resolution}) faces with "
                             f"(B, {self.resolution}, {self.resolution}) masks, got {tuple(images_unit.shape)} and "
                             f"{tuple(masks.shape)}")
        flat = masks.flatten(1).cpu()
        pixels = images_unit.flatten(2).cpu().double()
        out = self.mean.expand(len(pixels), -1, -1).clone()
        patterns, which = torch.unique(flat, dim=0, return_inverse=True)
        for pattern, known in enumerate(patterns):
            faces = (which == pattern).nonzero().flatten()
            if not known.any():
                continue
            gram = self.covariance[known][:, known]
            gram.diagonal().add_(self.noise)
            residuals = (pixels[faces][:, :, known] - self.mean[:, known]).flatten(0, 1).T  # (n, faces * 3)
            weights = torch.cholesky_solve(residuals, torch.linalg.cholesky(gram))
            out[faces] += (self.covariance[:, known] @ weights).T.reshape(len(faces), 3, -1)
        return out.reshape(images_unit.shape).to(images_unit.device, images_unit.dtype).clamp(0, 1)
