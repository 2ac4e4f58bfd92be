"""Face-prior training speed: step time of the paper-sized hypernetwork and the lighter designs, and the held-out
PSNR each reaches in a fixed wall-clock budget.

Part 1 (step time): the engine's training step (``FacePrior.batch`` + ``loss`` + backward + gradient clipping
+ Adam, the optimiser ``hypersiren train prior`` uses) at batch 100, 32 x 32 faces, for every configuration.
The configurations take turns one step at a time (order rotated every round) so machine noise hits all alike;
the table gives the median over the timed steps and the parameter count.

Part 2 (quality per minute, ``--minutes`` > 0): ``hypersiren train prior`` of the paper's configuration and of
the configurations named by ``--budget-configs``, each for the same wall-clock budget, then the held-out PSNR at
10 / 100 / 1000 pixels and the top half (paper protocol, ``hypersiren.evaluation``).

    python benchmarks/prior_speed.py --steps 5                                  # step times only
    python benchmarks/prior_speed.py --data /path/to/faces --val-fraction 0.125 --minutes 20
    python benchmarks/prior_speed.py --quick                                    # smoke test (seconds)
"""
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from hypersiren import experiments
from hypersiren.config import Config, non_negative_float, non_negative_int, option, positive_float, positive_int
from hypersiren.priors.basis import BasisPrior
from hypersiren.priors.hypernet import HypernetPrior
from hypersiren.tasks.face_prior import FacePrior

CONFIGS = {  # name -> changes to the paper's face-prior config (``BASE``)
    "paper: full hypernet, all pixels": {},
    "paper, torch's default (foreach) Adam": {},
    "full hypernet, 256 target pixels": {"target_pixels": 256},
    "light hypernet, all pixels": {"prior": {"hypernet": "light"}},
    "light hypernet, 256 target pixels": {"prior": {"hypernet": "light"}, "target_pixels": 256},
    "light hypernet, 256 target pixels, batch 32": {"prior": {"hypernet": "light"}, "target_pixels": 256,
                                                    "batch_size": 32},
    "basis prior (hypersiren's default), all pixels": {"prior": BasisPrior.Config()},
}
PAPER = "paper: full hypernet, all pixels"
UNFUSED_ADAM = "paper, torch's default (foreach) Adam"
BASE = FacePrior.Config(prior=HypernetPrior.Config(), batch_size=100, flip=False,  # set encoder (ReLU), full hypernet
                        engine={"lr": 5e-5, "summary_every": 0, "progress": False})
QUICK_PRIOR = {"hidden_features": 16, "hidden_layers": 1}


@dataclass(frozen=True, kw_only=True)
class PriorSpeed(Config):
    data: str | None = option(None, "faces folder (default: scikit-image's LFW faces)")
    val_fraction: float = option(0.1, "held-out share of the folder", check=positive_float)
    resolution: int = option(32, "face resolution", check=positive_int)
    batch_size: int = option(100, "batch of the step-time table", check=positive_int)
    steps: int = option(5, "timed steps per configuration", check=non_negative_int)
    configs: tuple[str, ...] = option(tuple(CONFIGS)[:5], "configurations of the step-time table",
                                      choices=tuple(CONFIGS))
    minutes: float = option(0.0, "training budget per configuration for part 2, 0 = skip", check=non_negative_float)
    budget_configs: tuple[str, ...] = option((PAPER, "light hypernet, 256 target pixels, batch 32"),
                                             "configurations trained for the budget (default: the paper's and "
                                             "hypersiren's best)", choices=tuple(CONFIGS))
    lr: float | None = option(None, "learning rate of part 2 (default: train prior's)", check=positive_float)
    out: str = option("runs/prior-speed", "run directories and results.json")
    quick: bool = option(False, "smoke test: 16 x 16, tiny batch, 2 steps, 0.05 min")

    def __post_init__(self):
        if self.quick:  # frozen: the smoke test's settings replace the given ones before they are checked
            for name, value in dict(resolution=16, batch_size=8, steps=2, minutes=self.minutes or 0.05).items():
                object.__setattr__(self, name, value)
        super().__post_init__()

    def prior(self, name: str, batch_size: int | None = None) -> FacePrior.Config:
        """The face-prior config of one row: the configuration's changes on the benchmark's data and size."""
        config = BASE.replace(data=self.data, val_fraction=self.val_fraction, resolution=self.resolution,
                              batch_size=self.batch_size).replace(**CONFIGS[name])
        return config.replace(batch_size=batch_size) if batch_size else config


def step_times(args: PriorSpeed) -> dict[str, dict]:
    """Median seconds per training step (the engine's ``train_step``) of each configuration at the same batch
    size, interleaved."""
    from hypersiren.engine import make_optimizer, train_step
    from hypersiren.runtime import seed_everything, tune_allocator

    tune_allocator()
    runs = {}
    for name in args.configs:
        seed_everything(0)
        task = FacePrior(args.prior(name, args.batch_size), torch.device("cpu"))
        optimizer = (torch.optim.Adam(task.parameters(), lr=5e-5) if name == UNFUSED_ADAM
                     else make_optimizer(task.parameters(), 5e-5))  # the engine's (fused where supported)
        runs[name] = (task, optimizer, [])
    names = list(runs)
    for round_ in range(args.steps + 1):  # round 0 warms up (first-touch allocation)
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            task, optimizer, times = runs[name]
            tick, cpu = time.perf_counter(), time.process_time()
            train_step(task, task.model, optimizer, round_, clip_grad=1.0)
            if round_:
                times.append((time.perf_counter() - tick, time.process_time() - cpu))
    return {name: {"sec_per_step": statistics.median(t for t, _ in times),
                   "cpu_sec_per_step": statistics.median(c for _, c in times),
                   "params": sum(p.numel() for p in task.parameters())}
            for name, (task, _, times) in runs.items()}


def budget_runs(args: PriorSpeed) -> dict[str, dict]:
    """Train each budget configuration for ``args.minutes`` like ``hypersiren train prior``; held-out metrics."""
    results = {}
    for i, name in enumerate(args.budget_configs):
        config = args.prior(name).replace(out=str(Path(args.out) / f"budget-{i}"), engine={
            "steps": 10_000_000, "minutes": args.minutes, **({"lr": args.lr} if args.lr else {})})
        if args.quick:
            config = config.replace(prior=config.prior.replace(**QUICK_PRIOR), eval_images=8)
        print(f"{name}: train prior into {config.out}", flush=True)
        _, metrics = experiments.train(FacePrior, config)
        results[name] = {k: metrics[k] for k in metrics if k.startswith("psnr_") or k in ("steps", "sec_per_step", "params")}
        results[name]["batch_size"] = config.batch_size
    return results


def markdown(speed: dict, budget: dict, args: PriorSpeed) -> str:
    lines = [] if not speed else [f"Training step at batch {args.batch_size}, {args.resolution}x{args.resolution} faces "
             f"(median of {args.steps} interleaved steps, {torch.get_num_threads()} threads; CPU s = process CPU "
             "time, which machine load inflates less than wall time):", "",
             "| configuration | parameters | s / step | CPU s / step | vs paper (CPU) |", "|---|---:|---:|---:|---:|"]
    paper = speed.get(PAPER, {}).get("cpu_sec_per_step")
    for name, row in speed.items():
        ratio = f"{paper / row['cpu_sec_per_step']:.1f}x faster" if paper and name != PAPER else ""
        lines.append(f"| {name} | {row['params'] / 1e6:.2f}M | {row['sec_per_step']:.2f} | "
                     f"{row['cpu_sec_per_step']:.2f} | {ratio} |")
    if budget:
        settings = [k for k in next(iter(budget.values())) if k.startswith("psnr_")]
        lines += [""] * bool(lines) + [f"Held-out PSNR (dB) after {args.minutes:g} minutes of training each:", "",
                  "| configuration | batch | steps | s / step | " + " | ".join(s.replace("psnr_", "") for s in settings) + " |",
                  "|---|---:|---:|---:|" + "---:|" * len(settings)]
        for name, row in budget.items():
            lines.append(f"| {name} | {row['batch_size']} | {row['steps']} | {row['sec_per_step']:.2f} | "
                         + " | ".join(f"{row[s]:.2f}" for s in settings) + " |")
    return "\n".join(lines)


def run(args: PriorSpeed) -> None:
    speed = step_times(args) if args.steps else {}
    budget = budget_runs(args) if args.minutes else {}
    table = markdown(speed, budget, args)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"step_time": speed, "budget": budget, "args": args.to_dict()}, indent=2))
    (out / "results.md").write_text(table + "\n")


def main(argv: list[str] | None = None) -> int:
    return experiments.main(PriorSpeed, run, argv, prog="prior_speed")


if __name__ == "__main__":
    sys.exit(main())
