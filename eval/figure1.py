"""Paper figure 1: one image fitted by SIREN and by the baselines, with each fit's gradient and Laplacian.

    python eval/figure1.py --out runs/eval-figure1 [--steps 500] [--size 256] [--image camera] [--models ...]

Fits the image with every network of ``hypersiren fit image --model`` (siren, relu, relu-pe, fourier, tanh)
through the shared engine, one run directory per model under ``--out``, then writes into ``--out``:
``figure1.png`` (rows: ground truth, then each fit; columns: image, gradient magnitude, Laplacian),
``figure1.md`` (PSNR table) and ``metrics.json``. The fits' derivatives are exact (autograd); the ground
truth's come from Sobel and Laplace filters, scaled to the same units (coordinates in [-1, 1], so the pixel
spacing is 2/(n-1)). Every row of a column shares the ground truth's colour scale, so magnitudes compare.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hypersiren.data.grid import grid_spacing
from hypersiren.engine import TrainOptions, train
from hypersiren.errors import HypersirenError
from hypersiren.io import atomic_write, check_output_dir, write_table_and_metrics
from hypersiren.nn import MODEL_NAMES
from hypersiren.render import render_derivatives
from hypersiren.runtime import resolve_device, seed_everything
from hypersiren.tasks.image import FitImage


def image_derivatives(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient magnitude and Laplacian of an image given as network values (H, W) on grid(H, W), from the
    Sobel and the 3-point Laplace stencils: derivatives per unit coordinate (pixel spacing 2/(n-1))."""
    from scipy import ndimage

    spacing = [grid_spacing(n) for n in values.shape]
    # Sobel = central difference (2 h f') smoothed by [1, 2, 1] (sum 4) across: 8 h f' on a linear ramp.
    gradient = [ndimage.sobel(values, axis=a, mode="nearest") / (8 * h) for a, h in enumerate(spacing)]
    laplacian = sum(ndimage.correlate1d(values, [1.0, -2.0, 1.0], axis=a, mode="nearest") / h**2
                    for a, h in enumerate(spacing))
    return np.hypot(*gradient), laplacian


def ground_truth_row(task: FitImage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image in [0, 1] as (H, W) or (H, W, 3), gradient magnitude, Laplacian) averaged over channels."""
    image = task.image.permute(1, 2, 0).numpy().astype(np.float64)
    values = image * 2 - 1
    grads, lapls = zip(*(image_derivatives(values[..., c]) for c in range(values.shape[-1])))
    return image.squeeze(-1) if image.shape[-1] == 1 else image, np.mean(grads, axis=0), np.mean(lapls, axis=0)


def fit_row(task: FitImage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same three panels for the trained network: its fit and its autograd gradient and Laplacian."""
    image = task.fit_image().permute(1, 2, 0).numpy()
    _, grads, lapls = render_derivatives(task.model, task.shape, device=task.device)
    grad_norm = grads.norm(dim=-1).mean(dim=-1).cpu().numpy()
    return image.squeeze(-1) if image.shape[-1] == 1 else image, grad_norm, lapls.mean(dim=-1).cpu().numpy()


def figure(rows: list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]], path: Path) -> None:
    """Rows of (label, panels); the first row (ground truth) sets each column's colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, (_, gt_grad, gt_lapl) = rows[0]
    grad_high = float(np.quantile(gt_grad, 0.99))
    lapl_high = float(np.quantile(np.abs(gt_lapl), 0.99))
    styles = [dict(cmap="gray", vmin=0, vmax=1), dict(cmap="viridis", vmin=0, vmax=grad_high),
              dict(cmap="RdBu", vmin=-lapl_high, vmax=lapl_high)]
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.5 * len(rows)), squeeze=False)
    for r, (label, panels) in enumerate(rows):
        for c, (panel, style) in enumerate(zip(panels, styles)):
            ax = axes[r, c]
            ax.imshow(panel, **(style if panel.ndim == 2 else {}))
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=10)
    for ax, title in zip(axes[0], ("image", "gradient magnitude", "Laplacian")):
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def table(metrics: dict[str, dict], args: argparse.Namespace) -> str:
    lines = [f"Fit of `{args.image}` at {args.size} px, {args.steps} steps, Adam lr {args.lr:g}, full batch, "
             f"3 hidden layers of 256 (seed {args.seed}).", "",
             "| model | PSNR (dB) | s/step | parameters |", "|---|---:|---:|---:|"]
    for name, m in metrics.items():
        lines.append(f"| {name} | {m['psnr']:.2f} | {m['sec_per_step']:.3f} | {int(m['params']):,} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from hypersiren.tasks.base import non_negative_int, positive_float, positive_int

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/eval-figure1", help="output directory (default: runs/eval-figure1)")
    parser.add_argument("--image", default="camera", help="image file or built-in camera/astronaut (default: camera)")
    parser.add_argument("--size", type=positive_int, default=256, help="longer side in pixels (default: 256)")
    parser.add_argument("--steps", type=positive_int, default=500, help="training steps per model (default: 500)")
    parser.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate (default: 1e-4)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: 0)")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES),
                        help=f"networks to fit (default: all: {' '.join(MODEL_NAMES)})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser.parse_args(argv)


def build_tasks(args: argparse.Namespace) -> dict[str, FitImage]:
    """One ``fit image`` task per model, configured exactly as the CLI would (inputs checked here)."""
    device = resolve_device(args.device)
    tasks = {}
    for name in dict.fromkeys(args.models):
        parser = argparse.ArgumentParser()
        FitImage.add_arguments(parser)
        config = vars(parser.parse_args([args.image, "--size", str(args.size), "--model", name]))
        config.update(out=str(Path(args.out) / name), steps=args.steps, lr=args.lr, seed=args.seed, figure1=vars(args))
        seed_everything(args.seed)
        tasks[name] = FitImage(config, device)
    return tasks


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = check_output_dir(args.out)
        tasks = build_tasks(args)  # reads and checks the image before anything is written
        options = TrainOptions(steps=args.steps, lr=args.lr, seed=args.seed, summary_every=0,
                               progress=not args.no_progress, overwrite=True)  # a rerun retrains afresh
        metrics, rows = {}, []
        for name, task in tasks.items():
            metrics[name] = train(task, options, out / name, task.config)
            rows.append((f"{name}\n{metrics[name]['psnr']:.2f} dB", fit_row(task)))
        gt = next(iter(tasks.values()))
        figure([("ground truth", ground_truth_row(gt))] + rows, out / "figure1.png")
        write_table_and_metrics(out, "figure1", table(metrics, args), metrics)
    except HypersirenError as err:
        print(f"figure1: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # the engine checkpointed the model it was training
        print(f"figure1: {err or 'interrupted'}", file=sys.stderr)
        return 130
    print(table(metrics, args), end="")
    print(f"wrote {out}/figure1.png, figure1.md, metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(run())
