"""A hypernetwork over a learned SIREN basis: a set transformer reads the context and a closed-form Bayesian fit
under a Gaussian prior learned from the training faces turns it into the SIREN's output layer.

Every face is the SIREN ``f(x) = sin(w0 g(x)) W + b``: a shared, trained SIREN ``g`` whose last layer is one more
sine layer (the *basis*, d features), and a linear output layer (W, b) of the face's own ((d + 1) x 3 numbers,
written as one matrix on the features [basis, 1]). Given a context (the known pixels of a face):

1. how far to trust the known pixels is judged: the fit's observation noise is
   lambda = exp(a + c log(n / 100) + e s + t), for n known pixels whose *spread* is s
   (``hypersiren.data.context.context_spread``: ~0 for pixels scattered evenly, ~2 for a known half, negative
   when nearly every pixel is known), and t the judgement of a set transformer (``hypersiren.nn.set_transformer``)
   that reads the known (coordinate, colour) pairs, through a small head. The count alone cannot tell a region to
   extrapolate from (half a face known: lean on the prior) from as many pixels scattered over the face (follow
   them); the spread can, and the encoder, which also sees what the pixels show, can add to it. a, c and e are
   trained (and refitted by ``calibrate``, below);
2. the known pixels then fit (W, b) in closed form (``hypersiren.nn.ridge``, a differentiable solver layer as in
   R2-D2, Bertinetto et al. 2019): the posterior mean under the prior N(M, S) per colour channel, M and S the mean
   and covariance of the training faces' output layers, with that observation noise.

M and S are statistics, not weights (``hypersiren.priors.code_gaussian``): each training step fits every face of
the batch on the current basis from all of its pixels and moves the running mean and covariance of those fits
towards the batch's (``--code-momentum``); ``calibrate`` replaces them by exact ones on the final basis, and
refits lambda for them (below). S is
what carries the faces' structure into the fit (which pixels vary together, as eigenfaces do): with it, a few
known pixels move the whole face the way training faces move, where an isotropic prior would only move their
neighbourhood. (A second head predicting a correction to M learned nothing, and silenced its own noise by
flattening the encoder's latent, so that the encoder could not judge the context either; the design has no
such head.)

lambda's parameters and the head learn under the running statistics, which lag behind the basis; under the exact
ones the fit wants less noise (the dev split's 10-pixel PSNR gains 0.1 dB from it). So ``calibrate`` also refits
lambda = exp(a + c log(n / 100) + e s + beta t) for the calibrated statistics: a, c, e and beta (the weight of
the head's t, 1 in training) minimise the training loss on training contexts of some training faces, each face completed
under statistics computed without it and its mirror image (two folds), so that the fit sees the faces it will
be used on as new ones.

Training minimises the mean over faces of log(MSE) of the prediction at the target pixels, i.e. maximises
their mean PSNR, the protocol's metric. The code of a face is its output layer, (W, b) flattened: a vector of
(d + 1) x 3 numbers, and the renders are linear in it, so the latent density's sampled completions
(``hypersiren.generate``) are exact posterior draws and interpolation blends the two faces' pictures.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hypersiren.config import option, override, positive_float, positive_int, unit_fraction
from hypersiren.data.context import context_spread, training_masks
from hypersiren.data.grid import grid
from hypersiren.nn.ridge import ridge_fit
from hypersiren.nn.set_transformer import SetTransformer
from hypersiren.nn.siren import Siren
from hypersiren.priors.base import PRIORS, FunctionPrior, PriorConfig
from hypersiren.priors.code_gaussian import CodeGaussian
from hypersiren.priors.inner_loop import padded_context

CACHED_BASIS_BYTES = 96 << 20  # largest grid terms kept between calls (the features at 128 x 128: 32 MiB)
CACHED_GRIDS = 2  # grids kept per kind: the context's resolution and one rendering resolution
RIDGE_STEP = 30.0  # lambda's two parameters are stored divided by this, so Adam moves them 30x faster
LOG_MSE_FLOOR = 1e-5  # added to each face's MSE (network units) before the log: ~56 dB
FIT_JITTER = 1e-6  # regularisation of the whole-image fits the running statistics track, relative to the Gram's scale
TRUST_FACES = 64  # training faces whose contexts refit lambda for the calibrated statistics (two folds)
TRUST_ITERATIONS = 12  # L-BFGS iterations of that refit: 64 contexts, ~10 s at 32x32 on one CPU thread


def _autocast_off(method):
    """``method(self, images, ...)`` computed in float32 whatever autocast (``--amp``) is on: the closed-form fit
    factors Gram matrices (Cholesky), which bfloat16 products make indefinite, and the networks are small."""
    @functools.wraps(method)
    def in_float32(self, images: Tensor, *args):
        with torch.autocast(images.device.type, enabled=False):
            return method(self, images, *args)
    return in_float32


@PRIORS.register
class BasisPrior(FunctionPrior):
    """A set transformer judging the context, and the output layer of a shared SIREN basis fitted to it in closed
    form under a Gaussian prior learned from the training faces (see the module docstring)."""

    method = "basis"

    @dataclass(frozen=True, kw_only=True)
    class Config(PriorConfig):
        hidden_features: int = override(PriorConfig, "hidden_features", 128)
        hidden_layers: int = override(PriorConfig, "hidden_layers", 2)
        basis_features: int = option(768, "width d of the SIREN's last sine layer, which each face's output "
                                          "layer combines", check=positive_int)
        encoder_latent: int = option(128, "size of the set transformer's latent, which the head reads",
                                    check=positive_int)
        encoder_dim: int = option(128, "token width of the set transformer", check=positive_int)
        queries: int = option(8, "learned query tokens of the set transformer", check=positive_int)
        encoder_layers: int = option(1, "self-attention blocks of the set transformer", check=positive_int)
        ridge: float = option(0.01, "initial observation noise lambda of the closed-form fit (at 100 known pixels)",
                              check=positive_float)
        code_momentum: float = option(0.02, "weight of each training batch in the running mean and covariance of "
                                            "the faces' output layers, the closed-form fit's prior",
                                      check=unit_fraction)
        shrinkage: float = option(0.01, "added to the prior covariance's diagonal, as a fraction of its mean "
                                        "variance", check=positive_float)

    def __init__(self, config: Config | None = None, **options):
        super().__init__(config, **options)
        c = self.config
        self.siren = Siren(2, c.basis_features, c.hidden_features, c.hidden_layers, c.first_omega, c.hidden_omega)
        self.encoder = SetTransformer(c.encoder_latent, c.encoder_dim, c.queries, c.encoder_layers)
        self.head = nn.Sequential(nn.Linear(c.encoder_latent, 64), nn.GELU(), nn.Linear(64, 1))  # t / RIDGE_STEP
        nn.init.zeros_(self.head[-1].weight)  # every context starts at the noise its count gives
        nn.init.zeros_(self.head[-1].bias)
        self.ridge_parameters = nn.Parameter(torch.tensor([math.log(c.ridge), 0.0, 0.0]) / RIDGE_STEP)  # (a, c, e)
        self.code_prior = CodeGaussian(c.basis_features + 1, 3, c.code_momentum, c.shrinkage)  # N(M, S)
        self.register_buffer("calibrated_trust", torch.tensor([math.log(c.ridge), 0.0, 0.0, 1.0]))  # (a, c, e, beta)
        self._grids: dict[tuple, tuple[tuple, tuple[Tensor, ...]]] = {}  # (kind, R, device, dtype) -> (state, values)

    @property
    def latent_dim(self) -> int:
        return (self.config.basis_features + 1) * 3

    def basis(self, coords: Tensor) -> Tensor:
        """The basis at coords (..., 2): (..., d) values in [-1, 1]."""
        return torch.sin(self.config.hidden_omega * self.siren(coords))

    def features(self, coords: Tensor) -> Tensor:
        """[basis, 1] at coords (..., 2): (..., d + 1), what a face's output layer multiplies."""
        basis = self.basis(coords)
        return torch.cat([basis, basis.new_ones(*basis.shape[:-1], 1)], dim=-1)

    def _cached(self, kind: str, resolution: int, device: torch.device, dtype: torch.dtype,
                build) -> tuple[Tensor, ...]:
        """``build(coords)`` on the R x R grid. Every face shares it, so outside training (no gradient wanted) it is
        kept until the weights or statistics change, up to CACHED_BASIS_BYTES: completing or rendering a face at a
        resolution seen before costs no basis evaluation."""
        coords = grid(resolution, resolution, device=device).to(dtype)
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.siren.parameters()):
            return build(coords)
        key = (kind, resolution, device, dtype)
        tensors = (*self.siren.parameters(), *self.code_prior.buffers())
        state = (self.training, *((t.data_ptr(), t._version) for t in tensors))
        cached = self._grids.get(key)
        if cached is not None and cached[0] == state:
            return cached[1]
        values = build(coords)
        if sum(v.numel() * v.element_size() for v in values) <= CACHED_BASIS_BYTES:
            self._grids.pop(key, None)
            self._grids[key] = (state, values)
            while sum(k[0] == kind for k in self._grids) > CACHED_GRIDS:
                self._grids.pop(next(k for k in self._grids if k[0] == kind))
        return values

    def grid_features(self, resolution: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """[basis, 1] on the R x R pixel grid, (R*R, d + 1): a view of its transpose, which is kept between calls
        (``_cached``) and stored contiguously for ``_shared_matmul``."""
        return self._cached("features", resolution, device, dtype,
                            lambda coords: (self.features(coords).T.contiguous(),))[0].T

    def _prior_terms(self, features: Tensor, code_prior: CodeGaussian | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """What ``_posterior`` needs of features F (P, d + 1) under ``code_prior`` N(M, S) (default: the prior's):
        F M (P, 3), the prior's mean face, L^T stored contiguously (L its factor), and F L (P, d + 1), the features in
        which the prior is isotropic."""
        code_prior = self.code_prior if code_prior is None else code_prior
        factor = code_prior.factor().to(features.dtype)
        return features @ code_prior.statistics()[0].to(features.dtype), factor.T.contiguous(), features @ factor

    def trust(self) -> Tensor:
        """(a, c, e, beta) of lambda = exp(a + c log(n / 100) + e s + beta t): the trained a, c, e and beta = 1 while
        training or before ``calibrate``, the refitted ones (``calibrated_trust``) with the calibrated statistics."""
        return self.calibrated_trust if self.code_prior.calibrated else self._trained_trust()

    def _trained_trust(self) -> Tensor:
        return torch.cat([self.ridge_parameters * RIDGE_STEP, self.ridge_parameters.new_ones(1)])

    def ridge_lambda(self, terms: Tensor, log_factor: Tensor | float = 0.0, trust: Tensor | None = None) -> Tensor:
        """lambda (B,) of the closed-form fit for contexts described by ``terms`` (B, 2) (``context_terms``: log(n /
        100) and the spread s) given the head's judgement t = ``log_factor`` (B,) of each, with ``trust`` (a, c, e,
        beta) (default: ``trust()``)."""
        trust = self.trust() if trust is None else trust
        return torch.exp(trust[0] + terms.to(trust.dtype) @ trust[1:3] + trust[3] * log_factor)

    def log_noise_factor(self, images: Tensor, masks: Tensor) -> Tensor:
        """t (B,): the set transformer's judgement of each context of images (B, 3, R, R) with known pixels ``masks``
        (B, R, R): the log of the factor on the fit's observation noise (> 0: trust the context less, lean on the
        prior)."""
        return self.head(self.encoder(*padded_context(images, masks)))[:, 0] * RIDGE_STEP

    def context_scalars(self, images: Tensor, masks: Tensor) -> dict[str, Tensor]:
        return {"log_noise_factor": self.log_noise_factor(images, masks)}

    @_autocast_off
    def infer(self, images: Tensor, masks: Tensor) -> Tensor:
        """Codes (B, (d + 1) * 3) of images (B, 3, R, R) from their known pixels ``masks`` (B, R, R)."""
        terms = self._cached("prior", images.shape[-1], images.device, images.dtype,
                             lambda coords: self._prior_terms(self.features(coords)))
        return self._posterior(images, masks, *terms)

    def _posterior(self, images: Tensor, masks: Tensor, mean_face: Tensor, factor_t: Tensor,
                   whitened: Tensor) -> Tensor:
        """The posterior mean of the output layer given the known pixels: with (W, b) = M + L V and V ~ N(0, I),
        a ridge fit of V on the whitened features F L to the known pixels minus the mean face F M."""
        fitted = ridge_fit(whitened, masks.reshape(len(images), -1), images.flatten(2).transpose(1, 2) - mean_face,
                           self.ridge_lambda(context_terms(masks), self.log_noise_factor(images, masks)))
        return (self.code_prior.statistics()[0] + _shared_matmul(factor_t, fitted)).flatten(1)

    @staticmethod
    def _least_squares(features: Tensor) -> tuple[Tensor, Tensor]:
        """F^T (d + 1, P) and the Cholesky factor of F^T F (+ FIT_JITTER), float64, for features F (P, d + 1): what
        ``_whole_image_codes`` fits with."""
        features_t = features.double().T
        gram = features_t @ features_t.T
        gram.diagonal().add_(FIT_JITTER * gram.diagonal().mean())
        return features_t, torch.linalg.cholesky(gram)

    @staticmethod
    def _whole_image_codes(images: Tensor, least_squares: tuple[Tensor, Tensor]) -> Tensor:
        """Output layers (B, d + 1, 3) float64 fitting images (B, 3, R, R) at all their pixels by least squares
        (``least_squares``: ``_least_squares`` of the features on their grid)."""
        features_t, factor = least_squares
        return torch.cholesky_solve(features_t @ images.flatten(2).transpose(1, 2).double(), factor)

    @torch.no_grad()
    def track_codes(self, images: Tensor, features: Tensor) -> None:
        """Move the prior's running statistics towards those of ``images`` (B, 3, R, R) fitted on ``features``
        (R*R, d + 1)."""
        self.code_prior.track(self._whole_image_codes(images, self._least_squares(features)))

    @torch.no_grad()
    def calibrate(self, batches: Iterable[Tensor], mirror: bool = False) -> None:
        """Set the prior's mean and covariance used outside training (``CodeGaussian.calibrate``) to the statistics
        of the faces in ``batches`` (B, 3, R, R) in [-1, 1], all of one resolution, and with ``mirror`` their mirror
        images, fitted on the trained basis; then refit lambda for them (``calibrated_trust``, see the module
        docstring). The running statistics lag behind the basis, which moves while they average: like "precise"
        batch-norm statistics, this recomputes them once."""
        codes, mirrored, kept, least_squares = [], [], [], None
        for images in batches:
            if least_squares is None:  # the basis on the faces' grid and its Gram's factor: once for all batches
                least_squares = self._least_squares(self.grid_features(images.shape[-1], images.device, images.dtype))
            codes.append(self._whole_image_codes(images, least_squares).float())
            if mirror:
                mirrored.append(self._whole_image_codes(images.flip(-1), least_squares).float())
            kept.append(images[:max(TRUST_FACES - sum(map(len, kept)), 0)])
        if not codes:
            return
        codes, mirrored = torch.cat(codes), torch.cat(mirrored) if mirror else None
        self.code_prior.calibrate(codes if mirrored is None else torch.cat([codes, mirrored]))
        kept = torch.cat(kept)
        enough = len(kept) >= 4  # two folds of at least two faces, and at least two faces outside each
        self.calibrated_trust.copy_(self._fit_trust(kept, codes, mirrored) if enough else self._trained_trust())

    def _fit_trust(self, faces: Tensor, codes: Tensor, mirrored: Tensor | None) -> Tensor:
        """(a, c, e, beta) minimising the training loss of the closed-form fit on training contexts of ``faces`` (K, 3,
        R, R), the first K faces of ``codes`` (N, d + 1, 3) (their mirror images: ``mirrored``), each completed under
        the statistics of the faces of the other fold (even and odd positions) rather than its own."""
        generator = torch.Generator().manual_seed(0)  # the same contexts at every calibration: a deterministic fit
        masks = training_masks(len(faces), faces.shape[-1], generator).to(faces.device)
        judgement, terms = self.log_noise_factor(faces, masks), context_terms(masks)
        features = self.grid_features(faces.shape[-1], faces.device, faces.dtype)
        folds = []
        for fold in (0, 1):
            held = torch.zeros(len(codes), dtype=torch.bool, device=codes.device)
            held[fold:len(faces):2] = True
            others = codes[~held] if mirrored is None else torch.cat([codes[~held], mirrored[~held]])
            mean_face, _, whitened = self._prior_terms(features, self.code_prior.calibrated_on(others))
            chosen = held[:len(faces)]
            folds.append((mean_face, whitened, faces[chosen].flatten(2).transpose(1, 2), masks[chosen].flatten(1),
                          terms[chosen], judgement[chosen]))
        trust = self._trained_trust().detach().requires_grad_()

        def loss() -> Tensor:
            optimizer.zero_grad()
            total = sum(_log_mse(mean_face + whitened @ ridge_fit(whitened, known, values - mean_face,
                                                                  self.ridge_lambda(described, t, trust)),
                                 values).sum() for mean_face, whitened, values, known, described, t in folds)
            total = total / len(faces)
            total.backward()
            return total

        with torch.enable_grad():
            optimizer = torch.optim.LBFGS([trust], max_iter=TRUST_ITERATIONS, line_search_fn="strong_wolfe")
            optimizer.step(loss)
        return trust.detach()

    def render(self, code: Tensor, coords: Tensor) -> Tensor:
        """Values (B, N, 3) of the faces ``code`` (B, (d + 1) * 3) describes at coords (B, N, 2); coords shared by the
        batch (an expanded tensor) are evaluated once."""
        shared = coords.dim() == 3 and coords.stride(0) == 0
        if shared:
            return _shared_matmul(self.features(coords[0]).T.contiguous(), code.reshape(len(code), -1, 3))
        return self.features(coords) @ code.reshape(len(code), -1, 3)

    def render_grid(self, code: Tensor, resolution: int, max_points: int) -> Tensor:
        """Values (B, R*R, 3) on the R x R grid: the shared features (kept, ``grid_features``) times each face's output
        layer, in chunks of grid rows when the features are too large to keep."""
        if resolution * resolution * (self.config.basis_features + 1) * code.element_size() <= CACHED_BASIS_BYTES:
            features_t = self.grid_features(resolution, code.device, code.dtype).T
            return _shared_matmul(features_t, code.reshape(len(code), -1, 3))
        return super().render_grid(code, resolution, max_points)

    @_autocast_off
    def training_loss(self, images: Tensor, masks: Tensor, target_coords: Tensor,
                      target_values: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        features = self.features(grid(images.shape[-1], images.shape[-1], device=images.device).to(images.dtype))
        if self.training:
            self.track_codes(images, features.detach())
        codes = self._posterior(images, masks, *self._prior_terms(features))
        predictions = self.render(codes, target_coords)
        lambda_100 = self.ridge_lambda(images.new_zeros(1, 2))[0].detach()  # 100 pixels spread evenly
        return _log_mse(predictions, target_values).mean(), {"mse": (predictions - target_values).pow(2).mean().detach(),
                                                             "lambda_100": lambda_100}


def context_terms(masks: Tensor) -> Tensor:
    """(B, 2): log(n / 100) for n known pixels and the spread s (``hypersiren.data.context.context_spread``) of each
    context ``masks`` (B, R, R), the terms of lambda's exponent."""
    counts = masks.flatten(1).sum(dim=1).clamp_min(1).float()
    return torch.stack([torch.log(counts / 100), context_spread(masks)], dim=1)


def _log_mse(predictions: Tensor, targets: Tensor) -> Tensor:
    """log(MSE + LOG_MSE_FLOOR) per face (B,) of predictions (B, N, C) of targets (B, N, C): the training loss's
    terms, whose mean over faces is minus the mean PSNR up to constants."""
    return torch.log((predictions - targets).pow(2).flatten(1).mean(dim=1) + LOG_MSE_FLOOR)


def _shared_matmul(matrix_t: Tensor, batch: Tensor) -> Tensor:
    """A matrix (P, k), given as its transpose ``matrix_t`` (k, P) stored contiguously, times each of ``batch``
    (B, k, C): (B, P, C), as one matrix product. With few columns C this layout is ~5x faster on a CPU than the
    matrix times a (k, C) one, or a broadcast batched product (which reads the matrix once per sample)."""
    count, inner, columns = batch.shape
    product = batch.transpose(1, 2).reshape(count * columns, inner) @ matrix_t
    return product.reshape(count, columns, -1).transpose(1, 2)

