"""Paper section 4.1 (Poisson image reconstruction): an image reconstructed from its gradients alone and from its
Laplacian alone, by SIREN and by the ReLU and tanh baselines.

    python eval/poisson.py --out runs/eval-poisson [--steps 1000] [--size 256] [--image camera] [--models ...]

Trains ``hypersiren fit poisson-grad`` and ``poisson-lapl`` with every network of ``--models`` through the shared
engine (one run directory each under ``--out``), then writes into ``--out``: ``poisson.png`` (rows: gradients,
Laplacian; columns: ground truth, the supervising derivative, then each network's reconstruction with its
PSNR), ``poisson.md`` (PSNR table) and ``metrics.json``. PSNRs are measured after adding the best constant
(gradients) or affine function (Laplacian), which the derivatives cannot determine.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hypersiren.engine import TrainOptions, train
from hypersiren.errors import HypersirenError
from hypersiren.io import atomic_write, check_output_dir, write_table_and_metrics
from hypersiren.nn import MODEL_NAMES
from hypersiren.runtime import resolve_device, seed_everything
from hypersiren.tasks.poisson import PoissonFit, PoissonGradient, PoissonLaplacian

TASKS = {"gradient": PoissonGradient, "laplacian": PoissonLaplacian}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from hypersiren.tasks.base import non_negative_int, positive_float, positive_int

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/eval-poisson", help="output directory (default: runs/eval-poisson)")
    parser.add_argument("--image", default="camera", help="image file or built-in camera/astronaut (default: camera)")
    parser.add_argument("--size", type=positive_int, default=256, help="longer side in pixels (default: 256)")
    parser.add_argument("--steps", type=positive_int, default=1000, help="training steps per fit (default: 1000)")
    parser.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate (default: 1e-4)")
    parser.add_argument("--hidden-features", type=positive_int, default=256, help="network width (default: 256)")
    parser.add_argument("--hidden-layers", type=non_negative_int, default=3, help="hidden layers (default: 3)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: 0)")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=["siren", "relu", "tanh"],
                        help="networks to compare (default: siren relu tanh)")
    parser.add_argument("--derivatives", nargs="+", choices=list(TASKS), default=list(TASKS),
                        help="supervision to compare (default: gradient laplacian)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser.parse_args(argv)


def build_task(derivative: str, model: str, args: argparse.Namespace, device) -> PoissonFit:
    """One Poisson task configured exactly as ``hypersiren fit poisson-...`` would (inputs checked here)."""
    task_cls = TASKS[derivative]
    parser = argparse.ArgumentParser()
    task_cls.add_arguments(parser)
    config = vars(parser.parse_args([args.image, "--size", str(args.size), "--model", model, "--hidden-features",
                                     str(args.hidden_features), "--hidden-layers", str(args.hidden_layers)]))
    config.update(out=str(Path(args.out) / f"{task_cls.name}-{model}"), steps=args.steps, lr=args.lr, seed=args.seed,
                  eval_poisson=vars(args))
    seed_everything(args.seed)
    return task_cls(config, device)


def figure(rows: dict[str, list[tuple[str, np.ndarray]]], path: Path) -> None:
    """One row per derivative of (title, (H, W, 3) picture in [0, 1]) panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def _picture(image) -> np.ndarray:
    """(C, H, W) tensor in [0, 1] -> (H, W, 3) array."""
    return image.expand(3, -1, -1).permute(1, 2, 0).cpu().numpy()


def table(metrics: dict[str, dict[str, dict]], args: argparse.Namespace) -> str:
    models = list(dict.fromkeys(args.models))
    lines = [f"Poisson reconstruction of `{args.image}` at {args.size} px, {args.steps} steps, Adam lr {args.lr:g}, "
             f"full batch, {args.hidden_layers} hidden layers of {args.hidden_features} (seed {args.seed}). "
             "PSNR (dB) after the best constant (gradients) / affine function (Laplacian).", "",
             "| supervised on | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for derivative, per_model in metrics.items():
        lines.append(f"| {derivative} | " + " | ".join(f"{per_model[m]['psnr']:.2f}" for m in models) + " |")
    return "\n".join(lines) + "\n"


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = check_output_dir(args.out)
        device = resolve_device(args.device)
        tasks = {(d, m): build_task(d, m, args, device)  # reads and checks the image before anything is written
                 for d in dict.fromkeys(args.derivatives) for m in dict.fromkeys(args.models)}
        options = TrainOptions(steps=args.steps, lr=args.lr, seed=args.seed, summary_every=0,
                               progress=not args.no_progress, overwrite=True)  # a rerun retrains afresh
        metrics: dict[str, dict[str, dict]] = {}
        rows: dict[str, list] = {}
        for (derivative, model), task in tasks.items():
            result = train(task, options, task.config["out"], task.config)
            metrics.setdefault(derivative, {})[model] = result
            panels = rows.setdefault(derivative, [("ground truth", _picture(task.image)),
                                                  (f"target {derivative}", _picture(task.target_image()))])
            panels.append((f"{model}: {result['psnr']:.1f} dB", _picture(task.fit_image())))
        figure(rows, out / "poisson.png")
        write_table_and_metrics(out, "poisson", table(metrics, args), metrics)
    except HypersirenError as err:
        print(f"poisson: error: {err}", file=sys.stderr)
        return 2
    print(table(metrics, args), end="")
    print(f"wrote {out}/poisson.png, poisson.md, metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(run())
