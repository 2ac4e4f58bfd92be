"""The image-completion evaluation protocol of the paper (section 4.4, Table 1): complete held-out faces from
10, 100 or 1000 random pixels, the top half, or every pixel, and score the completions.

Scores per image, then averaged over images: MSE in [0, 1] pixel space (mean over all pixels and channels),
PSNR = 10 log10(1 / MSE) (capped at ``PSNR_CAP_DB`` for exact completions so averages stay finite) and SSIM
(skimage's definition, data range 1). Context masks come from a generator seeded with ``seed`` afresh for each
setting, so every model sees the same contexts.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from hypersiren.data.context import hide_unknown
from hypersiren.errors import InputError

SETTINGS = ("10", "100", "1000", "half", "full")
PSNR_CAP_DB = 100.0
# The paper's Table 1: MSE of completions at 32 x 32 after training on all of CelebA.
PAPER_TABLE1 = {
    "CNN encoder": {"10": 0.033, "100": 0.009, "1000": 0.008, "half": 0.020, "full": 0.008},
    "sine set encoder": {"10": 0.035, "100": 0.013, "1000": 0.009, "half": 0.022, "full": 0.009},
}
SETTING_NAMES = {"half": "top half", "full": "full image"}


class CompletionExamples(dict):
    """Example completions (K, 3, R, R) in [0, 1] per setting (the first K evaluated images), with the
    context masks (K, R, R) they were completed from in ``masks``, the context ``seed``, the number of
    evaluated images ``count`` and the wall-clock ``seconds`` spent completing (all settings)."""

    def __init__(self, seed: int, count: int):
        super().__init__()
        self.masks: dict[str, Tensor] = {}
        self.seed, self.count, self.seconds = seed, count, 0.0


def _check_settings(settings, resolution: int) -> tuple[str, ...]:
    from hypersiren.data.context import evaluation_masks

    settings = tuple(str(s) for s in settings)
    if not settings:
        raise InputError(f"no evaluation settings given; expected some of {', '.join(SETTINGS)}")
    for setting in settings:
        evaluation_masks(setting, 1, resolution, torch.Generator())  # raises InputError for an unknown or impossible setting
    return settings


def _check_images(images_unit: Tensor) -> None:
    if images_unit.dim() != 4 or images_unit.shape[1] != 3 or images_unit.shape[2] != images_unit.shape[3]:
        raise InputError(f"images must be (N, 3, R, R), got shape {tuple(images_unit.shape)}")
    if len(images_unit) == 0:
        raise InputError("no images to evaluate")
    if not images_unit.is_floating_point() or images_unit.min() < 0 or images_unit.max() > 1:
        raise InputError(f"images must be floats in [0, 1], got {images_unit.dtype} values in "
                         f"[{float(images_unit.min()):g}, {float(images_unit.max()):g}]")
    if images_unit.shape[-1] < 3:
        raise InputError(f"images must be at least 3x3 pixels for SSIM, got {images_unit.shape[-1]}")


def score_completions(completions: Tensor, truth: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image MSE, PSNR (dB, capped at PSNR_CAP_DB) and SSIM of (B, 3, R, R) images in [0, 1]: three (B,)."""
    from hypersiren.metrics import ssim

    mse = (completions.double() - truth.double()).square().flatten(1).mean(dim=1)
    psnr = (10 * torch.log10(1 / mse)).clamp(max=PSNR_CAP_DB)
    return mse, psnr, ssim(completions, truth, data_range=1.0)


def evaluate_completion(complete: Callable[[Tensor, Tensor], Tensor], images_unit: Tensor, *,
                        settings=SETTINGS, seed: int = 0, batch_size: int = 50, progress: bool = True,
                        num_examples: int = 8) -> tuple[dict[str, dict[str, float]], CompletionExamples]:
    """Score ``complete`` on every image of ``images_unit`` (N, 3, R, R) in [0, 1] under each setting.

    complete(images (B, 3, R, R) in [0, 1], masks (B, R, R) bool) -> completions (B, 3, R, R) in [0, 1]
    (clamped to [0, 1] before scoring). It runs under torch.no_grad() (a completer that optimises must enable
    grad itself), and pixels outside the mask are zeroed before it sees them, so it cannot peek.
    Settings: "10", "100", "1000" (or any count: that many random pixels), "half" (top half), "full".
    Returns ({setting: {"mse", "psnr", "ssim"}} means over images, CompletionExamples of the first
    ``num_examples`` images).
    """
    from tqdm.auto import tqdm

    from hypersiren.data.context import evaluation_masks

    _check_images(images_unit)
    settings = _check_settings(settings, images_unit.shape[-1])
    if batch_size < 1 or num_examples < 1:
        raise InputError(f"batch size and number of examples must be positive, got {batch_size} and {num_examples}")
    count, resolution = len(images_unit), images_unit.shape[-1]
    starts = range(0, count, batch_size)
    metrics, examples = {}, CompletionExamples(seed, count)
    bar = tqdm(total=len(settings) * len(starts), desc="evaluating completions", unit="batch", disable=not progress)
    with torch.no_grad():
        for setting in settings:
            generator = torch.Generator().manual_seed(seed)
            scores, first_completions, first_masks = [], [], []
            for start in starts:
                truth = images_unit[start : start + batch_size]
                masks = evaluation_masks(setting, len(truth), resolution, generator).to(truth.device)
                tick = time.perf_counter()
                completions = complete(hide_unknown(truth, masks), masks)
                examples.seconds += time.perf_counter() - tick
                if not isinstance(completions, Tensor) or completions.shape != truth.shape:
                    raise InputError(f"the completer returned {getattr(completions, 'shape', type(completions))}; "
                                     f"expected completions of shape {tuple(truth.shape)}")
                if not torch.isfinite(completions).all():
                    raise InputError(f"the completer returned NaN or Inf values at context {setting!r}")
                completions = completions.detach().to(truth.device, truth.dtype).clamp(0, 1)
                scores.append(torch.stack(score_completions(completions, truth), dim=1).cpu())
                if start < num_examples:
                    first_completions.append(completions[: num_examples - start].cpu())
                    first_masks.append(masks[: num_examples - start].cpu())
                bar.update()
            means = torch.cat(scores).mean(dim=0).tolist()
            metrics[setting] = {"mse": means[0], "psnr": means[1], "ssim": means[2]}
            examples[setting] = torch.cat(first_completions)
            examples.masks[setting] = torch.cat(first_masks)
    bar.close()
    return metrics, examples


def example_masks(settings, count: int, resolution: int, seed: int = 0) -> dict[str, Tensor]:
    """The masks (count, R, R) ``evaluate_completion`` used for its first ``count`` images with this seed."""
    from hypersiren.data.context import evaluation_masks

    return {s: evaluation_masks(s, count, resolution, torch.Generator().manual_seed(seed)) for s in settings}


def results_table(metrics: dict[str, dict[str, float]], count: int, resolution: int, seed: int | None = None) -> str:
    """Markdown: one row per setting with our MSE, PSNR and SSIM beside the paper's Table 1 MSEs."""
    paper = list(PAPER_TABLE1)
    lines = [f"Completion of {count} held-out faces at {resolution}x{resolution}"
             + (f" (context seed {seed})" if seed is not None else "") + ". MSE in [0, 1] pixel space, per-image "
             f"means; PSNR capped at {PSNR_CAP_DB:g} dB. Paper: Table 1 of Sitzmann et al. 2020 (MSE, full CelebA).",
             "",
             "| context | known pixels | MSE | PSNR (dB) | SSIM | " + " | ".join(f"paper MSE, {p}" for p in paper) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(paper)]
    for setting, values in metrics.items():
        known = resolution * resolution if setting == "full" else (resolution // 2) * resolution if setting == "half" \
            else int(setting)
        reference = [f"{PAPER_TABLE1[p][setting]:.3f}" if setting in PAPER_TABLE1[p] else "-" for p in paper]
        lines.append(f"| {SETTING_NAMES.get(setting, setting + ' pixels')} | {known} | {values['mse']:.4f} | "
                     f"{values['psnr']:.2f} | {values['ssim']:.3f} | " + " | ".join(reference) + " |")
    return "\n".join(lines) + "\n"


def evaluate_prior(prior, images_unit: Tensor, *, refine_steps: int = 0, lr: float = 1e-2, penalty: float = 1e-2,
                   weights: bool = False, warm_up: bool = False, **options) -> tuple[dict, CompletionExamples]:
    """``evaluate_completion`` of a ``FunctionPrior`` completing through ``hypersiren.priors.inference.complete``
    (refined ``refine_steps`` times with ``lr``, ``penalty``, ``weights``). warm_up: complete two faces first,
    so one-off costs (first autograd/vmap calls) stay out of the timing. ``options``: those of
    ``evaluate_completion``."""
    from hypersiren.priors import inference

    def complete(images: Tensor, masks: Tensor) -> Tensor:
        return inference.complete(prior, images, masks, refine_steps=refine_steps, lr=lr, penalty=penalty,
                                  weights=weights)

    if warm_up:
        with torch.no_grad():
            complete(images_unit[:2], torch.ones(len(images_unit[:2]), *images_unit.shape[-2:], dtype=torch.bool,
                                                 device=images_unit.device))
    return evaluate_completion(complete, images_unit, **options)


def write_evaluation(out_dir: str | Path, metrics: dict[str, dict[str, float]], examples: dict[str, Tensor],
                     images_unit: Tensor, masks_by_setting: dict[str, Tensor] | None = None, *,
                     seed: int | None = None) -> list[Path]:
    """Write ``metrics.json`` ({setting: {"mse", "psnr", "ssim"}}), ``table.md`` (beside the paper's Table 1)
    and ``completions.png`` (example faces: context | completion per setting, then ground truth) into
    ``out_dir``. images_unit: the evaluated faces (N, 3, R, R), in evaluation order. Masks and seed default to
    those stored in ``examples`` (a CompletionExamples), else masks are ``example_masks(..., seed or 0)``.
    Returns the paths written."""
    from hypersiren.data.image import save_image
    from hypersiren.io import atomic_write, prepare_output_dir, write_json
    from hypersiren.viz import completion_figure

    if set(examples) != set(metrics):
        raise InputError(f"examples cover settings {sorted(examples)} but metrics cover {sorted(metrics)}")
    count = min(len(v) for v in examples.values())
    seed = getattr(examples, "seed", 0) if seed is None else seed
    if masks_by_setting is None:
        masks_by_setting = getattr(examples, "masks", None) or example_masks(list(examples), count,
                                                                              images_unit.shape[-1], seed)
    figure = completion_figure(images_unit, examples, masks_by_setting)
    out_dir = prepare_output_dir(out_dir)
    paths = [out_dir / "metrics.json", out_dir / "table.md", out_dir / "completions.png"]
    write_json(paths[0], metrics)
    with atomic_write(paths[1], "w") as f:
        f.write(results_table(metrics, len(images_unit), images_unit.shape[-1], seed))
    save_image(figure, paths[2])
    return paths
