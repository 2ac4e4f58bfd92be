"""How far the basis prior trusts each kind of context: its set transformer's judgement t per face.

    python eval/context_trust.py --checkpoint runs/compare-32/basis/checkpoint.safetensors \\
        --data /path/to/faces --val-fraction 0.125 --out runs/context-trust

The basis prior (``hypersiren.priors.basis``) fits each face's SIREN to the known pixels under observation noise
lambda = exp(a + c log(n / 100) + e s + beta t), n the count of known pixels, s their spread
(``hypersiren.data.context.context_spread``) and t the set transformer's judgement of the context
(``BasisPrior.log_noise_factor``): t > 0 leans on the prior, t < 0 follows the pixels. a, c, e and beta are those
the checkpoint's calibration refitted (``BasisPrior.trust``).
This script shows how the prior judges contexts: for the held-out faces, the spread, t (mean, range) and the
median lambda for random pixels of several counts and for each half of the face known. Writes OUT/trust.md and OUT/trust.json.
"""
import sys
from dataclasses import dataclass

import torch

from hypersiren import experiments
from hypersiren.config import option, positive_int
from hypersiren.data.context import HALF_SIDES, half_masks, random_pixel_masks
from hypersiren.errors import InputError
from hypersiren.io import atomic_write, prepare_output_dir, write_json


@dataclass(frozen=True, kw_only=True)
class ContextTrust(experiments.PriorEvaluation):
    pixels: tuple[int, ...] = option((10, 100, 512, 1000), "counts of random known pixels", check=positive_int,
                                     comma=True)
    out: str = option("runs/context-trust", "output directory")


def contexts(config: ContextTrust, count: int, resolution: int) -> dict[str, torch.Tensor]:
    """Name -> masks (count, R, R): random pixels of each feasible count, then each half known."""
    generator = torch.Generator().manual_seed(config.seed)
    masks = {f"{n} random pixels": random_pixel_masks(count, resolution, n, generator)
             for n in config.pixels if n <= resolution * resolution}
    return masks | {f"{side} half": half_masks(count, resolution, side) for side in HALF_SIDES}


def run(config: ContextTrust) -> None:
    from hypersiren.prior import HyperSiren
    from hypersiren.priors.basis import BasisPrior, context_terms

    model = HyperSiren.load(config.checkpoint)
    prior = model.prior
    if not isinstance(prior, BasisPrior):
        raise InputError(f"{config.checkpoint} holds a {prior.method} prior; the context's trust is the basis prior's")
    faces = config.faces(model.resolution).to(model.device).float() * 2 - 1
    out = prepare_output_dir(config.out)
    rows = {}
    with torch.no_grad():
        for name, masks in contexts(config, len(faces), model.resolution).items():
            masks = masks.to(model.device)
            t = prior.log_noise_factor(faces, masks)
            terms = context_terms(masks)
            lam = prior.ridge_lambda(terms, t)
            rows[name] = {"known": masks.flatten(1).sum(dim=1).float().mean().item(),
                          "spread_mean": terms[:, 1].mean().item(), "t_mean": t.mean().item(),
                          "t_min": t.min().item(), "t_max": t.max().item(), "lambda_median": lam.median().item()}
    a, c, e, beta = prior.trust().tolist()
    lines = [f"The basis prior's judgement of {len(faces)} held-out faces' contexts at {model.resolution}x"
             f"{model.resolution}: t = log of the factor on the fit's noise (> 0: leans on the prior); lambda = "
             f"exp({a:.2f} + {c:.2f} log(n / 100) + {e:.2f} s + {beta:.2f} t), s the spread of the known pixels.", "",
             "| context | known pixels | spread s | t mean | t range | median lambda |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {row['known']:.0f} | {row['spread_mean']:+.2f} | {row['t_mean']:+.2f} | "
              f"{row['t_min']:+.2f} to {row['t_max']:+.2f} | "
              f"{row['lambda_median']:.3g} |" for name, row in rows.items()]
    with atomic_write(out / "trust.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    write_json(out / "trust.json", {"config": config.to_dict(), "faces": len(faces),
                                    "trust": {"a": a, "c": c, "e": e, "beta": beta}, "contexts": rows})
    print("\n".join(lines))
    print(f"wrote {out}/ (trust.md, trust.json)")


def main(argv: list[str] | None = None) -> int:
    return experiments.main(ContextTrust, run, argv, prog="context_trust")


if __name__ == "__main__":
    sys.exit(main())
