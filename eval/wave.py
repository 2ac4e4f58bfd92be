"""Paper figure (section 4.3): frames of the SIREN wave-equation solution beside a finite-difference reference.

    python eval/wave.py --out runs/eval-wave [--skip-training] [options of `hypersiren fit wave`]

Trains ``hypersiren fit wave`` into ``--out`` (every option of the command applies), or with ``--skip-training``
reads the finished run there, then writes ``wave_figure.png`` beside it: the network's field and the reference at
the evaluation times (one colour scale per time, relative L2 error in each title) and both along y = 0.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hypersiren import experiments
from hypersiren.config import option
from hypersiren.tasks.wave import Wave
from hypersiren.viz import pyplot, save_figure


@dataclass(frozen=True, kw_only=True)
class WaveFigure(Wave.Config):
    out: str = option("runs/eval-wave", "run directory, where the figure goes too")
    skip_training: bool = option(False, "use the finished run in --out")


def figure(task: Wave, path: Path) -> None:
    plt = pyplot()
    fit, reference = task.frames().numpy(), task.reference.numpy()
    n, columns = reference.shape[-1], len(task.times)
    fig, axes = plt.subplots(3, columns, figsize=(3 * columns, 8.6), squeeze=False)
    x = np.linspace(-1, 1, n)
    for i, t in enumerate(task.times):
        scale = max(np.abs(reference[i]).max(), 1e-12)
        error = np.linalg.norm(fit[i] - reference[i]) / np.linalg.norm(reference[i])
        for row, (name, field) in enumerate((("network", fit[i]), ("finite differences", reference[i]))):
            axes[row, i].imshow(field, cmap="RdBu", vmin=-scale, vmax=scale, extent=(-1, 1, 1, -1))
            axes[row, i].set_title(f"{name}, t = {t:.3g}" + (f"\nrel. L2 error {error:.3f}" if row == 0 else ""), fontsize=9)
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
        axes[2, i].plot(x, reference[i, n // 2], "k--", lw=1, label="finite differences")
        axes[2, i].plot(x, fit[i, n // 2], lw=1, label="network")
        axes[2, i].set_title(f"through the centre, t = {t:.3g}", fontsize=9)
    axes[2, 0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def run(config: WaveFigure) -> None:
    experiments.train_then_figure(Wave, experiments.task_config(Wave, config), config.skip_training, figure,
                                  Path(config.out) / "wave_figure.png")


def main(argv: list[str] | None = None) -> int:
    return experiments.main(WaveFigure, run, argv, prog="wave")


if __name__ == "__main__":
    sys.exit(main())
