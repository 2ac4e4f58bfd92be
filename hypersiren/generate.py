"""Generative use of a prior whose codes are latent vectors (hypernetwork, functa): a density over the latents
of training faces, interpolation between two faces, and several plausible completions of one context.

Latent density: the latents of the training faces encoded from their full context (every pixel), fitted by a
Gaussian (``hypersiren.priors.density``), together with ``noise``, the root mean square error (network units,
[-1, 1]) of the prior's own full-context reconstructions of those faces: how well any latent can explain
pixels, used as the observation noise when completions are sampled.

Sampled completions ("randomise-then-optimise", exact for a decoder linear in z): with prior N(mu, T^2 Sigma),
Sigma = L L^T, each sample draws u0 ~ N(0, T^2 I) and perturbed context values y' = y + T * noise * e,
e ~ N(0, I), then minimises over the whitened latent u (z = mu + L u)

    sum over known pixels and channels (render(z) - y')^2 / (2 noise^2) + |u - u0|^2 / 2

with L-BFGS. For a linear decoder the minimisers are exact draws from the posterior p(z | context) of the
tempered model (posterior covariance scaled by T^2, posterior mean unchanged); for a SIREN decoder they are
its usual approximation. T = 0 gives the maximum a posteriori completion for every sample.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from hypersiren.errors import InputError
from hypersiren.priors.base import FunctionPrior
from hypersiren.priors.density import GaussianDensity
from hypersiren.priors.inner_loop import padded_context

DENSITY_FACES = 10000  # at most this many training faces are encoded to fit the latent density


@dataclass
class LatentDensity:
    """A Gaussian over full-context latents plus the reconstruction noise of the prior (see the module docstring)."""

    gaussian: GaussianDensity
    noise: float  # rms error per value, network units in [-1, 1]
    faces: int  # how many faces it was fitted on

    def state(self) -> dict:
        """Checkpoint entry (tensors and JSON scalars) that ``from_state`` reads back."""
        return {**self.gaussian.state(), "noise": float(self.noise), "faces": int(self.faces)}

    @classmethod
    def from_state(cls, state: dict) -> "LatentDensity":
        return cls(GaussianDensity.from_state(state), float(state["noise"]), int(state["faces"]))

    def to(self, device: torch.device | str) -> "LatentDensity":
        return LatentDensity(self.gaussian.to(device), self.noise, self.faces)


def require_latent(prior: FunctionPrior) -> int:
    """The prior's latent size; InputError if its codes are not vectors (MAML/Reptile's SIREN weights)."""
    if prior.latent_dim is None:
        raise InputError(f"the {prior.method!r} prior has no vector latent (its codes are per-image SIREN weights); "
                         "sampling, interpolation and sampled completions need a latent prior: hypernet or functa")
    return int(prior.latent_dim)


def _faces_as_unit(faces: Tensor) -> Tensor:
    if faces.dim() != 4 or faces.shape[1] != 3 or len(faces) == 0:
        raise InputError(f"faces must be a non-empty (N, 3, R, R) tensor, got shape {tuple(faces.shape)}")
    return faces.float() / 255 if faces.dtype == torch.uint8 else faces.float()


@torch.no_grad()
def encode_faces(prior: FunctionPrior, faces: Tensor, batch_size: int = 100) -> tuple[Tensor, Tensor]:
    """Latents (N, D) of faces (N, 3, R, R) in [0, 1] (or uint8) from every pixel, and the mean squared error
    (N,) of their renders, network units. ``faces``: a tensor on any device or a data set that slices into
    tensors (``hypersiren.data.faces.FaceImages``); ``batch_size`` faces at a time run on the prior's device."""
    require_latent(prior)
    latents, errors = [], []
    for images in face_batches(prior, faces, batch_size):
        batch, _, height, width = images.shape
        masks = torch.ones(batch, height, width, dtype=torch.bool, device=images.device)
        latent = prior.infer(images, masks)
        coords, values, _ = padded_context(images, masks)
        errors.append((prior.render(latent, coords) - values).square().flatten(1).mean(dim=1))
        latents.append(latent)
    return torch.cat(latents), torch.cat(errors)


def face_batches(prior: FunctionPrior, faces: Tensor, batch_size: int) -> Iterator[Tensor]:
    """Faces (N, 3, R, R) in [0, 1] or uint8 (a tensor or a data set that slices into tensors), ``batch_size`` at a
    time, in [-1, 1] on the prior's device."""
    device = next(prior.parameters()).device
    for start in range(0, len(faces), batch_size):
        yield _faces_as_unit(faces[start:start + batch_size].to(device)) * 2 - 1


def training_subset(faces: Tensor, max_faces: int = DENSITY_FACES) -> Tensor:
    """At most ``max_faces`` of ``faces``: all of them, or a fixed random subset (torch's global RNG untouched)."""
    if len(faces) > max_faces:
        faces = faces[torch.randperm(len(faces), generator=torch.Generator().manual_seed(0))[:max_faces]]
    return faces


def fit_latent_density(prior: FunctionPrior, faces: Tensor, batch_size: int = 100,
                       max_faces: int = DENSITY_FACES) -> LatentDensity:
    """Encode (at most ``max_faces``, a fixed random subset of) faces (N, 3, R, R) (as ``encode_faces`` takes them)
    from their full context and fit the latent density. Does not touch torch's global RNG."""
    latents, errors = encode_faces(prior, training_subset(faces, max_faces), batch_size)
    return LatentDensity(GaussianDensity.fit(latents), float(errors.mean().sqrt()), len(latents))


def interpolate_latents(start: Tensor, end: Tensor, steps: int) -> Tensor:
    """``steps`` >= 2 latents (steps, D) evenly spaced on the segment from ``start`` (D,) to ``end`` (D,); the first
    is exactly ``start`` and the last exactly ``end``."""
    if steps < 2:
        raise InputError(f"an interpolation needs at least 2 steps (its two ends), got {steps}")
    t = torch.linspace(0, 1, steps, device=start.device, dtype=start.dtype)[:, None]
    return (1 - t) * start + t * end


def sample_completions(prior: FunctionPrior, density: LatentDensity, images: Tensor, masks: Tensor, num: int, *,
                       temperature: float = 1.0, noise: float | None = None, steps: int = 100,
                       generator: torch.Generator | None = None) -> Tensor:
    """``num`` latents per image drawn given its context (see the module docstring): (B, num, D).

    images (B, 3, R, R) in [-1, 1]; masks (B, R, R) bool, True = known (only known pixels are read);
    noise: observation noise (default: ``density.noise``); steps: L-BFGS iterations; generator: the draws'
    randomness (CPU generator or one on the images' device).
    """
    require_latent(prior)
    if num < 1 or not temperature >= 0 or steps < 0:
        raise InputError(f"sampled completions need num >= 1, temperature >= 0 and steps >= 0, got num={num}, "
                         f"temperature={temperature}, steps={steps}")
    noise = density.noise if noise is None else noise
    if not noise > 0:
        raise InputError(f"the observation noise must be positive, got {noise}")
    gaussian = density.gaussian.to(images.device)
    if gaussian.dim != prior.latent_dim:
        raise InputError(f"the latent density is over {gaussian.dim} dimensions but the prior's latent has "
                         f"{prior.latent_dim}")
    with torch.inference_mode(False), torch.enable_grad():  # inference-mode inputs cannot enter autograd
        context = padded_context(images.clone(), masks.clone())
        coords, values, weights = (t.repeat_interleave(num, dim=0) for t in context)
        draw_device = generator.device if generator is not None else torch.device("cpu")
        u0 = torch.randn(len(coords), gaussian.dim, generator=generator, device=draw_device).to(images.device)
        u0 = temperature * u0
        jitter = torch.randn(values.shape, generator=generator, device=draw_device).to(images.device)
        targets = values + temperature * noise * jitter
        u = u0.clone().requires_grad_(True)

        def closure() -> Tensor:
            residual = prior.render(gaussian.color(u), coords) - targets
            data = (residual.square().sum(dim=-1) * weights).sum(dim=-1) / (2 * noise**2)
            loss = (data + 0.5 * (u - u0).square().sum(dim=-1)).sum()
            (u.grad,) = torch.autograd.grad(loss, [u])  # not .backward(): the prior's parameters get no gradients
            return loss.detach()

        if steps:
            torch.optim.LBFGS([u], lr=1, max_iter=steps, history_size=20, line_search_fn="strong_wolfe",
                              tolerance_grad=1e-9, tolerance_change=1e-12).step(closure)
    return gaussian.color(u.detach()).reshape(len(images), num, -1)
