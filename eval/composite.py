"""Paper section 4.1 (image editing): two images blended in the gradient domain, 0.5 grad A + 0.5 grad B.

    python eval/composite.py --out runs/eval-composite [--steps 1000] [--size 256] [--images camera astronaut]

Trains ``hypersiren fit composite A B`` with every network of ``--models`` through the shared engine (one run
directory each under ``--out``; optional ``--mask`` as in the command), then writes into ``--out``:
``composite.png`` (side by side: A, B, the naive pixel blend, then each network's composite in ``--models``
order), ``composite.md`` (how closely
each composite's gradients match the blended field: relative RMS error) and ``metrics.json``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hypersiren.data.image import save_image
from hypersiren.engine import TrainOptions, train
from hypersiren.errors import HypersirenError
from hypersiren.io import check_output_dir, write_table_and_metrics
from hypersiren.nn import MODEL_NAMES
from hypersiren.runtime import resolve_device, seed_everything
from hypersiren.tasks.composite import Composite
from hypersiren.viz import side_by_side


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from hypersiren.tasks.base import non_negative_int, positive_float, positive_int

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/eval-composite", help="output directory (default: runs/eval-composite)")
    parser.add_argument("--images", nargs=2, default=["camera", "astronaut"], metavar=("A", "B"),
                        help="the two images: files or built-in camera/astronaut (default: camera astronaut)")
    parser.add_argument("--mask", default=None, help="optional mask image (white = B's gradients)")
    parser.add_argument("--size", type=positive_int, default=256, help="longer side in pixels (default: 256)")
    parser.add_argument("--steps", type=positive_int, default=1000, help="training steps per fit (default: 1000)")
    parser.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate (default: 1e-4)")
    parser.add_argument("--hidden-features", type=positive_int, default=256, help="network width (default: 256)")
    parser.add_argument("--hidden-layers", type=non_negative_int, default=3, help="hidden layers (default: 3)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: 0)")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=["siren"],
                        help="networks to compare (default: siren)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser.parse_args(argv)


def build_task(model: str, args: argparse.Namespace, device) -> Composite:
    """One composite task configured exactly as ``hypersiren fit composite`` would (inputs checked here)."""
    parser = argparse.ArgumentParser()
    Composite.add_arguments(parser)
    argv = [*args.images, "--size", str(args.size), "--model", model, "--hidden-features", str(args.hidden_features),
            "--hidden-layers", str(args.hidden_layers)] + (["--mask", args.mask] if args.mask else [])
    config = vars(parser.parse_args(argv))
    config.update(out=str(Path(args.out) / f"composite-{model}"), steps=args.steps, lr=args.lr, seed=args.seed,
                  eval_composite=vars(args))
    seed_everything(args.seed)
    return Composite(config, device)


def table(metrics: dict[str, dict], args: argparse.Namespace) -> str:
    lines = [f"Gradient-domain composite of `{args.images[0]}` and `{args.images[1]}` at {args.size} px, "
             f"{args.steps} steps, Adam lr {args.lr:g}, full batch, {args.hidden_layers} hidden layers of "
             f"{args.hidden_features} (seed {args.seed}).", "",
             "| model | gradient relative RMS error | gradient MSE |", "|---|---:|---:|"]
    for name, m in metrics.items():
        lines.append(f"| {name} | {m['gradient_relative_error']:.3f} | {m['gradient_mse']:.4g} |")
    return "\n".join(lines) + "\n"


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = check_output_dir(args.out)
        device = resolve_device(args.device)
        tasks = {m: build_task(m, args, device) for m in dict.fromkeys(args.models)}  # inputs checked first
        options = TrainOptions(steps=args.steps, lr=args.lr, seed=args.seed, summary_every=0,
                               progress=not args.no_progress, overwrite=True)  # a rerun retrains afresh
        metrics, panels = {}, []
        for model, task in tasks.items():
            metrics[model] = train(task, options, task.config["out"], task.config)
            panels = panels or [*task.inputs, task.image]
            panels.append(task.fit_image())
        save_image(side_by_side(panels), out / "composite.png")
        write_table_and_metrics(out, "composite", table(metrics, args), metrics)
    except HypersirenError as err:
        print(f"composite: error: {err}", file=sys.stderr)
        return 2
    print(table(metrics, args), end="")
    print(f"wrote {out}/composite.png, composite.md, metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(run())
