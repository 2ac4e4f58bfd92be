"""Paper section 4.1 (image editing): two images blended in the gradient domain, 0.5 grad A + 0.5 grad B.

    python eval/composite.py --out runs/eval-composite [--steps 1000] [--size 256] [--images camera astronaut]

Trains ``hypersiren fit composite A B`` with every network of ``--models`` through the shared engine (one run
directory each under ``--out``; optional ``--mask`` as in the command), then writes into ``--out``:
``composite.png`` (side by side: A, B, the naive pixel blend, then each network's composite in ``--models``
order), ``composite.md`` (how closely each composite's gradients match the blended field: relative RMS error)
and ``metrics.json``.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

from hypersiren import experiments
from hypersiren.config import option, override
from hypersiren.data.image import save_image
from hypersiren.errors import InputError
from hypersiren.experiments import FitComparison
from hypersiren.tasks.composite import Composite
from hypersiren.viz import side_by_side


@dataclass(frozen=True, kw_only=True)
class CompositeFigure(FitComparison):
    out: str = override(FitComparison, "out", "runs/eval-composite")
    images: tuple[str, ...] = option(("camera", "astronaut"), "the two images A B: files or built-in camera/astronaut")
    mask: str | None = option(None, "optional mask image (white = B's gradients)")

    def __post_init__(self):
        super().__post_init__()
        if len(self.images) != 2:
            raise InputError(f"--images takes two images A B, got {len(self.images)}")

    def runs(self) -> dict[str, tuple]:
        return {m: (Composite, Composite.Config(image_a=self.images[0], image_b=self.images[1], mask=self.mask,
                                                **self.fit_options(m, f"composite-{m}")))
                for m in dict.fromkeys(self.models)}


def table(metrics: dict[str, dict], config: CompositeFigure) -> str:
    caption = (f"Gradient-domain composite of `{config.images[0]}` and `{config.images[1]}` at {config.size} px, "
               f"{config.steps} steps, Adam lr {config.lr:g}, full batch, {config.hidden_layers} hidden layers of "
               f"{config.hidden_features} (seed {config.seed}).")
    rows = [[name, f"{m['gradient_relative_error']:.3f}", f"{m['gradient_mse']:.4g}"] for name, m in metrics.items()]
    return experiments.markdown_table(caption, ["model", "gradient relative RMS error", "gradient MSE"], rows)


def run(config: CompositeFigure) -> None:
    results = experiments.train_all(config.runs())
    first = next(iter(results.values()))[0]
    panels = [*first.inputs, first.image] + [task.fit_image() for task, _ in results.values()]
    save_image(side_by_side(panels), Path(config.out) / "composite.png")
    metrics = {model: m for model, (_, m) in results.items()}
    experiments.write_results(config.out, "composite", table(metrics, config), metrics, figures=("composite.png",))


def main(argv: list[str] | None = None) -> int:
    return experiments.main(CompositeFigure, run, argv, prog="composite")


if __name__ == "__main__":
    sys.exit(main())
