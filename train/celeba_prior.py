"""Train the paper's CelebA face prior (Sitzmann et al. 2020, section 4.4) with ``hypersiren train prior``.

Paper settings: 32 x 32 faces, set encoder (sine, or ReLU) or CNN encoder, latent 256, a hypernetwork with one
3-layer ReLU head (width 256) per parameter tensor of a SIREN 2 -> 256 x 4 -> 3, loss = MSE over all pixels +
0.1 mean(z^2) + 100 mean(theta^2), Adam lr 5e-5, gradient clipping 1, random contexts of 10..200 pixels (plus
hypersiren's larger and structured contexts). ``--fast`` trains hypersiren's faster design instead: the light
hypernetwork (shift modulations of a shared SIREN) on 256 random target pixels per face, batch 32, lr 1e-4.

    python train/celeba_prior.py --data /path/to/celeba --out runs/celeba-prior [--encoder cnn] [--fast] \\
        [-- any other ``hypersiren train prior`` option, e.g. --minutes 60 --resume]
"""
from __future__ import annotations

import argparse
import shlex
import sys

from hypersiren.cli import main as hypersiren

PAPER = ["--resolution", "32", "--batch-size", "100", "--hypernet", "full", "--latent-dim", "256",
         "--hidden-features", "256", "--hidden-layers", "3", "--lambda-latent", "0.1", "--lambda-weights", "100",
         "--lr", "5e-5", "--clip-grad", "1", "--target-pixels", "0"]
FAST = ["--hypernet", "light", "--target-pixels", "256", "--batch-size", "32", "--lr", "1e-4", "--flip"]


def command(args: argparse.Namespace, extra: list[str]) -> list[str]:
    encoder = ["--encoder", "cnn"] if args.encoder == "cnn" else ["--encoder", "set", "--activation", args.activation]
    return ["train", "prior", "--data", args.data, "--val-fraction", str(args.val_fraction), "--out", args.out,
            "--steps", str(args.steps), "--checkpoint-every", "500", *PAPER, *encoder, *(FAST if args.fast else []), *extra]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="CelebA root (official or Kaggle layout) or a folder of faces")
    parser.add_argument("--out", default="runs/celeba-prior", help="run directory (default: runs/celeba-prior)")
    parser.add_argument("--encoder", choices=("set", "cnn"), default="set", help="context encoder (default: set)")
    parser.add_argument("--activation", choices=("sine", "relu"), default="sine", help="set-encoder activation (default: sine)")
    parser.add_argument("--steps", type=int, default=100000, help="training steps (default: 100000)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="hold-out of a plain folder (default: 0.1)")
    parser.add_argument("--fast", action="store_true", help="hypersiren's faster design instead of the paper's")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    full = command(args, extra)
    print("hypersiren " + " ".join(shlex.quote(c) for c in full), flush=True)
    return hypersiren(full)


if __name__ == "__main__":
    raise SystemExit(main())
