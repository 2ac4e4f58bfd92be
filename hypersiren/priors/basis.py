"""A set-transformer hypernetwork over a learned SIREN basis, fitted to the context in closed form.

Every face is the SIREN ``f(x) = sin(w0 g(x)) W + b``: a shared, trained SIREN ``g`` whose last layer is one more
sine layer (the *basis*, d features), and a linear output layer (W, b) of the face's own (d x 3 and 3 numbers).
Given a context (the known pixels of a face):

1. a set transformer (``hypersiren.nn.set_transformer``) reads the known (coordinate, colour) pairs and a
   hypernetwork head turns its latent into the face's prior output layer (W0, b): the prior mean of W;
2. the known pixels then fit W in closed form (``hypersiren.nn.ridge``): the posterior mean of W under the prior
   N(W0, s^2 I) with noise lambda s^2 (Bayesian linear regression), lambda = exp(a + c log(n / 100)) for n
   known pixels, a and c trained.

With few known pixels the face is mostly the hypernetwork's prediction; with many it fits them (to the basis's
resolution). Training minimises the mean over faces of log(MSE) of the prediction at the target pixels, i.e.
maximises their mean PSNR, the protocol's metric. The code of a face is its output layer, (W, b) flattened:
a vector of (d + 1) x 3 numbers, and the renders are linear in it, so the latent density's sampled completions
(``hypersiren.generate``) are exact posterior draws and interpolation blends the two faces' pictures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hypersiren.config import option, override, positive_float, positive_int
from hypersiren.data.grid import grid
from hypersiren.nn.ridge import ridge_fit
from hypersiren.nn.set_transformer import SetTransformer
from hypersiren.nn.siren import Siren
from hypersiren.priors.base import PRIORS, FunctionPrior, PriorConfig
from hypersiren.priors.inner_loop import padded_context

CACHED_BASIS_BYTES = 64 << 20  # largest basis-on-a-grid kept between calls (512 features at 128 x 128: 32 MiB)
CACHED_GRIDS = 2  # grids kept: the context's resolution and one rendering resolution
RIDGE_STEP = 30.0  # lambda's two parameters are stored divided by this, so Adam moves them 30x faster
LOG_MSE_FLOOR = 1e-5  # added to each face's MSE (network units) before the log: ~56 dB


@PRIORS.register
class BasisPrior(FunctionPrior):
    """Set transformer + hypernetwork predicting the output layer of a shared SIREN basis, then fitted to the
    context in closed form (see the module docstring)."""

    method = "basis"

    @dataclass(frozen=True, kw_only=True)
    class Config(PriorConfig):
        hidden_features: int = override(PriorConfig, "hidden_features", 128)
        hidden_layers: int = override(PriorConfig, "hidden_layers", 2)
        basis_features: int = option(512, "width d of the SIREN's last sine layer, which each face's output "
                                          "layer combines", check=positive_int)
        encoder_latent: int = option(256, "size of the set transformer's latent, which the hypernetwork head reads",
                                    check=positive_int)
        encoder_dim: int = option(128, "token width of the set transformer", check=positive_int)
        queries: int = option(16, "learned query tokens of the set transformer", check=positive_int)
        encoder_layers: int = option(2, "self-attention blocks of the set transformer", check=positive_int)
        ridge: float = option(1.0, "initial lambda of the closed-form fit (at 100 known pixels)",
                              check=positive_float)

    def __init__(self, config: Config | None = None, **options):
        super().__init__(config, **options)
        c = self.config
        self.siren = Siren(2, c.basis_features, c.hidden_features, c.hidden_layers, c.first_omega, c.hidden_omega)
        self.encoder = SetTransformer(c.encoder_latent, c.encoder_dim, c.queries, c.encoder_layers)
        self.output = nn.Linear(c.basis_features, 3)
        self.head = nn.Sequential(nn.Linear(c.encoder_latent, 256), nn.GELU(), nn.Linear(256, (c.basis_features + 1) * 3))
        nn.init.zeros_(self.head[-1].weight)  # every face starts at the shared output layer
        nn.init.zeros_(self.head[-1].bias)
        self.ridge_parameters = nn.Parameter(torch.tensor([math.log(c.ridge), 0.0]) / RIDGE_STEP)
        self._grid_bases: dict[tuple, tuple[tuple, Tensor]] = {}  # (R, device, dtype) -> (weights' identity, basis)

    @property
    def latent_dim(self) -> int:
        return (self.config.basis_features + 1) * 3

    def basis(self, coords: Tensor) -> Tensor:
        """The basis at coords (..., 2): (..., d) values in [-1, 1]."""
        return torch.sin(self.config.hidden_omega * self.siren(coords))

    def grid_basis(self, resolution: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The basis on the R x R pixel grid, (R*R, d). Every face shares it, so outside training (no gradient
        wanted) it is kept until the weights change, up to CACHED_BASIS_BYTES: rendering a face at a resolution seen
        before is one matrix product."""
        coords = grid(resolution, resolution, device=device).to(dtype)
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.siren.parameters()):
            return self.basis(coords)
        key, weights = (resolution, device, dtype), tuple((p.data_ptr(), p._version) for p in self.siren.parameters())
        cached = self._grid_bases.get(key)
        if cached is not None and cached[0] == weights:
            return cached[1]
        basis = self.basis(coords)
        if basis.numel() * basis.element_size() <= CACHED_BASIS_BYTES:
            self._grid_bases.pop(key, None)
            self._grid_bases[key] = (weights, basis)
            while len(self._grid_bases) > CACHED_GRIDS:
                self._grid_bases.pop(next(iter(self._grid_bases)))
        return basis

    def ridge_lambda(self, counts: Tensor) -> Tensor:
        """lambda (B,) of the closed-form fit for contexts of ``counts`` (B,) known pixels."""
        log_lambda, slope = self.ridge_parameters * RIDGE_STEP
        return torch.exp(log_lambda + slope * torch.log(counts.clamp_min(1) / 100))

    def infer(self, images: Tensor, masks: Tensor) -> Tensor:
        """Codes (B, (d + 1) * 3) of images (B, 3, R, R) from their known pixels ``masks`` (B, R, R)."""
        batch, resolution = len(images), images.shape[-1]
        latent = self.encoder(*padded_context(images, masks))
        prior = self.head(latent).reshape(batch, -1, 3)
        weight = self.output.weight.T + prior[:, :-1]
        bias = self.output.bias + prior[:, -1]
        basis = self.grid_basis(resolution, images.device, images.dtype)  # (P, d)
        known = masks.reshape(batch, -1)
        residuals = images.flatten(2).transpose(1, 2) - (basis @ weight + bias[:, None])
        weight = weight + ridge_fit(basis, known, residuals, self.ridge_lambda(known.sum(dim=1)))
        return torch.cat([weight, bias[:, None]], dim=1).flatten(1)

    def render(self, code: Tensor, coords: Tensor) -> Tensor:
        """Values (B, N, 3) of the faces ``code`` (B, (d + 1) * 3) describes at coords (B, N, 2); coords shared by the
        batch (an expanded tensor) are evaluated once."""
        layer = code.reshape(len(code), -1, 3)
        shared = coords.dim() == 3 and coords.stride(0) == 0
        basis = self.basis(coords[0] if shared else coords)
        return basis @ layer[:, :-1] + layer[:, -1:]

    def render_grid(self, code: Tensor, resolution: int, max_points: int) -> Tensor:
        """Values (B, R*R, 3) on the R x R grid: the shared basis (cached, ``grid_basis``) times each face's output
        layer, in chunks of grid rows when the basis is too large to keep."""
        layer = code.reshape(len(code), -1, 3)
        if resolution * resolution * self.config.basis_features * code.element_size() <= CACHED_BASIS_BYTES:
            return self.grid_basis(resolution, code.device, code.dtype) @ layer[:, :-1] + layer[:, -1:]
        return super().render_grid(code, resolution, max_points)

    def training_loss(self, images: Tensor, masks: Tensor, target_coords: Tensor,
                      target_values: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        errors = (self.render(self.infer(images, masks), target_coords) - target_values).pow(2).flatten(1).mean(dim=1)
        loss = torch.log(errors + LOG_MSE_FLOOR).mean()
        return loss, {"mse": errors.mean().detach(), "lambda_100": self.ridge_lambda(images.new_tensor([100.0]))[0].detach()}
