"""Generative use of a trained face prior (hypernet or functa): sampled faces, interpolations between held-out
faces, and several completions of held-out faces from a few pixels, with numbers for the README.

    python eval/generative_figure.py --checkpoint runs/prior/checkpoint.safetensors \
        --data /path/to/celeba-faces --out runs/generative

Writes OUT/samples.png (rows at temperature 1, 0.7 and 0.4), OUT/interpolations.png (one strip per pair of
held-out faces: A | faces on the latent segment | B), OUT/completions_<context>.png (per held-out face: context |
sampled completions | ground truth) and OUT/metrics.json: per context, the context MSE of the sampled
completions against that of unconditional samples (lower = they honour the context), their diversity (mean
pairwise RMS difference) and the PSNR of the single predicted completion, of the average sampled one and of the
best sampled one (all on held-out faces, training resolution, [0, 1] pixels).
"""
import sys
from dataclasses import dataclass

import torch
from torch import Tensor

from hypersiren import experiments
from hypersiren.config import Config, non_negative_int, option, positive_float, positive_int
from hypersiren.data.faces import load_faces
from hypersiren.data.image import resize, save_image
from hypersiren.evaluation import score_completions
from hypersiren.io import prepare_output_dir, write_json
from hypersiren.prior import HyperSiren
from hypersiren.viz import side_by_side, stack_rows


@dataclass(frozen=True, kw_only=True)
class GenerativeFigure(Config):
    checkpoint: str = option(help="prior checkpoint (hypernet or functa)")
    data: str = option(help="the faces it was trained on (held-out split used here)")
    val_fraction: float = option(0.1, "hold-out share used in training", check=positive_float)
    out: str = option("runs/generative", "output directory")
    resolution: int = option(64, "rendering resolution of the pictures", check=positive_int)
    num: int = option(6, "sampled completions per face", check=positive_int)
    faces: int = option(20, "held-out faces for the numbers", check=positive_int)
    seed: int = option(0, "random seed", check=non_negative_int)


def context_mse(images: Tensor, truth: Tensor, masks: Tensor) -> Tensor:
    """MSE over the known pixels of each image: images (..., 3, R, R), truth (3, R, R) per image, masks (R, R)."""
    weights = masks.float()
    return ((images - truth).square().mean(dim=-3) * weights).sum(dim=(-1, -2)) / weights.sum()



def completion_numbers(prior: HyperSiren, faces: Tensor, context: dict, num: int, seed: int) -> dict:
    """Numbers of ``num`` sampled completions of each face (N, 3, R, R) from ``context`` (HyperSiren kwargs)."""
    _, _, masks, _ = prior.context(faces, **context, seed=seed)
    masks = masks.cpu()
    sampled = prior.complete_samples(faces, **context, num=num, resolution=prior.resolution, seed=seed).cpu()
    predicted = prior.complete(faces, **context, resolution=prior.resolution, seed=seed).cpu()
    free = prior.sample(num, prior.resolution, seed=seed + 1).cpu()
    fit = torch.stack([context_mse(sampled[i], faces[i], masks[i]) for i in range(len(faces))])  # (N, num)
    free_fit = torch.stack([context_mse(free, faces[i], masks[i]) for i in range(len(faces))])
    flat = sampled.flatten(2)
    pairwise = torch.cdist(flat, flat) / flat.shape[-1] ** 0.5  # RMS difference of two completions of one face
    off_diagonal = ~torch.eye(num, dtype=torch.bool)
    psnr = score_completions(sampled.flatten(0, 1), faces.repeat_interleave(num, 0))[1].reshape(len(faces), num)
    return {"context_mse_sampled": fit.mean().item(), "context_mse_unconditional": free_fit.mean().item(),
            "diversity_rms": pairwise[:, off_diagonal].mean().item(),
            "psnr_predicted": score_completions(predicted, faces)[1].mean().item(),
            "psnr_mean_of_samples": score_completions(sampled.mean(dim=1), faces)[1].mean().item(),
            "psnr_best_sample": psnr.max(dim=1).values.mean().item(),
            "psnr_samples": psnr.mean().item()}


def run(config: GenerativeFigure) -> None:
    out = prepare_output_dir(config.out)
    prior = HyperSiren.load(config.checkpoint)
    if prior.density is None:
        prior.fit_density(load_faces(config.data, "train", prior.resolution, val_fraction=config.val_fraction))
    held_out = load_faces(config.data, "val", prior.resolution, val_fraction=config.val_fraction)
    r = config.resolution

    rows = [side_by_side(list(prior.sample(8, r, temperature=t, seed=config.seed).cpu())) for t in (1.0, 0.7, 0.4)]
    save_image(stack_rows(rows), out / "samples.png")

    strips = []
    for a, b in ((0, 1), (2, 3), (4, 5)):
        frames = prior.interpolate(held_out[a], held_out[b], steps=8, resolution=r).cpu()
        ends = resize(held_out[[a, b]], r, r)
        strips.append(side_by_side([ends[0], *frames, ends[1]]))
    save_image(stack_rows(strips), out / "interpolations.png")

    numbers = {"density": {"faces": prior.density.faces, "shrinkage": prior.density.gaussian.shrinkage,
                           "noise_rms": prior.density.noise, "latent_dim": prior.density.gaussian.dim},
               "held_out_faces": min(config.faces, len(held_out)), "samples_per_face": config.num}
    for name, context in (("100", dict(num_pixels=100)), ("half", dict(mask="half"))):
        picture = prior.complete_samples_side_by_side(held_out[:4], **context, num=config.num, resolution=r, seed=config.seed)
        save_image(picture, out / f"completions_{name}.png")
        numbers[name] = completion_numbers(prior, held_out[: config.faces], context, config.num, config.seed)
    write_json(out / "metrics.json", numbers)
    print(numbers)
    print(f"wrote {out}/ (samples.png, interpolations.png, completions_100.png, completions_half.png, metrics.json)")


def main(argv: list[str] | None = None) -> int:
    return experiments.main(GenerativeFigure, run, argv, prog="generative_figure")


if __name__ == "__main__":
    sys.exit(main())
