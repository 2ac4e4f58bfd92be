"""Compare the priors over face SIRENs (hypernetwork, MAML, Reptile, functa) on one held-out split.

    python eval/compare_priors.py --data /path/to/celeba-faces --val-fraction 0.125 --steps 2000 \\
        --out runs/compare-priors -- --hidden-features 128 --batch-size 32

Trains every method with ``hypersiren train prior`` on the same training faces with the same budget (steps,
batch size, learning rate and the options after ``--``), or loads the run OUT/<method> already holds when
``--reuse`` is given, then evaluates each on the same held-out faces and contexts (10 / 100 / 1000 pixels, top
half, full image). Writes OUT/comparison.md and OUT/comparison.json (PSNR and SSIM per context, parameters,
training seconds per step, completion milliseconds per image) and OUT/completions.png: one row per face, for
each of the 100-pixel and half contexts the context then every method's completion, and the ground truth.
"""
from __future__ import annotations

import argparse
import json
import runpy
import shlex
import sys
from pathlib import Path

from hypersiren.cli import main as hypersiren
from hypersiren.errors import HypersirenError, InputError
from hypersiren.evaluation import SETTINGS, evaluate_completion, hide_unknown
from hypersiren.io import prepare_output_dir, write_json

_SWEEP = runpy.run_path(str(Path(__file__).with_name("refine_sweep.py")), run_name="refine_sweep")  # beside this script
refined_completer, warm_up = _SWEEP["refined_completer"], _SWEEP["warm_up"]

METHODS = ("hypernet", "maml", "reptile", "functa")
FIGURE_SETTINGS = ("100", "half")
UNKNOWN_GRAY = 0.5


def train_or_load(method: str, args: argparse.Namespace, extra: list[str], out: Path):
    """The trained ``HyperSiren`` of ``method`` (trained into OUT/<method> unless reused) and its metrics.json."""
    from hypersiren.prior import HyperSiren

    run = out / method
    checkpoint = run / "checkpoint.safetensors"
    if not (args.reuse and checkpoint.is_file()):
        command = ["train", "prior", "--method", method, "--steps", str(args.steps), "--seed", str(args.seed),
                   "--resolution", str(args.resolution), "--val-fraction", str(args.val_fraction),
                   "--out", str(run), *(["--data", args.data] if args.data else []),
                   *shlex.split(args.method_args.get(method, "")), *extra]
        print("hypersiren " + " ".join(shlex.quote(c) for c in command), flush=True)
        status = hypersiren(command)
        if status:
            raise SystemExit(status)
    return HyperSiren.load(checkpoint), json.loads((run / "metrics.json").read_text())


def comparison_table(rows: dict[str, dict], count: int, resolution: int, settings: tuple[str, ...]) -> str:
    header = ["method", "parameters", "train s/step", "complete ms/image"] + [f"PSNR {s}" for s in settings] \
        + [f"SSIM {s}" for s in settings]
    lines = [f"Completion of {count} held-out faces at {resolution}x{resolution} (PSNR in dB on [0, 1] pixels, "
             "per-image means; same contexts for every method).", "",
             "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for method, row in rows.items():
        cells = [method, f"{row['params']:,}", f"{row['sec_per_step']:.3f}", f"{row['ms_per_image']:.2f}"]
        cells += [f"{row['metrics'][s]['psnr']:.2f}" for s in settings] + [f"{row['metrics'][s]['ssim']:.3f}" for s in settings]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from hypersiren.data.faces import load_faces
    from hypersiren.data.image import save_image

    methods = tuple(args.methods.split(","))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)}; expected a comma-separated list of {', '.join(METHODS)}")
    faces = load_faces(args.data, "val", args.resolution, val_fraction=args.val_fraction)[: args.eval_images or None]
    out = prepare_output_dir(args.out)
    settings = tuple(args.settings.split(","))
    rows, examples = {}, {}
    for method in methods:
        model, train_metrics = train_or_load(method, args, extra, out)
        complete, clock = refined_completer(model, steps=0, lr=1.0, penalty=0.0)  # no refinement
        warm_up(complete, clock, faces)
        metrics, shown = evaluate_completion(complete, faces, settings=settings, seed=args.seed, batch_size=args.batch_size,
                                             progress=False)
        rows[method] = {"params": sum(p.numel() for p in model.prior.parameters()),
                        "sec_per_step": float(train_metrics.get("sec_per_step", float("nan"))),
                        "ms_per_image": 1000 * clock["seconds"] / max(clock["images"], 1), "metrics": metrics,
                        "config": model.prior.config()}
        examples[method] = {s: shown[s] for s in FIGURE_SETTINGS if s in shown}
        masks = shown.masks
        print(f"{method}: " + ", ".join(f"{s} {metrics[s]['psnr']:.2f} dB" for s in settings), flush=True)
    table = comparison_table(rows, len(faces), args.resolution, settings)
    write_json(out / "comparison.json", {"faces": len(faces), "resolution": args.resolution, "steps": args.steps,
                                         "methods": rows})
    (out / "comparison.md").write_text(table)
    figure_settings = tuple(s for s in FIGURE_SETTINGS if s in settings)
    if figure_settings:
        tiles = {m: {s: e[s] for s in figure_settings} for m, e in examples.items()}
        save_image(figure(faces, tiles, masks, figure_settings), out / "completions.png")
        print("completions.png columns: " + " | ".join(f"{s}: context, {', '.join(methods)}" for s in figure_settings)
              + " | ground truth")
    print(table)
    print(f"wrote {out}/ (comparison.md, comparison.json, completions.png, one run directory per method)")
    return 0


def figure(faces, examples: dict[str, dict], masks: dict, settings: tuple[str, ...], scale: int = 2):
    """(3, H, W): per face, for each setting its context and every method's completion, then the ground truth."""
    from hypersiren.viz import side_by_side, stack_rows

    count = min(len(e[s]) for e in examples.values() for s in settings)
    enlarge = lambda x: x.repeat_interleave(scale, dim=-1).repeat_interleave(scale, dim=-2)
    rows = []
    for i in range(count):
        tiles = []
        for setting in settings:
            tiles.append(hide_unknown(faces[i : i + 1], masks[setting][i : i + 1], UNKNOWN_GRAY)[0])
            tiles += [e[setting][i] for e in examples.values()]
        tiles.append(faces[i])
        rows.append(side_by_side([enlarge(t.cpu()) for t in tiles]))
    return stack_rows(rows)


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    extra: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, extra = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="faces folder or CelebA root (default: scikit-image's LFW faces)")
    parser.add_argument("--val-fraction", type=float, default=0.125, help="held-out share of a plain folder (default: 0.125)")
    parser.add_argument("--resolution", type=int, default=32, help="face resolution (default: 32)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated (default: {','.join(METHODS)})")
    parser.add_argument("--method-args", action="append", default=[], metavar="METHOD=OPTIONS",
                        help="extra train options for one method, e.g. hypernet='--hypernet light' (repeatable)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps of every method (default: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="training seed and context seed (default: 0)")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"contexts (default: {','.join(SETTINGS)})")
    parser.add_argument("--eval-images", type=int, default=0, help="evaluate at most N held-out faces (0: all)")
    parser.add_argument("--batch-size", type=int, default=50, help="faces per evaluation batch (default: 50)")
    parser.add_argument("--reuse", action="store_true", help="load OUT/<method>/checkpoint.safetensors when present")
    parser.add_argument("--out", default="runs/compare-priors", help="output directory")
    args = parser.parse_args(argv)
    pairs = [item.split("=", 1) for item in args.method_args]
    if any(len(p) != 2 for p in pairs):
        parser.error("--method-args expects METHOD=OPTIONS")
    args.method_args = dict(pairs)
    return args, extra


if __name__ == "__main__":
    arguments, passed_on = parse(sys.argv[1:])
    try:
        sys.exit(run(arguments, passed_on))
    except HypersirenError as err:
        print(f"compare_priors: error: {err}", file=sys.stderr)
        sys.exit(2)
