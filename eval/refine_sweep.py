"""Test-time refinement sweep: how completion quality changes with the number of refinement steps K.

    python eval/refine_sweep.py --checkpoint runs/prior/checkpoint.safetensors --data /path/to/faces \\
        --val-fraction 0.125 --refine-steps 0,1,3,10,30 --out runs/refine-sweep

Loads any prior checkpoint, completes the held-out faces from the same contexts (10 / 100 / 1000 pixels, top
half, full image) with ``refine_steps`` K = each value given (``hypersiren.priors.refine``: Adam on the code,
or with --weights on the SIREN a hypernetwork generates from it, with learning rate --lr and a penalty --penalty
keeping it near the prediction), and writes OUT/sweep.md,
OUT/sweep.json (PSNR, SSIM and milliseconds per image for every K and context) and OUT/sweep.png (PSNR vs K,
one line per context).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hypersiren.errors import HypersirenError, InputError
from hypersiren.evaluation import SETTINGS, evaluate_completion
from hypersiren.io import atomic_write, prepare_output_dir, write_json


def refined_completer(model, steps: int, lr: float, penalty: float, weights: bool = False):
    """complete(images, masks) for ``evaluate_completion`` refining each code ``steps`` times (the generated SIREN
    instead when ``weights``); adds up its wall-clock seconds."""
    from hypersiren.data.image import from_unit, to_unit
    from hypersiren.priors.refine import refine
    from hypersiren.tasks.face_prior import render_faces

    clock = {"seconds": 0.0, "images": 0}

    def complete(images_unit, masks):
        tick = time.perf_counter()
        images = from_unit(images_unit)
        code = model.prior.infer(images, masks)
        if steps or weights:
            code = refine(model.prior, code, images, masks, steps, lr, penalty, weights)
        completed = to_unit(render_faces(model.prior, code, len(images), images.shape[-1], images.device))
        clock["seconds"] += time.perf_counter() - tick
        clock["images"] += len(images)
        return completed

    return complete, clock


def sweep_table(results: dict[int, dict], settings: tuple[str, ...], method: str, count: int, resolution: int,
                lr: float, penalty: float, weights: bool) -> str:
    what = "generated SIREN" if weights else "code"
    lines = [f"Test-time refinement of the {method} prior's {what}: {count} held-out faces at {resolution}x{resolution}, "
             f"Adam lr {lr:g} on the relative change, penalty {penalty:g}. PSNR in dB (SSIM).", "",
             "| refine steps K | " + " | ".join(settings) + " | ms/image |", "|---:|" + "---:|" * (len(settings) + 1)]
    for steps, row in results.items():
        cells = [f"{row['metrics'][s]['psnr']:.2f} ({row['metrics'][s]['ssim']:.3f})" for s in settings]
        lines.append(f"| {steps} | " + " | ".join(cells) + f" | {row['ms_per_image']:.1f} |")
    return "\n".join(lines) + "\n"


def sweep_plot(results: dict[int, dict], settings: tuple[str, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = list(results)
    figure, axis = plt.subplots(figsize=(5, 3.5), dpi=120)
    for setting in settings:
        axis.plot(steps, [results[k]["metrics"][setting]["psnr"] for k in steps], marker="o", label=setting)
    if min(steps) > 0:
        axis.set_xscale("log")
    elif len(steps) > 1:
        axis.set_xscale("symlog", linthresh=1)
    axis.set_xlabel("refinement steps K")
    axis.set_ylabel("held-out PSNR (dB)")
    axis.legend(title="context")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_write(path) as f:
        figure.savefig(f, format="png")
    plt.close(figure)


def warm_up(complete, clock: dict, faces) -> None:
    """Run the completer once on two faces (one-off costs: first autograd/vmap calls) and reset its clock."""
    import torch

    complete(faces[:2], torch.ones(2, *faces.shape[-2:], dtype=torch.bool))
    clock.update(seconds=0.0, images=0)


def run(args: argparse.Namespace) -> int:
    from hypersiren.data.faces import load_faces
    from hypersiren.prior import HyperSiren

    try:
        steps_list = [int(k) for k in args.refine_steps.split(",")]
    except ValueError:
        raise InputError(f"--refine-steps expects comma-separated integers, got {args.refine_steps!r}") from None
    model = HyperSiren.load(args.checkpoint)
    faces = load_faces(args.data, args.split, model.resolution, val_fraction=args.val_fraction)
    faces = faces[: args.eval_images or None]
    settings = tuple(args.settings.split(","))
    out = prepare_output_dir(args.out)
    results = {}
    for steps in steps_list:
        complete, clock = refined_completer(model, steps, args.lr, args.penalty, args.weights)
        warm_up(complete, clock, faces)
        metrics, _ = evaluate_completion(complete, faces, settings=settings, seed=args.seed, batch_size=args.batch_size,
                                         progress=False)
        results[steps] = {"metrics": metrics, "ms_per_image": 1000 * clock["seconds"] / max(clock["images"], 1)}
        print(f"K={steps}: " + ", ".join(f"{s} {metrics[s]['psnr']:.2f} dB" for s in settings), flush=True)
    method = type(model.prior).method
    table = sweep_table(results, settings, method, len(faces), model.resolution, args.lr, args.penalty, args.weights)
    write_json(out / "sweep.json", {"checkpoint": str(args.checkpoint), "method": method, "faces": len(faces),
                                    "lr": args.lr, "penalty": args.penalty, "weights": args.weights, "results": results})
    with atomic_write(out / "sweep.md", "w") as f:
        f.write(table)
    sweep_plot(results, settings, out / "sweep.png")
    print(table)
    print(f"wrote {out}/ (sweep.md, sweep.json, sweep.png)")
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="prior checkpoint (any method)")
    parser.add_argument("--data", default=None, help="faces folder or CelebA root (default: scikit-image's LFW faces)")
    parser.add_argument("--split", default="val", choices=("train", "val", "test", "all"), help="faces evaluated (default: val)")
    parser.add_argument("--val-fraction", type=float, default=0.125, help="held-out share of a plain folder (default: 0.125)")
    parser.add_argument("--refine-steps", default="0,1,3,10,30", help="values of K (default: 0,1,3,10,30)")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate of the refinement (default: 0.01)")
    parser.add_argument("--penalty", type=float, default=1e-2, help="weight of the distance to the prediction (default: 0.01)")
    parser.add_argument("--weights", action="store_true",
                        help="refine the generated SIREN (hypernetwork weights or shifts) instead of the latent")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"contexts (default: {','.join(SETTINGS)})")
    parser.add_argument("--eval-images", type=int, default=0, help="evaluate at most N faces (0: all)")
    parser.add_argument("--batch-size", type=int, default=50, help="faces per batch (default: 50)")
    parser.add_argument("--seed", type=int, default=0, help="context seed (default: 0)")
    parser.add_argument("--out", default="runs/refine-sweep", help="output directory")
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        sys.exit(run(parse(sys.argv[1:])))
    except HypersirenError as err:
        print(f"refine_sweep: error: {err}", file=sys.stderr)
        sys.exit(2)
