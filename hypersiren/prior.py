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

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hypersiren.checkpoint import load_checkpoint
from hypersiren.data.image import from_unit, resize, to_unit
from hypersiren.errors import CheckpointError, InputError
from hypersiren.priors import PRIORS, FunctionPrior
from hypersiren.tasks.face_prior import render_faces


@dataclass
class _Kind:
    """How the caller's images were given, to return the result the same way."""

    library: str  # "pil", "numpy" or "torch"
    batched: bool  # a batch array/tensor or a list
    is_list: bool
    uint8: bool
    dtype: Any = None
    device: Any = None


def _pil_to_array(image) -> np.ndarray:
    return np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))


def _as_tensor(image: Any) -> tuple[Tensor, _Kind]:
    """One image or batch -> (B, C, H, W) float in [0, 1] and its kind."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        tensor = torch.from_numpy(_pil_to_array(image).copy()).permute(2, 0, 1)[None]
        return _normalise(tensor, "PIL image"), _Kind("pil", False, False, True)
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim not in (2, 3, 4):
            raise InputError(f"numpy image has shape {array.shape}; expected (H, W), (H, W, C) or (B, H, W, C)")
        tensor = torch.from_numpy(np.array(array))  # a copy: the caller's array may be read-only
        tensor = tensor[None, None] if array.ndim == 2 else (tensor.permute(2, 0, 1)[None] if array.ndim == 3 else tensor.permute(0, 3, 1, 2))
        return _normalise(tensor, "numpy image"), _Kind("numpy", array.ndim == 4, False, array.dtype == np.uint8, array.dtype)
    if isinstance(image, Tensor):
        if image.dim() not in (2, 3, 4):
            raise InputError(f"tensor image has shape {tuple(image.shape)}; expected (H, W), (C, H, W) or (B, C, H, W)")
        tensor = image.detach().cpu()
        tensor = tensor[None, None] if image.dim() == 2 else (tensor[None] if image.dim() == 3 else tensor)
        return _normalise(tensor, "tensor image"), _Kind("torch", image.dim() == 4, False, image.dtype == torch.uint8,
                                                           image.dtype, image.device)
    raise InputError(f"cannot read an image from a {type(image).__name__}; expected a PIL image, a numpy array or a "
                     "torch tensor (or a list of them)")


def _normalise(tensor: Tensor, what: str) -> Tensor:
    """(B, C, H, W) of any supported dtype -> float32 in [0, 1] with 3 channels (gray repeated, alpha dropped)."""
    if tensor.dtype == torch.uint8:
        tensor = tensor.float() / 255
    elif tensor.is_floating_point():
        tensor = tensor.float()
        if not torch.isfinite(tensor).all():
            raise InputError(f"{what} contains NaN or Inf values")
        if tensor.numel() and (tensor.min() < 0 or tensor.max() > 1):
            raise InputError(f"{what} has float values in [{tensor.min():.3g}, {tensor.max():.3g}]; expected "
                             "floats in [0, 1] or uint8 in 0..255")
    else:
        raise InputError(f"{what} has dtype {tensor.dtype}; expected uint8 (0..255) or float (0..1)")
    channels = tensor.shape[1]
    if channels in (1, 2):  # gray (+ alpha)
        tensor = tensor[:, :1].expand(-1, 3, -1, -1)
    elif channels == 4:  # RGBA
        tensor = tensor[:, :3]
    elif channels != 3:
        raise InputError(f"{what} has {channels} channels; expected 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); "
                         "numpy images are channels-last (H, W, C), tensors channels-first (C, H, W)")
    if min(tensor.shape[-2:]) < 1:
        raise InputError(f"{what} is empty ({tuple(tensor.shape[-2:])} pixels)")
    return tensor.contiguous()


def _read_images(image: Any) -> tuple[Tensor, _Kind]:
    """Any supported input (or list of inputs of one size) -> (B, 3, S, S) in [0, 1] (centre-cropped) and its kind."""
    if isinstance(image, (list, tuple)):
        if not image:
            raise InputError("empty list of images; expected at least one image")
        parts = [_as_tensor(item) for item in image]
        sizes = {tuple(t.shape[-2:]) for t, _ in parts}
        if len(sizes) > 1:
            raise InputError(f"images in a list must share one size, got {sorted(sizes)}")
        tensor = torch.cat([t for t, _ in parts])
        kind = parts[0][1]
        kind.batched, kind.is_list = True, True
    else:
        tensor, kind = _as_tensor(image)
    height, width = tensor.shape[-2:]
    if height != width:
        from hypersiren.data.faces import square_crop

        warnings.warn(f"image is {height}x{width}, not square: using its centred {min(height, width)}x"
                      f"{min(height, width)} square", stacklevel=3)
        tensor = square_crop(tensor)
    return tensor, kind


def _restore(images_unit: Tensor, kind: _Kind):
    """(B, 3, r, r) in [0, 1] -> the caller's kind."""
    images_unit = images_unit.detach().cpu()
    if kind.library == "pil":
        from PIL import Image

        arrays = (images_unit * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        result = [Image.fromarray(a, "RGB") for a in arrays]
        return result if kind.batched else result[0]
    if kind.uint8:
        images = (images_unit * 255).round().to(torch.uint8)
    else:
        images = images_unit.to(kind.dtype if kind.library == "torch" else torch.float32)
    if kind.library == "numpy":
        arrays = images.permute(0, 2, 3, 1).numpy()
        if kind.is_list:
            return list(arrays)
        return arrays if kind.batched else arrays[0]
    images = images.to(kind.device)
    if kind.is_list:
        return list(images)
    return images if kind.batched else images[0]


def downsample_context(images_unit: Tensor, masks: Tensor, resolution: int) -> tuple[Tensor, Tensor]:
    """Context of (B, 3, S, S) images with (B, S, S) masks at resolution R: a pixel is known when any pixel of its
    footprint is, with the mean of the known ones (unknown pixels are never read)."""
    known = masks[:, None].float()
    total = F.adaptive_avg_pool2d(images_unit * known, resolution)
    weight = F.adaptive_avg_pool2d(known, resolution)
    return (total / weight.clamp_min(1e-12)).clamp(0, 1), weight[:, 0] > 0


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
        state, meta = load_checkpoint(path, kind="prior/")
        model = dict(meta.get("model") or {})
        method = model.pop("method", None)
        if method not in PRIORS:
            raise CheckpointError(f"checkpoint {path} holds prior method {method!r}, which this hypersiren does not "
                                  f"know; expected one of {', '.join(sorted(PRIORS))}")
        try:
            prior = PRIORS[method](**model)
            prior.load_state_dict(state["model"])
        except (TypeError, ValueError, RuntimeError, KeyError) as err:
            raise CheckpointError(f"checkpoint {path} does not match the {method!r} prior: {err}") from None
        resolution = (meta.get("config") or {}).get("resolution", 32)
        density = None
        if "latent_density" in state:  # fitted at the end of training (FacePrior.final_state)
            from hypersiren.generate import LatentDensity

            try:
                density = LatentDensity.from_state(state["latent_density"]).to(device)
            except (KeyError, TypeError, ValueError, InputError) as err:
                raise CheckpointError(f"checkpoint {path} holds an unreadable latent density: {err}") from None
        return cls(prior.to(device), resolution, meta, density)

    def context(self, image: Any, mask: Any = None, num_pixels: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, _Kind]:
        """Read ``image`` and the context asked for: (full-size images (B, 3, S, S) in [0, 1], images at the
        prior's resolution (B, 3, R, R), context masks (B, R, R), input kind)."""
        from hypersiren.data.context import mask_from_spec

        if (mask is None) == (num_pixels is None):
            raise InputError("give exactly one context: mask=... (e.g. 'half' or a boolean array) or num_pixels=N")
        full, kind = _read_images(image)
        batch, side, res = full.shape[0], full.shape[-1], self.resolution
        generator = torch.Generator().manual_seed(seed)
        spec = num_pixels if mask is None else mask
        array_mask = isinstance(spec, (np.ndarray, Tensor))
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
        return self._infer(small, masks, refine_steps)

    def _infer(self, small: Tensor, masks: Tensor, refine_steps: int) -> Any:
        images = from_unit(small)
        with torch.no_grad():
            code = self.prior.infer(images, masks)
        if refine_steps:
            from hypersiren.priors.refine import refine

            with torch.enable_grad():
                code = refine(self.prior, code, images, masks, refine_steps)
        return code

    def render(self, code: Any, resolution: int | None = None) -> Tensor:
        """Images (B, 3, r, r) in [0, 1] that ``code`` describes, at any resolution r (default: training's)."""
        resolution = resolution or self.resolution
        batch = code.shape[0] if isinstance(code, Tensor) else next(iter(code.values())).shape[0]
        with torch.no_grad():
            return to_unit(render_faces(self.prior, code, batch, resolution, self.device))

    def complete(self, image: Any, mask: Any = None, num_pixels: int | None = None, resolution: int | None = None,
                 *, seed: int = 0, refine_steps: int = 0):
        """The completed image(s) in the input's kind, at ``resolution`` (default: the cropped input's side)."""
        full, small, masks, kind = self.context(image, mask, num_pixels, seed)
        code = self._infer(small, masks, refine_steps)
        return _restore(self.render(code, resolution or full.shape[-1]), kind)

    def side_by_side(self, image: Any, mask: Any = None, num_pixels: int | None = None, resolution: int | None = None,
                     *, seed: int = 0, refine_steps: int = 0) -> Tensor:
        """One picture (3, H, W) in [0, 1]: rows of context | completion | ground truth at ``resolution``."""
        full, small, masks, _ = self.context(image, mask, num_pixels, seed)
        size = resolution or full.shape[-1]
        completed = self.render(self._infer(small, masks, refine_steps), size).cpu()
        return _context_figure(full, small, masks, completed[:, None], size)

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
        full, small, masks, _ = self.context(image, mask, num_pixels, seed)
        size = resolution or full.shape[-1]
        samples = self._complete_samples(full, small, masks, num, size, temperature, seed, noise, steps)
        return _context_figure(full, small, masks, samples.cpu(), size)


def _context_figure(full: Tensor, small: Tensor, masks: Tensor, completions: Tensor, size: int) -> Tensor:
    """(3, H, W) in [0, 1]: per image a row of context (unknown pixels gray) | its completions (B, K, 3, size, size)
    | ground truth, at ``size``."""
    from hypersiren.evaluation import UNKNOWN_GRAY, hide_unknown
    from hypersiren.viz import side_by_side, stack_rows

    context = F.interpolate(hide_unknown(small, masks, UNKNOWN_GRAY).cpu(), size=size, mode="nearest")
    truth = resize(full, size, size)
    return stack_rows([side_by_side([context[i], *completions[i], truth[i]]) for i in range(len(full))])
