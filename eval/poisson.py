"""Paper section 4.1 (Poisson image reconstruction): an image reconstructed from its gradients alone and from its
Laplacian alone, by SIREN and by the ReLU and tanh baselines.

    python eval/poisson.py --out runs/eval-poisson [--steps 1000] [--size 256] [--image camera] [--models ...]

Trains ``hypersiren fit poisson-grad`` and ``poisson-lapl`` with every network of ``--models`` through the shared
engine (one run directory each under ``--out``), then writes into ``--out``: ``poisson.png`` (rows: gradients,
Laplacian; columns: ground truth, the supervising derivative, then each network's reconstruction with its
PSNR), ``poisson.md`` (PSNR table) and ``metrics.json``. PSNRs are measured after adding the best constant
(gradients) or affine function (Laplacian), which the derivatives cannot determine.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hypersiren import experiments
from hypersiren.config import option, override
from hypersiren.experiments import FitComparison
from hypersiren.tasks.poisson import PoissonGradient, PoissonLaplacian
from hypersiren.viz import pyplot, save_figure

TASKS = {"gradient": PoissonGradient, "laplacian": PoissonLaplacian}


@dataclass(frozen=True, kw_only=True)
class Poisson(FitComparison):
    out: str = override(FitComparison, "out", "runs/eval-poisson")
    image: str = option("camera", "image file or built-in camera/astronaut")
    models: tuple[str, ...] = override(FitComparison, "models", ("siren", "relu", "tanh"))
    derivatives: tuple[str, ...] = option(tuple(TASKS), "supervision to compare", choices=tuple(TASKS))

    def runs(self) -> dict[tuple[str, str], tuple]:
        return {(d, m): (TASKS[d], TASKS[d].Config(input=self.image, **self.fit_options(m, f"{TASKS[d].name}-{m}")))
                for d in dict.fromkeys(self.derivatives) for m in dict.fromkeys(self.models)}


def figure(rows: dict[str, list[tuple[str, np.ndarray]]], path: Path) -> None:
    """One row per derivative of (title, (H, W, 3) picture in [0, 1]) panels."""
    plt = pyplot()
    columns = max(len(panels) for panels in rows.values())
    fig, axes = plt.subplots(len(rows), columns, figsize=(2.4 * columns, 2.6 * len(rows)), squeeze=False)
    for r, (derivative, panels) in enumerate(rows.items()):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(panels):
                ax.imshow(panels[c][1])
                ax.set_title(panels[c][0], fontsize=9)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(f"from {derivative}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _picture(image) -> np.ndarray:
    """(C, H, W) tensor in [0, 1] -> (H, W, 3) array."""
    return image.expand(3, -1, -1).permute(1, 2, 0).cpu().numpy()


def table(metrics: dict[str, dict[str, dict]], config: Poisson) -> str:
    models = list(dict.fromkeys(config.models))
    caption = (f"Poisson reconstruction of `{config.image}` at {config.size} px, {config.steps} steps, Adam lr "
               f"{config.lr:g}, full batch, {config.hidden_layers} hidden layers of {config.hidden_features} (seed "
               f"{config.seed}). PSNR (dB) after the best constant (gradients) / affine function (Laplacian).")
    rows = [[derivative, *(f"{per_model[m]['psnr']:.2f}" for m in models)] for derivative, per_model in metrics.items()]
    return experiments.markdown_table(caption, ["supervised on", *models], rows)


def run(config: Poisson) -> None:
    metrics: dict[str, dict[str, dict]] = {}
    rows: dict[str, list] = {}
    for (derivative, model), (task, result) in experiments.train_all(config.runs()).items():
        metrics.setdefault(derivative, {})[model] = result
        panels = rows.setdefault(derivative, [("ground truth", _picture(task.image)),
                                              (f"target {derivative}", _picture(task.target_image()))])
        panels.append((f"{model}: {result['psnr']:.1f} dB", _picture(task.fit_image())))
    figure(rows, Path(config.out) / "poisson.png")
    experiments.write_results(config.out, "poisson", table(metrics, config), metrics, figures=("poisson.png",))


def main(argv: list[str] | None = None) -> int:
    return experiments.main(Poisson, run, argv, prog="poisson")


if __name__ == "__main__":
    sys.exit(main())
