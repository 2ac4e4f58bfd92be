"""Test-time refinement sweep: how completion quality changes with the number of refinement steps K.

    python eval/refine_sweep.py --checkpoint runs/prior/checkpoint.safetensors --data /path/to/faces \\
        --val-fraction 0.125 --refine-steps 0,1,3,10,30 --out runs/refine-sweep

Loads any prior checkpoint, completes the held-out faces from the same contexts (10 / 100 / 1000 pixels, top
half, full image) with ``refine_steps`` K = each value given (``hypersiren.priors.refine``: Adam on the code,
or with --weights on the SIREN a hypernetwork generates from it, with learning rate --lr and a penalty --penalty
keeping it near the prediction), and writes OUT/sweep.md, OUT/sweep.json (PSNR, SSIM and milliseconds per image
for every K and context) and OUT/sweep.png (PSNR vs K, one line per context).
"""
import sys
from dataclasses import dataclass
from pathlib import Path

from hypersiren import experiments
from hypersiren.config import non_negative_float, non_negative_int, option, positive_float, positive_int
from hypersiren.evaluation import SETTINGS, evaluate_prior
from hypersiren.io import atomic_write, prepare_output_dir, write_json
from hypersiren.viz import pyplot, save_figure


@dataclass(frozen=True, kw_only=True)
class RefineSweep(experiments.PriorEvaluation):
    refine_steps: tuple[int, ...] = option((0, 1, 3, 10, 30), "values of K", check=non_negative_int, comma=True)
    lr: float = option(1e-2, "Adam learning rate of the refinement", check=positive_float)
    penalty: float = option(1e-2, "weight of the distance to the prediction", check=non_negative_float)
    weights: bool = option(False, "refine the generated SIREN (hypernetwork weights or shifts) instead of the latent")
    settings: tuple[str, ...] = option(SETTINGS, "contexts", comma=True)
    batch_size: int = option(50, "faces per batch", check=positive_int)
    out: str = option("runs/refine-sweep", "output directory")


def sweep_table(results: dict[int, dict], config: RefineSweep, method: str, count: int, resolution: int) -> str:
    what = "generated SIREN" if config.weights else "code"
    lines = [f"Test-time refinement of the {method} prior's {what}: {count} held-out faces at {resolution}x{resolution}, "
             f"Adam lr {config.lr:g} on the relative change, penalty {config.penalty:g}. PSNR in dB (SSIM).", "",
             "| refine steps K | " + " | ".join(config.settings) + " | ms/image |",
             "|---:|" + "---:|" * (len(config.settings) + 1)]
    for steps, row in results.items():
        cells = [f"{row['metrics'][s]['psnr']:.2f} ({row['metrics'][s]['ssim']:.3f})" for s in config.settings]
        lines.append(f"| {steps} | " + " | ".join(cells) + f" | {row['ms_per_image']:.1f} |")
    return "\n".join(lines) + "\n"


def sweep_plot(results: dict[int, dict], settings: tuple[str, ...], path: Path) -> None:
    plt = pyplot()
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
    save_figure(figure, path)


def run(config: RefineSweep) -> None:
    from hypersiren.prior import HyperSiren

    model = HyperSiren.load(config.checkpoint)
    faces = config.faces(model.resolution)
    out = prepare_output_dir(config.out)
    results = {}
    for steps in config.refine_steps:
        metrics, examples = evaluate_prior(model.prior, faces, refine_steps=steps, lr=config.lr, penalty=config.penalty,
                                           weights=config.weights, warm_up=True, settings=config.settings,
                                           seed=config.seed, batch_size=config.batch_size, progress=False)
        ms_per_image = 1000 * examples.seconds / (len(faces) * len(config.settings))
        results[steps] = {"metrics": metrics, "ms_per_image": ms_per_image}
        print(f"K={steps}: " + ", ".join(f"{s} {metrics[s]['psnr']:.2f} dB" for s in config.settings), flush=True)
    method = type(model.prior).method
    table = sweep_table(results, config, method, len(faces), model.resolution)
    write_json(out / "sweep.json", {"checkpoint": str(config.checkpoint), "method": method, "faces": len(faces),
                                    "lr": config.lr, "penalty": config.penalty, "weights": config.weights,
                                    "results": results})
    with atomic_write(out / "sweep.md", "w") as f:
        f.write(table)
    sweep_plot(results, config.settings, out / "sweep.png")
    print(table)
    print(f"wrote {out}/ (sweep.md, sweep.json, sweep.png)")


def main(argv: list[str] | None = None) -> int:
    return experiments.main(RefineSweep, run, argv, prog="refine_sweep")


if __name__ == "__main__":
    sys.exit(main())
