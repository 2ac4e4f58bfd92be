"""Compare the priors over face SIRENs (hypernetwork, MAML, Reptile, functa, ...) on one held-out split.

    python eval/compare_priors.py --data /path/to/celeba-faces --val-fraction 0.125 --steps 2000 \\
        --out runs/compare-priors -- --hidden-features 128 --batch-size 32

Trains every method (``--methods``, default: every registered one) with ``hypersiren train prior`` on the same
training faces with the same budget (steps, seed, resolution and the ``train prior`` options after ``--``;
``--method-args METHOD=OPTIONS`` adds options for one method), or loads the run OUT/<method> already holds when
``--reuse`` is given, then evaluates each on the same held-out faces and contexts (10 / 100 / 1000 pixels, top
half, full image). Unless ``--no-references`` is given, two completions without a SIREN are scored on the same
faces and contexts, to read the priors against: the training faces' mean face, and the conditional mean of a
Gaussian over their pixels (eigenfaces, ``hypersiren.reference_completions``; up to 64x64). Writes
OUT/comparison.md and OUT/comparison.json (PSNR and SSIM per context, parameters, training seconds per step,
completion milliseconds per image) and OUT/completions.png: one row per face, for each of the 100-pixel and half
contexts the context then every method's completion (and the pixel Gaussian's), and the ground truth.
"""
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from hypersiren import experiments
from hypersiren.config import Config, non_negative_float, non_negative_int, option, positive_float, positive_int
from hypersiren.errors import InputError
from hypersiren.evaluation import SETTINGS, evaluate_completion, evaluate_prior
from hypersiren.io import atomic_write, prepare_output_dir, write_json
from hypersiren.registry import PRIORS
from hypersiren.tasks.face_prior import FacePrior

FIGURE_SETTINGS = ("100", "half")
MEAN_FACE, PIXEL_GAUSSIAN = "mean face (no SIREN)", "Gaussian over pixels (no SIREN)"


@dataclass(frozen=True, kw_only=True)
class ComparePriors(Config):
    data: str | None = option(None, "faces folder or CelebA root (default: scikit-image's LFW faces)")
    val_fraction: float = option(0.125, "held-out share of a plain folder", check=positive_float)
    resolution: int = option(32, "face resolution", check=positive_int)
    methods: tuple[str, ...] = option(tuple(PRIORS), "methods to compare", choices=tuple(PRIORS), comma=True)
    method_args: tuple[str, ...] = option((), "extra train options for one method, e.g. hypernet='--hypernet light'",
                                          metavar="METHOD=OPTIONS", repeat=True)
    steps: int = option(2000, "training steps of every method (at most, with a time budget)", check=positive_int)
    minutes: float = option(0.0, "wall-clock budget of every method, 0 = off", check=non_negative_float)
    cpu_minutes: float = option(0.0, "CPU-time budget of every method (fair on a shared machine), 0 = off",
                                check=non_negative_float)
    threads: int = option(0, "torch threads (training and evaluation), 0 = torch's default", check=non_negative_int)
    seed: int = option(0, "training seed and context seed", check=non_negative_int)
    settings: tuple[str, ...] = option(SETTINGS, "contexts", comma=True)
    eval_images: int = option(0, "evaluate at most N held-out faces, 0 = all", check=non_negative_int)
    batch_size: int = option(50, "faces per evaluation batch", check=positive_int)
    reuse: bool = option(False, "load OUT/<method>/checkpoint.safetensors when present")
    references: bool = option(True, "also score the training faces' mean face and the conditional mean of a Gaussian "
                                    "over their pixels (eigenfaces) on the same faces and contexts")
    out: str = option("runs/compare-priors", "output directory (one run directory per method in it)")

    def method_options(self) -> dict[str, list[str]]:
        """METHOD -> its extra ``train prior`` options (``--method-args``)."""
        pairs = [item.split("=", 1) for item in self.method_args]
        if any(len(pair) != 2 or pair[0] not in PRIORS for pair in pairs):
            raise InputError(f"--method-args expects METHOD=OPTIONS with a METHOD of {', '.join(PRIORS)}, got "
                             f"{' '.join(self.method_args)}")
        return {method: shlex.split(options) for method, options in pairs}

    def training(self, method: str, train_options: list[str]) -> FacePrior.Config:
        """The ``train prior`` config of one method: the shared budget, then the options after ``--`` and the
        method's own, into OUT/<method>."""
        base = FacePrior.Config(data=self.data, val_fraction=self.val_fraction, resolution=self.resolution,
                                out=str(Path(self.out) / method), engine={"steps": self.steps, "seed": self.seed,
                                                                           "minutes": self.minutes,
                                                                           "cpu_minutes": self.cpu_minutes})
        argv = [*train_options, "--method", method, *self.method_options().get(method, [])]
        return experiments.parse(FacePrior.Config, argv, prog="compare_priors (train prior options)", defaults=base)


def train_or_load(config: ComparePriors, method: str, train_options: list[str]):
    """The trained ``HyperSiren`` of ``method`` (trained into OUT/<method> unless reused) and its metrics."""
    from hypersiren.prior import HyperSiren

    checkpoint = Path(config.out) / method / "checkpoint.safetensors"
    if config.reuse and checkpoint.is_file():
        return HyperSiren.load(checkpoint), json.loads((checkpoint.parent / "metrics.json").read_text())
    print(f"{method}: train prior {shlex.join([*train_options, *config.method_options().get(method, [])])}", flush=True)
    _, metrics = experiments.train(FacePrior, config.training(method, train_options))
    return HyperSiren.load(checkpoint), metrics


def score_references(config: ComparePriors, faces) -> dict[str, tuple[dict, object]]:
    """Name -> (metrics, examples) of the completions without a SIREN (unless ``--no-references``), none above
    ``reference_completions.MAX_RESOLUTION``."""
    from hypersiren.data.faces import load_faces
    from hypersiren.reference_completions import MAX_RESOLUTION, PixelGaussian

    if not config.references:
        return {}
    if config.resolution > MAX_RESOLUTION:
        print(f"references skipped: the pixel Gaussian serves faces up to {MAX_RESOLUTION}x{MAX_RESOLUTION}")
        return {}
    gaussian = PixelGaussian(load_faces(config.data, "train", config.resolution, val_fraction=config.val_fraction))
    completers = {MEAN_FACE: lambda images, masks: gaussian.mean_face().to(images).expand_as(images),
                  PIXEL_GAUSSIAN: gaussian.complete}
    return {name: evaluate_completion(complete, faces, settings=config.settings, seed=config.seed,
                                      batch_size=config.batch_size, progress=False)
            for name, complete in completers.items()}


def budget(config: ComparePriors) -> str:
    """The training budget every method had, in words."""
    limits = [f"at most {config.steps:,} steps"]
    if config.minutes:
        limits.append(f"{config.minutes:g} min of wall-clock time")
    if config.cpu_minutes:
        limits.append(f"{config.cpu_minutes:g} min of CPU time")
    threads = config.threads or torch.get_num_threads()
    return f"{', '.join(limits)} per method, {threads} thread{'s' * (threads > 1)}"


def comparison_table(rows: dict[str, dict], count: int, resolution: int, settings: tuple[str, ...], spent: str) -> str:
    header = ["method", "parameters", "steps", "train s/step", "complete ms/image"] + [f"PSNR {s}" for s in settings] \
        + [f"SSIM {s}" for s in settings]
    def cell(value, form: str) -> str:
        return "-" if value is None else format(value, form)

    cells = [[method, cell(row['params'], ","), cell(row['steps'], ","), cell(row['sec_per_step'], ".3f"),
              f"{row['ms_per_image']:.2f}", *(f"{row['metrics'][s]['psnr']:.2f}" for s in settings),
              *(f"{row['metrics'][s]['ssim']:.3f}" for s in settings)]
             for method, row in rows.items()]
    return experiments.markdown_table(f"Completion of {count} held-out faces at {resolution}x{resolution} (PSNR in dB on "
                                      "[0, 1] pixels, per-image means; same contexts for every method). Training: "
                                      f"{spent}.", header, cells)


def run(config: ComparePriors, train_options: list[str]) -> None:
    from hypersiren.data.faces import load_faces
    from hypersiren.data.image import save_image
    from hypersiren.viz import completion_figure

    config.method_options()  # a bad --method-args fails before training
    if config.threads:
        torch.set_num_threads(config.threads)
    faces = load_faces(config.data, "val", config.resolution, val_fraction=config.val_fraction)
    faces = faces[: config.eval_images or None]
    out = prepare_output_dir(config.out)
    rows, examples = {}, {}
    for method in dict.fromkeys(config.methods):
        model, train_metrics = train_or_load(config, method, train_options)
        metrics, shown = evaluate_prior(model.prior, faces, warm_up=True, settings=config.settings, seed=config.seed,
                                        batch_size=config.batch_size, progress=False)
        rows[method] = {"params": sum(p.numel() for p in model.prior.parameters()),
                        "steps": int(train_metrics.get("steps", 0)),
                        "sec_per_step": float(train_metrics.get("sec_per_step", float("nan"))),
                        "ms_per_image": 1000 * shown.seconds / (len(faces) * len(config.settings)), "metrics": metrics,
                        "config": model.prior.config.to_dict()}
        examples[method], masks = shown, shown.masks
        print(f"{method}: " + ", ".join(f"{s} {metrics[s]['psnr']:.2f} dB" for s in config.settings), flush=True)
    for name, (metrics, shown) in score_references(config, faces).items():
        rows[name] = {"params": None, "steps": None, "sec_per_step": None, "metrics": metrics,
                      "ms_per_image": 1000 * shown.seconds / (len(faces) * len(config.settings))}
        if name == PIXEL_GAUSSIAN:
            examples[name] = shown
        print(f"{name}: " + ", ".join(f"{s} {metrics[s]['psnr']:.2f} dB" for s in config.settings), flush=True)
    table = comparison_table(rows, len(faces), config.resolution, config.settings, budget(config))
    write_json(out / "comparison.json", {"faces": len(faces), "resolution": config.resolution,
                                         "budget": config.to_dict(), "methods": rows})
    with atomic_write(out / "comparison.md", "w") as f:
        f.write(table)
    figure_settings = [s for s in FIGURE_SETTINGS if s in config.settings]
    if figure_settings:
        tiles = {s: {m: e[s] for m, e in examples.items()} for s in figure_settings}
        save_image(completion_figure(faces, tiles, masks), out / "completions.png")
    print(table)
    print(f"wrote {out}/ (comparison.md, comparison.json, completions.png, one run directory per method)")


def main(argv: list[str] | None = None) -> int:
    """Options before ``--`` are the comparison's, those after it ``train prior``'s (every method's)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    threads = torch.get_num_threads()
    try:
        return experiments.main(ComparePriors, lambda config: run(config, argv[split + 1:]), argv[:split],
                                prog="compare_priors")
    finally:
        torch.set_num_threads(threads)  # --threads is this comparison's, not its caller's


if __name__ == "__main__":
    sys.exit(main())
