"""``train prior``: learn a prior over SIRENs of faces (any registered ``FunctionPrior`` method) from random
contexts, evaluated on held-out faces at 10 / 100 / 1000 pixels and the top half (paper, section 4.4)."""
from __future__ import annotations

import argparse
import contextlib
import inspect
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hypersiren.data.grid import grid
from hypersiren.data.image import from_unit, save_image, to_unit
from hypersiren.errors import InputError
from hypersiren.priors import PRIORS, FunctionPrior
from hypersiren.tasks.base import Task, non_negative_float, non_negative_int, positive_float, positive_int

TRAIN_SETTINGS = ("10", "100", "1000", "half")
PICTURE_SETTINGS = ("10", "100", "half")


def feasible_settings(settings, resolution: int) -> tuple[str, ...]:
    """The evaluation settings an R x R image allows (pixel counts up to R*R)."""
    return tuple(s for s in settings if not str(s).isdigit() or int(s) <= resolution * resolution)


def render_faces(prior: FunctionPrior, code: Any, batch: int, resolution: int, device: torch.device,
                 max_points: int = 1 << 20) -> Tensor:
    """The images (B, 3, R, R) in [-1, 1] that ``code`` describes, rendered at any resolution in chunks of at
    most ``max_points`` coordinates over the batch."""
    coords = grid(resolution, resolution, device=device)
    chunk = max(1, max_points // batch)
    parts = [prior.render(code, coords[i:i + chunk].expand(batch, -1, -1)) for i in range(0, len(coords), chunk)]
    return torch.cat(parts, dim=1).transpose(1, 2).reshape(batch, -1, resolution, resolution)


@torch.no_grad()
def complete_faces(prior: FunctionPrior, images_unit: Tensor, masks: Tensor, resolution: int | None = None) -> Tensor:
    """Completions (B, 3, r, r) in [0, 1] of images (B, 3, R, R) in [0, 1] from their known pixels ``masks``
    (B, R, R), rendered at ``resolution`` r (default R)."""
    code = prior.infer(from_unit(images_unit), masks)
    return to_unit(render_faces(prior, code, images_unit.shape[0], resolution or images_unit.shape[-1], images_unit.device))


def prior_arguments(prior_cls: type[FunctionPrior], config: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of ``prior_cls`` that ``config`` sets (None = the prior's own default)."""
    names = [p.name for p in inspect.signature(prior_cls.__init__).parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
    for cls in prior_cls.__mro__[1:]:  # subclasses forwarding **kwargs accept their parents' arguments
        if issubclass(cls, FunctionPrior) and cls is not FunctionPrior:
            names += [p.name for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
    return {name: config[name] for name in dict.fromkeys(names) if config.get(name) is not None}


class FacePrior(Task):
    """Learn a prior over face SIRENs: every step draws faces and random contexts (``training_masks``), and the
    prior predicts all pixels (or ``target_pixels`` random ones per face) from the context."""

    name = "prior"
    description = "learn a prior over SIRENs of faces (complete a face from a few pixels)"
    defaults = {"steps": 10000, "lr": 5e-5, "clip_grad": 1.0, "summary_every": 500}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        data = parser.add_argument_group("data")
        data.add_argument("--data", default=None,
                          help="CelebA (official or Kaggle layout) or any folder of face images (default: the 100 LFW "
                               "faces bundled with scikit-image)")
        data.add_argument("--resolution", type=positive_int, default=32, help="training resolution R (default: 32)")
        data.add_argument("--val-fraction", type=positive_float, default=0.1,
                          help="held-out share of a folder without an official split (default: 0.1)")
        data.add_argument("--max-train", type=non_negative_int, default=0, help="use at most N training faces (0: all)")
        data.add_argument("--eval-images", type=positive_int, default=100, help="held-out faces evaluated (default: 100)")
        data.add_argument("--batch-size", type=positive_int, default=100, help="faces per step (default: 100)")
        data.add_argument("--target-pixels", type=non_negative_int, default=0,
                          help="pixels per face the loss compares, drawn at random each step (0: all, the paper)")
        data.add_argument("--flip", action="store_true", help="random horizontal flips")
        model = parser.add_argument_group("prior (unset options keep the method's default)")
        model.add_argument("--method", default="hypernet", choices=sorted(PRIORS), help="prior (default: hypernet)")
        model.add_argument("--encoder", choices=("set", "cnn"), default=None, help="hypernet: context encoder (default: set)")
        model.add_argument("--activation", choices=("relu", "sine"), default=None, help="hypernet: set-encoder activation (default: relu)")
        model.add_argument("--hypernet", choices=("full", "light"), default=None,
                           help="hypernet: full = paper (a head per SIREN parameter), light = shift modulations of a shared SIREN")
        model.add_argument("--latent-dim", type=positive_int, default=None, help="latent size (default: 256)")
        model.add_argument("--hidden-features", type=positive_int, default=None, help="SIREN width (default: 256)")
        model.add_argument("--hidden-layers", type=non_negative_int, default=None, help="SIREN hidden layers (default: 3)")
        model.add_argument("--lambda-latent", type=non_negative_float, default=None, help="hypernet: weight of mean(z^2) (default: 0.1)")
        model.add_argument("--lambda-weights", type=non_negative_float, default=None, help="hypernet: weight of mean(theta^2) (default: 100)")
        for prior_cls in PRIORS.values():  # method-specific options a prior declares itself
            if hasattr(prior_cls, "add_arguments"):
                prior_cls.add_arguments(model)

    def __init__(self, config: dict[str, Any], device: torch.device):
        super().__init__(config, device)
        from hypersiren.data.faces import FaceBatches, load_faces

        progress = not config.get("no_progress", False)
        root, resolution = config.get("data"), config["resolution"]
        split = dict(resolution=resolution, val_fraction=config["val_fraction"], progress=progress)
        train = load_faces(root, "train", **split)
        if config.get("max_train"):
            train = train[: config["max_train"]]
        self.held_out = load_faces(root, "val", **split)[: config["eval_images"]].to(device)
        self.resolution = resolution
        self.faces = FaceBatches(train.to(device), config["batch_size"], flip=config.get("flip", False))
        self.coords = grid(resolution, resolution, device=device)
        method = config["method"]
        if method not in PRIORS:
            raise InputError(f"unknown prior method {method!r}; expected one of {', '.join(sorted(PRIORS))}")
        try:
            self.model = PRIORS[method](**prior_arguments(PRIORS[method], config)).to(device)
        except ValueError as err:
            raise InputError(str(err)) from None
        self.kind = f"prior/{method}"
        self.pictures = self.held_out[:8]
        generator = torch.Generator(device="cpu").manual_seed(1234)
        from hypersiren.data.context import evaluation_masks

        self.picture_masks = {s: evaluation_masks(s, len(self.pictures), resolution, generator).to(device)
                              for s in feasible_settings(PICTURE_SETTINGS, resolution)}

    def model_meta(self) -> dict[str, Any]:
        return {"method": self.model.method, **self.model.config()}

    def final_state(self) -> dict[str, Any]:
        """A prior with vector latents stores the density of its training faces' latents, so that
        ``hypersiren sample`` needs only the checkpoint (``hypersiren.generate``)."""
        if self.model.latent_dim is None:
            return {}
        from hypersiren.generate import fit_latent_density

        with self.evaluating():
            density = fit_latent_density(self.model, self.faces.faces, self.config["batch_size"])
        return {"latent_density": density.state()}

    def batch(self, step: int) -> tuple[Tensor, ...]:
        from hypersiren.data.context import training_masks

        faces = from_unit(self.faces.sample())
        batch, resolution = faces.shape[0], self.resolution
        masks = training_masks(batch, resolution).to(self.device)
        values = faces.flatten(2).transpose(1, 2)  # (B, R*R, 3)
        coords = self.coords.expand(batch, -1, -1)
        k = self.config.get("target_pixels") or 0
        if 0 < k < resolution * resolution:
            chosen = torch.rand(batch, resolution * resolution).argsort(dim=1)[:, :k].to(self.device)
            coords = coords.gather(1, chosen[..., None].expand(-1, -1, 2))
            values = values.gather(1, chosen[..., None].expand(-1, -1, 3))
        return faces, masks, coords, values

    def loss(self, model, batch):
        return model(*batch)

    def complete(self, images_unit: Tensor, masks: Tensor) -> Tensor:
        return complete_faces(self.model, images_unit, masks)

    @contextlib.contextmanager
    def evaluating(self):
        """Eval mode, and torch's RNG restored afterwards: evaluating never changes training (resume equivalence)."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=[]):
                yield
        finally:
            self.model.train(was_training)

    def metrics(self) -> dict[str, float]:
        from hypersiren.evaluation import evaluate_completion

        with self.evaluating():
            results, _ = evaluate_completion(self.complete, self.held_out, seed=0,
                                             settings=feasible_settings(TRAIN_SETTINGS, self.resolution),
                                             batch_size=self.config["batch_size"], progress=False)
        return {f"psnr_{s}": r["psnr"] for s, r in results.items()} | {f"ssim_{s}": r["ssim"] for s, r in results.items()}

    def completion_grid(self) -> Tensor:
        """Rows of held-out faces; per setting context | completion, then the ground truth. (3, H, W) in [0, 1]."""
        from hypersiren.evaluation import completion_figure

        examples = {s: self.complete(self.pictures, masks).cpu() for s, masks in self.picture_masks.items()}
        return completion_figure(self.pictures.cpu(), examples, {s: m.cpu() for s, m in self.picture_masks.items()})

    def summaries(self, writer, step: int) -> None:
        with self.evaluating():
            self._summaries(writer, step)

    def _summaries(self, writer, step: int) -> None:
        writer.add_image("completions", self.completion_grid(), step)
        with torch.no_grad():
            code = self.model.infer(from_unit(self.held_out), self.picture_masks["half"][:1].expand(len(self.held_out), -1, -1))
        if isinstance(code, Tensor):
            writer.add_histogram("latent (top half known)", code, step)

    def write_outputs(self, out_dir: Path) -> list[Path]:
        path = out_dir / "completions.png"
        with self.evaluating():
            save_image(self.completion_grid(), path)
        return [path]
