"""Paper figure (section 4.3): the SIREN solution of the Helmholtz equation beside the exact field.

    python eval/helmholtz.py --out runs/eval-helmholtz [--skip-training] [options of `hypersiren fit helmholtz`]

Trains ``hypersiren fit helmholtz`` into ``--out`` (every option of the command applies), or with
``--skip-training`` reads the finished run there, then writes ``helmholtz_figure.png`` beside it: Re u of the
network and of the exact field (i/4) H0^(1)(k r) on one colour scale, the error |u - u_exact|, and both along the
line through the source; the PML is outlined. For a velocity model with an inclusion (no exact field) it shows
Re u, Im u and |u|.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hypersiren import experiments
from hypersiren.config import option
from hypersiren.tasks.helmholtz import Helmholtz
from hypersiren.viz import pyplot, save_figure

SIZE = 256


@dataclass(frozen=True, kw_only=True)
class HelmholtzFigure(Helmholtz.Config):
    out: str = option("runs/eval-helmholtz", "run directory, where the figure goes too")
    skip_training: bool = option(False, "use the finished run in --out")


def figure(task: Helmholtz, path: Path) -> None:
    plt = pyplot()
    fit = task.field(SIZE).numpy()
    inner = 1 - task.pml.width
    extent = (-1, 1, 1, -1)
    outline = dict(xy=(-inner, -inner), width=2 * inner, height=2 * inner, fill=False, color="0.5", lw=0.8, ls="--")
    if task.homogeneous:
        exact = task.exact_field(SIZE).numpy()
        scale = np.quantile(np.abs(exact.real[task.eval_mask.reshape(SIZE, SIZE).cpu().numpy()]), 0.99)
        panels = [("network Re u", fit.real, "RdBu", -scale, scale), ("exact Re u", exact.real, "RdBu", -scale, scale),
                  ("|u - u_exact|", np.abs(fit - exact), "magma", 0, scale)]
    else:
        scale = np.quantile(np.abs(fit), 0.99)
        panels = [("network Re u", fit.real, "RdBu", -scale, scale), ("network Im u", fit.imag, "RdBu", -scale, scale),
                  ("network |u|", np.abs(fit), "magma", 0, scale)]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2), gridspec_kw={"width_ratios": [1, 1, 1, 1.4]})
    for ax, (title, image, cmap, low, high) in zip(axes, panels):
        shown = ax.imshow(image, cmap=cmap, vmin=low, vmax=high, extent=extent)
        ax.add_patch(plt.Rectangle(**outline))
        ax.set_title(title)
        fig.colorbar(shown, ax=ax, fraction=0.046)
    row = SIZE // 2
    x = np.linspace(-1, 1, SIZE)
    axes[3].plot(x, fit.real[row], label="network Re u")
    if task.homogeneous:
        axes[3].plot(x, exact.real[row], "k--", lw=1, label="exact Re u")
    axes[3].axvspan(-1, -inner, color="0.9")
    axes[3].axvspan(inner, 1, color="0.9", label="PML")
    axes[3].set_ylim(-1.5 * scale, 1.5 * scale)
    axes[3].set_title(f"profile through the source (k = {task.k:g})")
    axes[3].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def run(config: HelmholtzFigure) -> None:
    experiments.train_then_figure(Helmholtz, experiments.task_config(Helmholtz, config), config.skip_training, figure,
                                  Path(config.out) / "helmholtz_figure.png")


def main(argv: list[str] | None = None) -> int:
    return experiments.main(HelmholtzFigure, run, argv, prog="helmholtz")


if __name__ == "__main__":
    sys.exit(main())
