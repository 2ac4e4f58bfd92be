"""Paper figure 1: one image fitted by SIREN and by the baselines, with each fit's gradient and Laplacian.

    python eval/figure1.py --out runs/eval-figure1 [--steps 500] [--size 256] [--image camera] [--models ...]

Fits the image with every network of ``hypersiren fit image --model`` (siren, relu, relu-pe, fourier, tanh)
through the shared engine, one run directory per model under ``--out``, then writes into ``--out``:
``figure1.png`` (rows: ground truth, then each fit; columns: image, gradient magnitude, Laplacian),
``figure1.md`` (PSNR table) and ``metrics.json``. The fits' derivatives are exact (autograd); the ground
truth's come from the Sobel and Laplace filters of ``poisson-grad``/``poisson-lapl`` (nearest-pixel borders), in
the same units (coordinates in [-1, 1]). Every row of a column shares the ground truth's colour scale.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hypersiren import experiments
from hypersiren.config import option, override
from hypersiren.data.image import from_unit
from hypersiren.experiments import FitComparison
from hypersiren.nn import MODEL_NAMES
from hypersiren.render import render_derivatives
from hypersiren.tasks.image import FitImage
from hypersiren.tasks.poisson import discrete_laplacian, sobel_gradients
from hypersiren.viz import pyplot, save_figure


@dataclass(frozen=True, kw_only=True)
class Figure1(FitComparison):
    out: str = override(FitComparison, "out", "runs/eval-figure1")
    image: str = option("camera", "image file or built-in camera/astronaut")
    steps: int = override(FitComparison, "steps", 500)
    models: tuple[str, ...] = override(FitComparison, "models", MODEL_NAMES)

    def runs(self) -> dict[str, tuple]:
        return {model: (FitImage, FitImage.Config(input=self.image, **self.fit_options(model, model)))
                for model in dict.fromkeys(self.models)}


def _picture(image) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) for gray, (H, W, 3) for colour."""
    array = image.permute(1, 2, 0).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def ground_truth_row(task: FitImage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, gradient magnitude, Laplacian) of the image, derivatives averaged over channels."""
    values = from_unit(task.image.double())
    gradient = sobel_gradients(values, mode="nearest").norm(dim=-1).mean(dim=-1).reshape(task.shape)
    laplacian = discrete_laplacian(values, mode="nearest").mean(dim=-1).reshape(task.shape)
    return _picture(task.image.double()), gradient.numpy(), laplacian.numpy()


def fit_row(task: FitImage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same three panels for the trained network: its fit and its autograd gradient and Laplacian."""
    _, grads, lapls = render_derivatives(task.model, task.shape, device=task.device)
    grad_norm = grads.norm(dim=-1).mean(dim=-1).cpu().numpy()
    return _picture(task.fit_image()), grad_norm, lapls.mean(dim=-1).cpu().numpy()


def figure(rows: list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]], path: Path) -> None:
    """Rows of (label, panels); the first row (ground truth) sets each column's colour scale."""
    plt = pyplot()
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
    save_figure(fig, path, dpi=100)


def table(metrics: dict[str, dict], config: Figure1) -> str:
    caption = (f"Fit of `{config.image}` at {config.size} px, {config.steps} steps, Adam lr {config.lr:g}, full batch, "
               f"{config.hidden_layers} hidden layers of {config.hidden_features} (seed {config.seed}).")
    rows = [[name, f"{m['psnr']:.2f}", f"{m['sec_per_step']:.3f}", f"{int(m['params']):,}"] for name, m in metrics.items()]
    return experiments.markdown_table(caption, ["model", "PSNR (dB)", "s/step", "parameters"], rows)


def run(config: Figure1) -> None:
    results = experiments.train_all(config.runs())
    metrics = {name: m for name, (_, m) in results.items()}
    rows = [(f"{name}\n{m['psnr']:.2f} dB", fit_row(task)) for name, (task, m) in results.items()]
    first_task = next(iter(results.values()))[0]
    figure([("ground truth", ground_truth_row(first_task))] + rows, Path(config.out) / "figure1.png")
    experiments.write_results(config.out, "figure1", table(metrics, config), metrics, figures=("figure1.png",))


def main(argv: list[str] | None = None) -> int:
    return experiments.main(Figure1, run, argv, prog="figure1")


if __name__ == "__main__":
    sys.exit(main())
