"""Reproduce the paper's Table 1 setting on a small CelebA split: train on 700 faces, complete the other 100.

    python eval/celeba_table.py --data /path/to/celeba-faces/images --out runs/celeba-table --minutes 45

For each encoder (``--encoders``, default: set and cnn) it trains a prior with the paper's configuration
(``hypersiren.tasks.face_prior.PAPER``, as ``train/celeba_prior.py``; the light hypernetwork with
``--fast``) for ``--minutes`` of wall-clock time (or reuses OUT/<encoder> with ``--reuse``), evaluates it like
``hypersiren eval prior`` on the held-out split (``--val-fraction`` 0.125 of 800 faces = 100) into
OUT/<encoder>/eval and writes OUT/table.md: MSE, PSNR and SSIM per context beside the paper's Table 1 MSEs (which
were measured after training on all of CelebA's 162k training faces).
"""
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from hypersiren import experiments
from hypersiren.config import Config, option, positive_float
from hypersiren.evaluation import PAPER_TABLE1, SETTINGS, evaluate_prior, write_evaluation
from hypersiren.io import atomic_write
from hypersiren.tasks.face_prior import FAST, PAPER, FacePrior

PAPER_COLUMN = {"set": "sine set encoder", "cnn": "CNN encoder"}


@dataclass(frozen=True, kw_only=True)
class CelebaTable(Config):
    data: str = option(help="folder of faces (e.g. /work/shared/data/celeba-faces/images)")
    out: str = option("runs/celeba-table", "output directory, one run directory per encoder")
    encoders: tuple[str, ...] = option(("set", "cnn"), "context encoders", choices=("set", "cnn"))
    minutes: float = option(45.0, "training budget per encoder", check=positive_float)
    val_fraction: float = option(0.125, "held-out share (0.125 = 100 of 800)", check=positive_float)
    fast: bool = option(False, "the light hypernetwork on 256 target pixels instead of the paper's configuration")
    reuse: bool = option(False, "evaluate existing runs in OUT instead of training")

    def prior(self, encoder: str) -> FacePrior.Config:
        """The training config of one encoder: the paper's (or the light hypernetwork), for ``minutes`` of training."""
        preset = FAST if self.fast else PAPER
        return preset.replace(data=self.data, out=str(Path(self.out) / encoder), val_fraction=self.val_fraction,
                              prior=preset.prior.replace(encoder=encoder),
                              engine={"steps": 10_000_000, "minutes": self.minutes, "progress": False})


def evaluate(config: CelebaTable, run: Path) -> dict:
    """``hypersiren eval prior`` of the run's checkpoint on the held-out faces, into RUN/eval."""
    from hypersiren.data.faces import load_faces
    from hypersiren.prior import HyperSiren

    prior = HyperSiren.load(run / "checkpoint.safetensors")
    faces = load_faces(config.data, "val", prior.resolution, val_fraction=config.val_fraction, progress=False)
    metrics, examples = evaluate_prior(prior.prior, faces, progress=False)
    write_evaluation(run / "eval", metrics, examples, faces)
    return metrics


def run(config: CelebaTable) -> None:
    rows = {}
    for encoder in config.encoders:
        run_dir = Path(config.out) / encoder
        if not (config.reuse and (run_dir / "checkpoint.safetensors").is_file()):
            experiments.train(FacePrior, config.prior(encoder))
        rows[encoder] = (evaluate(config, run_dir), json.loads((run_dir / "metrics.json").read_text())["steps"])
    lines = [f"Completion of {config.data}'s held-out faces ({config.val_fraction:g} hold-out), 32x32, after "
             f"{config.minutes:g} min of training{' (light hypernetwork)' if config.fast else ''}; paper: Table 1, full CelebA.",
             "", "| encoder | steps | context | MSE | PSNR (dB) | SSIM | paper MSE |", "|---|---:|---|---:|---:|---:|---:|"]
    for encoder, (metrics, steps) in rows.items():
        for setting in SETTINGS:
            m = metrics[setting]
            lines.append(f"| {encoder} | {steps} | {setting} | {m['mse']:.4f} | {m['psnr']:.2f} | {m['ssim']:.3f} | "
                         f"{PAPER_TABLE1[PAPER_COLUMN[encoder]][setting]:.3f} |")
    with atomic_write(Path(config.out) / "table.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    return experiments.main(CelebaTable, run, argv, prog="celeba_table")


if __name__ == "__main__":
    sys.exit(main())
