"""``train prior``: learn a prior over SIRENs of faces (any registered ``FunctionPrior`` method) from random
contexts, evaluated on held-out faces at 10 / 100 / 1000 pixels and the top half (paper, section 4.4).

The defaults train hypersiren's basis prior (``priors/basis.py``). ``PAPER`` and ``FAST`` are ready
configurations of the hypernetwork: the paper's CelebA settings, and its light form on random target pixels.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hypersiren.checkpoint import restore_module
from hypersiren.config import non_negative_int, option, positive_float, positive_int, variant
from hypersiren.data.grid import grid
from hypersiren.data.image import from_unit, save_image
from hypersiren.engine import EngineConfig
from hypersiren.errors import CheckpointError, InputError
from hypersiren.limits import check_memory
from hypersiren.nn.measure import build_checked, step_bytes
from hypersiren.priors import inference
from hypersiren.priors.base import FunctionPrior, PriorConfig
from hypersiren.priors.basis import BasisPrior
from hypersiren.priors.hypernet import HypernetPrior
from hypersiren.registry import PRIORS
from hypersiren.tasks.base import Task, TaskConfig

TRAIN_SETTINGS = ("10", "100", "1000", "half")
EMBEDDED_FACES = 500  # at most this many held-out faces in the Projector (two codes each: top half, full face)
SAMPLES = 16  # faces drawn from the latent density for TensorBoard at the end of training
INTERPOLATION_STEPS = 8  # renders between (and including) the codes of two held-out faces
GENERATIVE_SCALE = 2  # samples and interpolations are rendered at this many times the training resolution
FACE_PIXEL_BYTES = 64  # memory per pixel of one face being completed: images, mask, coordinates and render (float32)
PICTURE_SETTINGS = ("10", "100", "half")
DATA = "data"


def feasible_settings(settings, resolution: int) -> tuple[str, ...]:
    """The evaluation settings an R x R image allows (pixel counts up to R*R)."""
    return tuple(s for s in settings if not str(s).isdigit() or int(s) <= resolution * resolution)


class FacePrior(Task):
    """Learn a prior over face SIRENs: every step draws faces and random contexts (``training_masks``), and the
    prior predicts all pixels (or ``target_pixels`` random ones per face) from the context. Its checkpoints'
    kind is ``prior/<method>``."""

    name = "prior"
    kind = "prior"
    description = "learn a prior over SIRENs of faces (complete a face from a few pixels)"

    @dataclass(frozen=True, kw_only=True)
    class Config(TaskConfig):
        data: str | None = option(None, "CelebA (official or Kaggle layout) or any folder of face images (default: "
                                        "the 100 LFW faces bundled with scikit-image)", group=DATA)
        resolution: int = option(32, "training resolution R", check=positive_int, group=DATA)
        val_fraction: float = option(0.1, "held-out share of a folder without an official split",
                                     check=positive_float, group=DATA)
        max_train: int = option(0, "use at most N training faces, 0 = all", check=non_negative_int, group=DATA)
        eval_images: int = option(100, "held-out faces evaluated", check=positive_int, group=DATA, resumable=True)
        batch_size: int = option(16, "faces per step", check=positive_int, group=DATA)
        target_pixels: int = option(0, "pixels per face the loss compares, drawn at random each step, 0 = all (the "
                                       "paper)", check=non_negative_int, group=DATA)
        flip: bool = option(True, "random horizontal flips", group=DATA)
        workers: int = option(0, "data-loading worker processes (0 = load in the training process)",
                              check=non_negative_int, group=DATA, resumable=True)
        prior: PriorConfig = variant(BasisPrior.Config(), "prior", options=PRIORS.configs, selector="method",
                                     group="prior (unset options keep the method's default)")
        engine: EngineConfig = EngineConfig(steps=10000, lr=3e-4, clip_grad=1.0, summary_every=500)

    def __init__(self, config: Config, device: torch.device | str | None = None):
        super().__init__(config, device)
        from hypersiren.data.context import evaluation_masks
        from hypersiren.data.face_loader import FaceStream
        from hypersiren.data.faces import open_faces
        from hypersiren.runtime import distributed

        device, resolution = self.device, config.resolution
        split = dict(resolution=resolution, val_fraction=config.val_fraction, progress=config.engine.progress)
        train = open_faces(config.data, "train", **split)  # memory-mapped: read a batch at a time
        if config.max_train:
            train = train.first(config.max_train)
        self.held_out = open_faces(config.data, "val", **split)[: config.eval_images].to(device).float() / 255
        self.resolution = resolution
        rank, world = distributed()
        self.faces = FaceStream(train, config.batch_size, config.engine.seed, device, flip=config.flip,
                                workers=config.workers, rank=rank, world=world)
        self.coords = grid(resolution, resolution, device=device)
        prior_cls = PRIORS.owner(config.prior)
        self.model = build_checked(lambda: prior_cls(config.prior), f"the {prior_cls.method} prior's networks "
                                   f"(--hidden-features, --hidden-layers and the method's options)").to(device)
        self.kind = f"{FacePrior.kind}/{prior_cls.method}"
        self.pictures = self.held_out[:8]
        generator = torch.Generator(device="cpu").manual_seed(1234)
        self.picture_masks = {s: evaluation_masks(s, len(self.pictures), resolution, generator).to(device)
                              for s in feasible_settings(PICTURE_SETTINGS, resolution)}
        self.density = None  # the latent density final_state fits, for final_summaries
        self.calibrated_weights = None  # the weights' state ``calibrate`` last fitted the prior for

    def model_meta(self) -> dict[str, Any]:
        return {"method": self.model.method, **self.model.config.to_dict()}

    def memory_needs(self) -> dict[str, float]:
        c, pixels = self.config, self.config.resolution**2
        targets = c.target_pixels if 0 < c.target_pixels < pixels else pixels
        face = pixels * FACE_PIXEL_BYTES
        return {f"--batch-size {c.batch_size} at --resolution {c.resolution}": c.batch_size * face,
                f"--eval-images {c.eval_images} at --resolution {c.resolution}": c.eval_images * face,
                f"a training step on --batch-size {c.batch_size} x {targets:,} pixels (--target-pixels "
                f"{c.target_pixels}, --hidden-features {c.prior.hidden_features}, --hidden-layers "
                f"{c.prior.hidden_layers})": step_bytes(c.batch_size * targets, c.prior.hidden_features,
                                                        c.prior.hidden_layers)}

    def final_state(self) -> dict[str, Any]:
        """The prior calibrated (``evaluating``), and for a prior with vector latents the density of its training
        faces' latents, so that ``hypersiren sample`` needs only the checkpoint (``hypersiren.generate``)."""
        from hypersiren.generate import fit_latent_density

        with self.evaluating():
            if self.model.latent_dim is None:
                return {}
            self.density = fit_latent_density(self.model, self.faces.faces, self.config.batch_size)
        return {"latent_density": self.density.state()}

    def batch(self, step: int) -> tuple[Tensor, ...]:
        from hypersiren.data.context import training_masks

        faces = from_unit(self.faces(step))
        batch, resolution = faces.shape[0], self.resolution
        masks = training_masks(batch, resolution).to(self.device)
        values = faces.flatten(2).transpose(1, 2)  # (B, R*R, 3)
        coords = self.coords.expand(batch, -1, -1)
        k = self.config.target_pixels
        if 0 < k < resolution * resolution:
            chosen = torch.rand(batch, resolution * resolution).argsort(dim=1)[:, :k].to(self.device)
            coords = coords.gather(1, chosen[..., None].expand(-1, -1, 2))
            values = values.gather(1, chosen[..., None].expand(-1, -1, 3))
        return faces, masks, coords, values

    def loss(self, model, batch):
        return model(*batch)

    def complete(self, images_unit: Tensor, masks: Tensor) -> Tensor:
        return inference.complete(self.model, images_unit, masks)

    @contextlib.contextmanager
    def evaluating(self):
        """Eval mode, the prior calibrated on the training faces for its current weights (``calibrate``), and torch's
        RNG restored afterwards: evaluating never changes training (resume equivalence)."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=[]):
                self.calibrate()
                yield
        finally:
            self.model.train(was_training)

    def calibrate(self) -> None:
        """Fit what the prior estimates from its training faces (``FunctionPrior.calibrate``, on at most
        ``generate.DENSITY_FACES`` of them, and their mirror images with ``--flip``), once per state of its weights."""
        from hypersiren.generate import face_batches, training_subset

        weights = tuple((p.data_ptr(), p._version) for p in self.model.parameters())  # see engine.make_optimizer
        if weights != self.calibrated_weights:
            batches = face_batches(self.model, training_subset(self.faces.faces), self.config.batch_size)
            self.model.calibrate(batches, mirror=self.config.flip)  # with --flip, the faces training sees
            self.calibrated_weights = weights

    def metrics(self) -> dict[str, float]:
        from hypersiren.evaluation import evaluate_completion

        settings = feasible_settings(TRAIN_SETTINGS, self.resolution)
        with self.evaluating():
            results, _ = evaluate_completion(self.complete, self.held_out, seed=0, settings=settings,
                                             batch_size=self.config.batch_size, progress=False)
            context = self.context_scalars(settings)
        return ({f"psnr_{s}": r["psnr"] for s, r in results.items()}
                | {f"ssim_{s}": r["ssim"] for s, r in results.items()} | context)

    def context_scalars(self, settings: tuple[str, ...]) -> dict[str, float]:
        """The prior's ``context_scalars`` of the held-out faces, averaged, per setting: ``<name>_<setting>``."""
        from hypersiren.data.context import evaluation_masks

        generator, sums = torch.Generator().manual_seed(0), {}
        with torch.no_grad():
            for setting in settings:
                for faces in self.held_out.split(self.config.batch_size):
                    masks = evaluation_masks(setting, len(faces), self.resolution, generator).to(self.device)
                    for name, values in self.model.context_scalars(from_unit(faces), masks).items():
                        key = f"{name}_{setting}"
                        sums[key] = sums.get(key, 0.0) + float(values.sum())
        return {key: total / len(self.held_out) for key, total in sums.items()}

    def completion_grid(self) -> Tensor:
        """Rows of held-out faces; per setting context | completion, then the ground truth. (3, H, W) in [0, 1]."""
        from hypersiren.viz import completion_figure

        examples = {s: self.complete(self.pictures, masks).cpu() for s, masks in self.picture_masks.items()}
        return completion_figure(self.pictures.cpu(), examples, {s: m.cpu() for s, m in self.picture_masks.items()})

    def summaries(self, writer, step: int) -> None:
        """The completions grid, a histogram of the held-out faces' codes from their top half and, for a prior with
        vector codes, those codes and the full-face ones in the Projector (``held_out_codes``)."""
        from hypersiren.summaries import add_embedding

        with self.evaluating():
            writer.add_image("completions", self.completion_grid(), step)
            with torch.no_grad():
                half = self.picture_masks["half"][:1].expand(len(self.held_out), -1, -1)
                code = self.model.infer(from_unit(self.held_out), half)
            if isinstance(code, Tensor):
                writer.add_histogram("latent (top half known)", code, step)
            if self.model.latent_dim is not None and isinstance(code, Tensor):
                faces, known = self.held_out[:EMBEDDED_FACES], torch.ones_like(half[:1])
                with torch.no_grad():  # a batch at a time: up to EMBEDDED_FACES faces with every pixel known
                    full = torch.cat([self.model.infer(from_unit(batch), known.expand(len(batch), -1, -1))
                                      for batch in faces.split(self.config.batch_size)])
                rows = [[i, context] for context in ("top half", "full face") for i in range(len(faces))]
                add_embedding(writer, "held_out_codes", torch.cat([code[: len(faces)], full]).flatten(1), step,
                              images=torch.cat([faces, faces]), metadata=rows, header=["face", "context"])

    def final_summaries(self, writer, step: int) -> None:
        """For a prior with a latent density (fitted by ``final_state``): faces drawn from it
        (``generative/samples``) and the faces on the latent segment between two held-out faces' full-face codes,
        framed by those faces (``generative/interpolation``), rendered at GENERATIVE_SCALE x the resolution."""
        if self.density is None or self.model.latent_dim is None:
            return
        from hypersiren.generate import interpolate_latents
        from hypersiren.viz import side_by_side, stack_rows

        resolution, gaussian = self.resolution, self.density.gaussian.to(self.device)
        shown = GENERATIVE_SCALE * resolution  # a SIREN renders at any resolution
        with self.evaluating(), torch.no_grad():
            generator = torch.Generator().manual_seed(0)
            samples = inference.render(self.model, gaussian.sample(SAMPLES, generator), shown).cpu()
            per_row = math.ceil(math.sqrt(SAMPLES))
            rows = [side_by_side(list(samples[i:i + per_row])) for i in range(0, SAMPLES, per_row)]
            writer.add_image("generative/samples", stack_rows(rows), step)
            ends = self.held_out[:2] if len(self.held_out) > 1 else self.held_out[[0, 0]]
            full = torch.ones(2, resolution, resolution, dtype=torch.bool, device=self.device)
            codes = self.model.infer(from_unit(ends), full)
            path = inference.render(self.model, interpolate_latents(codes[0], codes[1], INTERPOLATION_STEPS),
                                    shown).cpu()
            ends = torch.nn.functional.interpolate(ends.cpu(), scale_factor=GENERATIVE_SCALE, mode="nearest")
            writer.add_image("generative/interpolation", side_by_side([ends[0], *path, ends[1]]), step)

    def close(self) -> None:
        self.faces.close()

    def write_outputs(self, out_dir: Path) -> list[Path]:
        path = out_dir / "completions.png"
        with self.evaluating():
            save_image(self.completion_grid(), path)
        return [path]


def restore_prior(path: str | Path, state: Any, meta: dict) -> tuple[FunctionPrior, int, Any]:
    """(the prior, its training resolution, its latent density or None) that a ``prior/<method>`` checkpoint's
    ``state`` and ``meta`` (``load_checkpoint``) describe. Both are untrusted: the model's and the task's configs go
    through ``Config.from_dict`` (types, ranges, keys), the weights' shapes are compared with the model's config
    before it is built (``restore_module``), a face at the resolution must fit the memory budget and the density
    must match the latent size. CheckpointError naming what is wrong."""
    model = meta.get("model")
    if not isinstance(model, dict) or not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds no prior: its model entry is a {type(model).__name__}, "
                              "expected a JSON object with the method and its options")
    options = dict(model)
    method = options.pop("method", None)
    if not isinstance(method, str) or method not in PRIORS:
        raise CheckpointError(f"checkpoint {path} holds prior method {str(method)[:40]!r}, which this hypersiren does "
                              f"not know; expected one of {', '.join(PRIORS)}")
    try:
        prior_config = PRIORS[method].Config.from_dict(options)
        config = FacePrior.Config.from_dict(meta.get("config", {}))
        check_memory({f"its config.resolution {config.resolution} (one face at that resolution)":
                      config.resolution**2 * FACE_PIXEL_BYTES})
    except InputError as err:
        raise CheckpointError(f"checkpoint {path} holds a configuration this hypersiren cannot use: {err}") from None
    prior = restore_module(lambda: PRIORS[method](prior_config), state.get("model"), f"checkpoint {path}")
    density = None
    if "latent_density" in state:  # fitted at the end of training (FacePrior.final_state)
        density = _restore_density(path, state["latent_density"], prior.latent_dim)
    return prior, config.resolution, density


def _restore_density(path: str | Path, entry: Any, latent_dim: int | None):
    from hypersiren.generate import LatentDensity

    try:
        density = LatentDensity.from_state(entry)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, InputError) as err:
        raise CheckpointError(f"checkpoint {path} holds an unreadable latent density: {err}") from None
    if density.gaussian.dim != latent_dim or not (math.isfinite(density.noise) and density.noise >= 0):
        raise CheckpointError(f"checkpoint {path} holds a latent density over {density.gaussian.dim} dimensions with "
                              f"noise {density.noise}; expected {latent_dim} dimensions and a finite noise >= 0")
    return density


# The paper's CelebA settings (32 x 32, set encoder with sine activations, latent 256, full hypernetwork over a SIREN
# 256 x 4, MSE over all pixels + 0.1 mean(z^2) + 100 mean(theta^2), Adam 5e-5, clipping 1), and a faster form of it
# (light hypernetwork on 256 random target pixels per face, batch 32, lr 1e-4, flips).
PAPER = FacePrior.Config(
    resolution=32, batch_size=100, target_pixels=0, flip=False,
    prior=HypernetPrior.Config(encoder="set", activation="sine", hypernet="full", latent_dim=256, hidden_features=256,
                               hidden_layers=3, lambda_latent=0.1, lambda_weights=100.0),
    engine=EngineConfig(steps=100000, lr=5e-5, clip_grad=1.0, summary_every=500, checkpoint_every=500))
FAST = PAPER.replace(target_pixels=256, batch_size=32, flip=True, prior=PAPER.prior.replace(hypernet="light"),
                     engine={"lr": 1e-4})
# hypersiren's default prior (the basis prior) at CelebA scale on one GPU (per process under torchrun): the settings
# of ``hypersiren train prior`` (tuned on 700 faces on a CPU, see the README) with a larger batch, data-loading
# workers, and a step budget and checkpoints sized for 162,770 training faces.
BASIS = FacePrior.Config(batch_size=128, workers=4,
                         engine=EngineConfig(steps=50000, lr=3e-4, clip_grad=1.0, summary_every=1000,
                                             checkpoint_every=1000))
