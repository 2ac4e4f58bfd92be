"""Completion latency of the face priors: one face, a context of ``--pixels`` random pixels, no refinement, the
completion rendered at each ``--render`` resolution, through ``hypersiren.priors.inference.complete`` (the path
``HyperSiren.complete`` and ``hypersiren complete`` take).

The priors compared: hypersiren's default (the basis prior), the paper-sized hypernetwork (``PAPER`` of
``hypersiren.tasks.face_prior``: 52.6M parameters) and its light form (``FAST``), at their untrained
initialisation (latency does not depend on the weights' values). The rows take turns one call at a time (order
rotated) so machine noise hits all alike; the table gives the median of ``--repeats`` calls after one warm-up
call per row, with wall-clock and process CPU milliseconds.

    python benchmarks/complete_speed.py                      # 32 -> 32 and 32 -> 128, 100 pixels, 200 calls
    python benchmarks/complete_speed.py --threads 1 --render 32,64,128
    python benchmarks/complete_speed.py --quick              # smoke test (seconds)
"""
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from hypersiren import experiments
from hypersiren.config import Config, non_negative_int, option, positive_int
from hypersiren.data.context import evaluation_masks
from hypersiren.priors import inference
from hypersiren.registry import PRIORS
from hypersiren.tasks.face_prior import FAST, PAPER, FacePrior

PRIOR_CONFIGS = {  # row name -> the prior config
    "basis (hypersiren's default)": FacePrior.Config().prior,
    "paper: full hypernet": PAPER.prior,
    "light hypernet": FAST.prior,
}
QUICK = {"hidden_features": 16, "hidden_layers": 1}


@dataclass(frozen=True, kw_only=True)
class CompleteSpeed(Config):
    resolution: int = option(32, "the face's (and context's) resolution", check=positive_int)
    pixels: int = option(100, "known pixels of the context", check=positive_int)
    render: tuple[int, ...] = option((32, 128), "completion resolutions", comma=True, check=positive_int)
    priors: tuple[str, ...] = option(tuple(PRIOR_CONFIGS), "rows", choices=tuple(PRIOR_CONFIGS), comma=True)
    repeats: int = option(200, "timed calls per row and resolution", check=positive_int)
    threads: int = option(0, "torch threads, 0 = torch's default", check=non_negative_int)
    out: str = option("runs/complete-speed", "results.json and results.md")
    quick: bool = option(False, "smoke test: tiny networks, 3 calls")


def latencies(args: CompleteSpeed) -> dict[str, dict[int, dict[str, float]]]:
    """Median wall and CPU milliseconds of one completion, per row and render resolution."""
    torch.manual_seed(0)
    face = torch.rand(1, 3, args.resolution, args.resolution)
    mask = evaluation_masks(str(args.pixels), 1, args.resolution, torch.Generator().manual_seed(0))
    priors = {}
    for name in args.priors:
        config = PRIOR_CONFIGS[name].replace(**QUICK) if args.quick else PRIOR_CONFIGS[name]
        priors[name] = PRIORS.owner(config)(config).eval()
    times = {(name, r): [] for name in priors for r in args.render}
    keys = list(times)
    with torch.inference_mode():
        for round_ in range(args.repeats + 1):  # round 0 warms up (allocation, the basis prior's grid cache)
            for name, render in keys[round_ % len(keys):] + keys[: round_ % len(keys)]:
                tick, cpu = time.perf_counter(), time.process_time()
                inference.complete(priors[name], face, mask, render)
                if round_:
                    times[name, render].append((time.perf_counter() - tick, time.process_time() - cpu))
    return {name: {r: {"ms": 1000 * statistics.median(t for t, _ in times[name, r]),
                       "cpu_ms": 1000 * statistics.median(c for _, c in times[name, r]),
                       "params": sum(p.numel() for p in priors[name].parameters())} for r in args.render}
            for name in priors}


def markdown(results: dict, args: CompleteSpeed) -> str:
    lines = [f"Completing one {args.resolution}x{args.resolution} face from {args.pixels} pixels, no refinement "
             f"(median of {args.repeats} calls, {torch.get_num_threads()} thread(s); ms wall / ms CPU):", "",
             "| prior | parameters | " + " | ".join(f"rendered at {r}x{r}" for r in args.render) + " |",
             "|---|---:|" + "---:|" * len(args.render)]
    for name, rows in results.items():
        params = next(iter(rows.values()))["params"]
        lines.append(f"| {name} | {params / 1e6:.2f}M | "
                     + " | ".join(f"{rows[r]['ms']:.2f} / {rows[r]['cpu_ms']:.2f}" for r in args.render) + " |")
    return "\n".join(lines)


def run(args: CompleteSpeed) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args = args.replace(repeats=3, render=(args.resolution, 2 * args.resolution))
    results = latencies(args)
    table = markdown(results, args)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"latency": results, "args": args.to_dict()}, indent=2))
    (out / "results.md").write_text(table + "\n")


def main(argv: list[str] | None = None) -> int:
    return experiments.main(CompleteSpeed, run, argv, prog="complete_speed")


if __name__ == "__main__":
    sys.exit(main())
