"""``HyperSiren``: complete faces from a few pixels with a trained prior (any ``prior/<method>`` checkpoint).

    prior = HyperSiren.load("runs/prior/checkpoint.safetensors")
    completed = prior.complete(image, num_pixels=100)      # same kind as ``image``
    completed = prior.complete(image, mask="half")         # top half known
    latent = prior.encode(image, mask=mask)                # codes; prior.render(latent, 256) at any resolution
    faces = prior.sample(16, resolution=64)                # new faces (hypernet/functa; hypersiren.generate)
    strip = prior.interpolate(image_a, image_b, steps=8)   # along the latent segment between two faces
    several = prior.complete_samples(image, num_pixels=100, num=8)  # plausible completions given the context

Input kinds: a PIL image, a numpy array (H, W), (H, W, C) or (B, H, W, C), a torch tensor (H, W), (C, H, W) or
(B, C, H, W), or a list of those; uint8 (0..255) or float (0..1). Conversions (documented, never silent
errors): grayscale is repeated to RGB, an alpha channel is dropped, a non-square image is centre-cropped to a
square (with a warning). The result has the input's kind, dtype and batch form, always 3 channels (a PIL
result is RGB), at ``resolution`` (default: the cropped input's side).
Contexts: ``num_pixels`` random known pixels at the prior's training resolution (as in the paper), or
``mask``: "half"/"top"/"bottom"/"left"/"right"/"full", a pixel count, a mask picture path, or a boolean array
(True = known) of the training resolution or of the (cropped) input's size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hypersiren.checkpoint import load_checkpoint
from hypersiren.data.image import ImageKind, from_unit, read_images, resize, restore_images
from hypersiren.errors import InputError
from hypersiren.priors import FunctionPrior, inference


class HyperSiren:
    """A trained prior over face SIRENs, ready to complete, encode and render (see the module docstring)."""

    def __init__(self, prior: FunctionPrior, resolution: int, meta: dict | None = None, density=None):
        """density: the ``hypersiren.generate.LatentDensity`` of the training faces' latents (for sampling), or None."""
        self.prior = prior.eval()
        self.resolution = int(resolution)
        self.meta = meta or {}
        self.density = density
        self.device = next(prior.parameters()).device

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "HyperSiren":
        """Load any ``prior/<method>`` checkpoint; CheckpointError for a missing, corrupt or non-prior file."""
        from hypersiren.tasks.face_prior import restore_prior

        state, meta = load_checkpoint(path, kind="prior/")
        prior, resolution, density = restore_prior(path, state, meta)
        density = density.to(device) if density is not None else None
        return cls(prior.to(device), resolution, meta, density)

    def context(self, image: Any, mask: Any = None, num_pixels: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, ImageKind]:
        """Read ``image`` and the context asked for: (full-size images (B, 3, S, S) in [0, 1], images at the
        prior's resolution (B, 3, R, R), context masks (B, R, R), input kind). A mask (array or picture) of the
        uncropped image's size is centre-cropped like the image; a mask picture of neither the image's nor the
        prior's size is resized to the prior's (nearest neighbour)."""
        from hypersiren.data.context import mask_from_spec, read_mask_picture
        from hypersiren.data.face_cache import square_crop

        if (mask is None) == (num_pixels is None):
            raise InputError("give exactly one context: mask=... (e.g. 'half' or a boolean array) or num_pixels=N")
        full, kind = read_images(image)
        batch, side, res = full.shape[0], full.shape[-1], self.resolution
        generator = torch.Generator().manual_seed(seed)
        spec = num_pixels if mask is None else mask
        if isinstance(spec, (str, Path)) and Path(spec).is_file():
            picture = read_mask_picture(spec)
            spec = picture if tuple(picture.shape) in (kind.shape, (side, side), (res, res)) else spec
        array_mask = isinstance(spec, (np.ndarray, Tensor))
        if array_mask and tuple(spec.shape[-2:]) == kind.shape != (side, side):
            spec = square_crop(torch.as_tensor(spec))
        if array_mask and tuple(spec.shape[-2:]) == (side, side) and side != res:
            masks = mask_from_spec(spec, batch, side, generator)
            small, masks = downsample_context(full, masks, res)
        else:
            if array_mask and tuple(spec.shape[-2:]) != (res, res):
                raise InputError(f"mask has shape {tuple(spec.shape)}; expected the image's {side}x{side} or the "
                                 f"prior's {res}x{res} pixels")
            masks = mask_from_spec(spec, batch, res, generator)
            small = resize(full, res, res)
        if not masks.flatten(1).any(dim=1).all():
            raise InputError("the context has no known pixel; expected at least one known pixel per image")
        return full, small.to(self.device), masks.to(self.device), kind

    def encode(self, image: Any, mask: Any = None, num_pixels: int | None = None, *, seed: int = 0,
               refine_steps: int = 0) -> Any:
        """The prior's code for each image's context: latents (B, latent_dim) for hypernet/functa, per-sample
        SIREN parameters for MAML/Reptile. ``refine_steps`` > 0 refines it on the context (test-time)."""
        _, small, masks, _ = self.context(image, mask, num_pixels, seed)
        return inference.encode(self.prior, small, masks, refine_steps)

    def render(self, code: Any, resolution: int | None = None) -> Tensor:
        """Images (B, 3, r, r) in [0, 1] that ``code`` describes, at any resolution r (default: training's)."""
        return inference.render(self.prior, code, resolution or self.resolution)

    def complete(self, image: Any, mask: Any = None, num_pixels: int | None = None, resolution: int | None = None,
                 *, seed: int = 0, refine_steps: int = 0):
        """The completed image(s) in the input's kind, at ``resolution`` (default: the cropped input's side)."""
        full, small, masks, kind = self.context(image, mask, num_pixels, seed)
        return restore_images(inference.complete(self.prior, small, masks, resolution or full.shape[-1], refine_steps), kind)

    def side_by_side(self, image: Any, mask: Any = None, num_pixels: int | None = None, resolution: int | None = None,
                     *, seed: int = 0, refine_steps: int = 0) -> Tensor:
        """One picture (3, H, W) in [0, 1]: rows of context | completion | ground truth at ``resolution``."""
        from hypersiren.viz import context_rows

        full, small, masks, _ = self.context(image, mask, num_pixels, seed)
        size = resolution or full.shape[-1]
        completed = inference.complete(self.prior, small, masks, size, refine_steps).cpu()
        return context_rows(full, small, masks, completed[:, None], size)

    # Generative use (hypersiren.generate): priors whose codes are latent vectors (hypernet, functa).

    def fit_density(self, faces_unit: Tensor, max_faces: int | None = None, batch_size: int = 100) -> None:
        """Fit the latent density on faces (N, 3, S, S) in [0, 1] (e.g. the training faces; resized to the prior's
        resolution), replacing the one stored in the checkpoint."""
        from hypersiren.generate import DENSITY_FACES, fit_latent_density

        faces = faces_unit.float()
        if faces.dim() == 4 and faces.shape[-2:] != (self.resolution, self.resolution):
            faces = resize(faces, self.resolution, self.resolution)
        self.density = fit_latent_density(self.prior, faces.to(self.device), batch_size, max_faces or DENSITY_FACES)

    def latent_density(self):
        """The ``LatentDensity`` for sampling; InputError for a prior without vector latents or without a density."""
        from hypersiren.generate import require_latent

        require_latent(self.prior)
        if self.density is None:
            raise InputError("this checkpoint stores no latent density (it was saved before training ended, or by an "
                             "older hypersiren); fit one on the training faces: --data FACES (HyperSiren.fit_density)")
        return self.density

    def sample(self, num: int, resolution: int | None = None, *, temperature: float = 1.0, seed: int = 0) -> Tensor:
        """``num`` new faces (num, 3, r, r) in [0, 1]: latents drawn from the latent density with its spread scaled
        by ``temperature``, rendered at resolution r (default: training's)."""
        generator = torch.Generator().manual_seed(seed)
        latents = self.latent_density().gaussian.sample(num, generator, temperature)
        return self.render(latents.to(self.device), resolution)

    def interpolate(self, start: Any, end: Any, steps: int = 8, resolution: int | None = None, *,
                    refine_steps: int = 0) -> Tensor:
        """Faces (steps, 3, r, r) in [0, 1] evenly spaced on the latent segment between the codes of images ``start``
        and ``end`` (one image each, encoded from every pixel): the first is the render of ``encode(start,
        mask="full")``, the last that of ``end``. r: default training's resolution."""
        from hypersiren.generate import interpolate_latents, require_latent

        require_latent(self.prior)
        ends = [self.encode(image, mask="full", refine_steps=refine_steps) for image in (start, end)]
        if any(len(code) != 1 for code in ends):
            raise InputError(f"interpolation takes one image at each end, got {len(ends[0])} and {len(ends[1])}")
        return self.render(interpolate_latents(ends[0][0], ends[1][0], steps), resolution)

    def complete_samples(self, image: Any, mask: Any = None, num_pixels: int | None = None, num: int = 8,
                         resolution: int | None = None, *, temperature: float = 1.0, seed: int = 0,
                         noise: float | None = None, steps: int = 100) -> Tensor:
        """``num`` plausible completions of each image's context, drawn given it (``hypersiren.generate``):
        (B, num, 3, r, r) in [0, 1], r = ``resolution`` (default: the cropped input's side). temperature scales
        their spread (0: every one is the most probable completion); noise: observation noise of the context
        pixels (default: the prior's reconstruction error); steps: L-BFGS iterations per draw."""
        full, small, masks, _ = self.context(image, mask, num_pixels, seed)
        size = resolution or full.shape[-1]
        return self._complete_samples(full, small, masks, num, size, temperature, seed, noise, steps)

    def _complete_samples(self, full, small, masks, num, size, temperature, seed, noise, steps) -> Tensor:
        from hypersiren.generate import sample_completions

        latents = sample_completions(self.prior, self.latent_density(), from_unit(small), masks, num,
                                     temperature=temperature, noise=noise, steps=steps,
                                     generator=torch.Generator().manual_seed(seed))
        return self.render(latents.flatten(0, 1), size).reshape(len(full), num, 3, size, size)

    def complete_samples_side_by_side(self, image: Any, mask: Any = None, num_pixels: int | None = None, num: int = 8,
                                      resolution: int | None = None, *, temperature: float = 1.0, seed: int = 0,
                                      noise: float | None = None, steps: int = 100) -> Tensor:
        """One picture (3, H, W) in [0, 1]: a row per image of context | ``num`` sampled completions | ground truth."""
        from hypersiren.viz import context_rows

        full, small, masks, _ = self.context(image, mask, num_pixels, seed)
        size = resolution or full.shape[-1]
        samples = self._complete_samples(full, small, masks, num, size, temperature, seed, noise, steps)
        return context_rows(full, small, masks, samples.cpu(), size)



def downsample_context(images_unit: Tensor, masks: Tensor, resolution: int) -> tuple[Tensor, Tensor]:
    """Context of (B, 3, S, S) images with (B, S, S) masks at resolution R: a pixel is known when any pixel of its
    footprint is, with the mean of the known ones (unknown pixels are never read)."""
    known = masks[:, None].float()
    total = F.adaptive_avg_pool2d(images_unit * known, resolution)
    weight = F.adaptive_avg_pool2d(known, resolution)
    return (total / weight.clamp_min(1e-12)).clamp(0, 1), weight[:, 0] > 0
