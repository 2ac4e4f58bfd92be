"""Train a CelebA face prior with ``hypersiren train prior``: the paper's (Sitzmann et al. 2020, section 4.4), its
fast form, or hypersiren's own at CelebA scale.

Paper settings (``hypersiren.tasks.face_prior.PAPER``, the default): 32 x 32 faces, set encoder (sine, or ReLU) or
CNN encoder, latent 256, a hypernetwork with one 3-layer ReLU head (width 256) per parameter tensor of a SIREN
2 -> 256 x 4 -> 3, loss = MSE over all pixels + 0.1 mean(z^2) + 100 mean(theta^2), Adam lr 5e-5, gradient
clipping 1, random contexts of 10..200 pixels (plus hypersiren's larger and structured contexts). ``--fast``
trains the hypernetwork's faster form instead (``FAST``): the light hypernetwork (shift modulations of a shared
SIREN) on 256 random target pixels per face, batch 32, lr 1e-4. ``--basis`` trains hypersiren's default prior (the
basis prior, what ``hypersiren train prior`` trains with no model option) with settings for full CelebA on one GPU
(``BASIS``: batch 128 per process, 4 loader workers, 50,000 steps, a checkpoint every 1,000); under ``torchrun``
each process takes its share of the faces. ``eval/compare_priors.py`` compares them.

    python train/celeba_prior.py --data /path/to/celeba --out runs/celeba-prior [--encoder cnn] [--fast | --basis] \\
        [any other ``hypersiren train prior`` option, e.g. --minutes 60 --resume]
    torchrun --nproc_per_node 4 train/celeba_prior.py --basis --data /path/to/celeba
"""
import sys
from dataclasses import dataclass

from hypersiren import experiments
from hypersiren.config import option
from hypersiren.errors import InputError
from hypersiren.runtime import torchrun_group
from hypersiren.tasks.face_prior import BASIS, FAST, PAPER, FacePrior

PRESETS = {"--fast": FAST, "--basis": BASIS}  # flag -> settings; PAPER without one


@dataclass(frozen=True, kw_only=True)
class CelebaPrior(FacePrior.Config):
    fast: bool = option(False, "the light hypernetwork on 256 target pixels instead of the paper's configuration")
    basis: bool = option(False, "hypersiren's default prior (the basis prior) with settings for full CelebA on a GPU")


def run(config: CelebaPrior) -> None:
    if config.data is None:
        raise InputError("--data is required: a CelebA root (official or Kaggle layout) or a folder of faces")
    if config.fast and config.basis:
        raise InputError("--fast and --basis choose different priors; give at most one")
    what = ("the basis prior" if config.basis else
            f"{'the light hypernetwork' if config.fast else 'the paper configuration'} ({config.prior.encoder} encoder)")
    with torchrun_group(config.device) as (rank, device):  # one process, or this one of torchrun's
        print(f"celeba_prior: training {what} into {config.out}", flush=True)
        task_config = experiments.task_config(FacePrior, config).replace(
            device=device, engine={"progress": config.engine.progress and not rank})
        _, metrics = experiments.train(FacePrior, task_config)
        print(", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    preset = next((PRESETS[flag] for flag in PRESETS if flag in argv), PAPER)
    defaults = CelebaPrior(**experiments.fields_of(preset) | {"out": "runs/celeba-prior"})
    return experiments.main(CelebaPrior, run, argv, prog="celeba_prior", defaults=defaults)


if __name__ == "__main__":
    sys.exit(main())
