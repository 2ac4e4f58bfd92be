"""Reproduce the paper's Table 1 setting on a small CelebA split: train on 700 faces, complete the other 100.

    python eval/celeba_table.py --data /path/to/celeba-faces/images --out runs/celeba-table --minutes 45

For each encoder (``--encoders``, default: set and cnn) it trains a prior with ``train/celeba_prior.py`` (the
paper's configuration, or hypersiren's faster design with ``--fast``) for ``--minutes`` of wall-clock time (or
reuses OUT/<encoder> with ``--reuse``), evaluates it with ``hypersiren eval prior`` on the held-out split
(``--val-fraction`` 0.125 of 800 faces = 100) and writes OUT/table.md: MSE, PSNR and SSIM per context beside the
paper's Table 1 MSEs (which were measured after training on all of CelebA's 162k training faces).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from celeba_prior import main as train_prior  # noqa: E402  (train/celeba_prior.py)
from hypersiren.cli import main as hypersiren  # noqa: E402
from hypersiren.evaluation import PAPER_TABLE1, SETTINGS  # noqa: E402

PAPER_COLUMN = {"set": "sine set encoder", "cnn": "CNN encoder"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder of faces (e.g. /work/shared/data/celeba-faces/images)")
    parser.add_argument("--out", default="runs/celeba-table")
    parser.add_argument("--encoders", nargs="+", choices=("set", "cnn"), default=["set", "cnn"])
    parser.add_argument("--minutes", type=float, default=45.0, help="training budget per encoder (default: 45)")
    parser.add_argument("--val-fraction", type=float, default=0.125, help="held-out share (default: 0.125 = 100 of 800)")
    parser.add_argument("--fast", action="store_true", help="hypersiren's faster design instead of the paper's")
    parser.add_argument("--reuse", action="store_true", help="evaluate existing runs in OUT instead of training")
    args = parser.parse_args(argv)
    out = Path(args.out)
    rows = {}
    for encoder in args.encoders:
        run = out / encoder
        if not (args.reuse and (run / "checkpoint.safetensors").is_file()):
            status = train_prior(["--data", args.data, "--out", str(run), "--encoder", encoder, "--val-fraction",
                                  str(args.val_fraction), "--steps", "10000000", *(["--fast"] if args.fast else []),
                                  "--", "--minutes", str(args.minutes), "--summary-every", "500", "--no-progress"])
            if status:
                return status
        status = hypersiren(["eval", "prior", "--checkpoint", str(run / "checkpoint.safetensors"), "--data", args.data,
                             "--split", "val", "--val-fraction", str(args.val_fraction), "--out", str(run / "eval"),
                             "--no-progress"])
        if status:
            return status
        rows[encoder] = (json.loads((run / "eval" / "metrics.json").read_text()),
                         json.loads((run / "metrics.json").read_text())["steps"])
    lines = [f"Completion of {args.data}'s held-out faces ({args.val_fraction:g} hold-out), 32x32, after "
             f"{args.minutes:g} min of training{' (fast design)' if args.fast else ''}; paper: Table 1, full CelebA.", "",
             "| encoder | steps | context | MSE | PSNR (dB) | SSIM | paper MSE |", "|---|---:|---|---:|---:|---:|---:|"]
    for encoder, (metrics, steps) in rows.items():
        for setting in SETTINGS:
            m = metrics[setting]
            lines.append(f"| {encoder} | {steps} | {setting} | {m['mse']:.4f} | {m['psnr']:.2f} | {m['ssim']:.3f} | "
                         f"{PAPER_TABLE1[PAPER_COLUMN[encoder]][setting]:.3f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
