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
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

CONFIGS = {  # name -> options of ``hypersiren train prior`` that differ from the paper's
    "paper: full hypernet, all pixels": {},
    "paper, torch's default (foreach) Adam": {"unfused_adam": True},
    "full hypernet, 256 target pixels": {"target_pixels": 256},
    "light hypernet, all pixels": {"hypernet": "light"},
    "light hypernet, 256 target pixels": {"hypernet": "light", "target_pixels": 256},
    "light hypernet, 256 target pixels, batch 32": {"hypernet": "light", "target_pixels": 256, "batch_size": 32},
}
PAPER = "paper: full hypernet, all pixels"
BASE = dict(data=None, resolution=32, val_fraction=0.1, max_train=0, eval_images=100, batch_size=100, target_pixels=0,
            flip=False, method="hypernet", encoder="set", activation="relu", hypernet="full", no_progress=True)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="faces folder (default: scikit-image's LFW faces)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="held-out share of the folder (default: 0.1)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=100, help="batch of the step-time table (default: 100)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration (default: 5)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS)[:5],
                        help="configurations of the step-time table")
    parser.add_argument("--minutes", type=float, default=0.0, help="training budget per configuration for part 2 (0: skip)")
    parser.add_argument("--budget-configs", nargs="+", choices=list(CONFIGS),
                        default=[PAPER, "light hypernet, 256 target pixels, batch 32"],
                        help="configurations trained for the budget (default: the paper's and hypersiren's best)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate of part 2 (default: train prior's)")
    parser.add_argument("--out", default="runs/prior-speed", help="run directories and results.json")
    parser.add_argument("--quick", action="store_true", help="smoke test: 16 x 16, tiny batch, 2 steps, 0.1 min")
    args = parser.parse_args(argv)
    if args.quick:
        args.resolution, args.batch_size, args.steps = 16, 8, 2
        args.minutes = args.minutes or 0.05
    return args


def config_of(name: str, args: argparse.Namespace, batch_size: int | None = None) -> dict:
    config = {**BASE, "data": args.data, "val_fraction": args.val_fraction, "resolution": args.resolution,
              "batch_size": args.batch_size, **CONFIGS[name]}
    if batch_size:
        config["batch_size"] = batch_size
    return config


def step_times(args: argparse.Namespace) -> dict[str, dict]:
    """Median seconds per training step of each configuration at the same batch size, interleaved."""
    from hypersiren.engine import make_optimizer
    from hypersiren.runtime import seed_everything, tune_allocator
    from hypersiren.tasks.face_prior import FacePrior

    tune_allocator()
    runs = {}
    for name in args.configs:
        seed_everything(0)
        task = FacePrior(config_of(name, args, args.batch_size), torch.device("cpu"))
        optimizer = (torch.optim.Adam(task.parameters(), lr=5e-5) if CONFIGS[name].get("unfused_adam")
                     else make_optimizer(task.parameters(), 5e-5))  # the engine's (fused where supported)
        runs[name] = (task, optimizer, [])
    names = list(runs)
    for round_ in range(args.steps + 1):  # round 0 warms up (first-touch allocation)
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            task, optimizer, times = runs[name]
            tick, cpu = time.perf_counter(), time.process_time()
            loss, _ = task.loss(task.model, task.batch(round_))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(task.parameters(), 1.0)
            optimizer.step()
            if round_:
                times.append((time.perf_counter() - tick, time.process_time() - cpu))
    return {name: {"sec_per_step": statistics.median(t for t, _ in times),
                   "cpu_sec_per_step": statistics.median(c for _, c in times),
                   "params": sum(p.numel() for p in task.parameters())}
            for name, (task, _, times) in runs.items()}


def budget_runs(args: argparse.Namespace) -> dict[str, dict]:
    """Train each budget configuration for ``args.minutes`` with ``hypersiren train prior``; held-out metrics."""
    from hypersiren.cli import main as hypersiren

    results = {}
    for i, name in enumerate(args.budget_configs):
        config = config_of(name, args, None if args.quick else CONFIGS[name].get("batch_size"))
        out = Path(args.out) / f"budget-{i}"
        command = ["train", "prior", "--resolution", str(config["resolution"]), "--batch-size", str(config["batch_size"]),
                   "--hypernet", config["hypernet"], "--target-pixels", str(config["target_pixels"]),
                   "--val-fraction", str(args.val_fraction), "--steps", "10000000", "--minutes", str(args.minutes),
                   "--summary-every", "0", "--out", str(out), "--no-progress", *(["--data", args.data] if args.data else []),
                   *(["--lr", str(args.lr)] if args.lr else [])]
        if args.quick:
            command += ["--hidden-features", "16", "--hidden-layers", "1", "--latent-dim", "8", "--eval-images", "8"]
        print("hypersiren " + " ".join(command), flush=True)
        if hypersiren(command):
            raise SystemExit(f"training {name} failed")
        metrics = json.loads((out / "metrics.json").read_text())
        results[name] = {k: metrics[k] for k in metrics if k.startswith("psnr_") or k in ("steps", "sec_per_step", "params")}
        results[name]["batch_size"] = config["batch_size"]
    return results


def markdown(speed: dict, budget: dict, args: argparse.Namespace) -> str:
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


def main(argv=None) -> int:
    args = parse_args(argv)
    speed = step_times(args) if args.steps else {}
    budget = budget_runs(args) if args.minutes else {}
    table = markdown(speed, budget, args)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"step_time": speed, "budget": budget, "args": vars(args)}, indent=2))
    (out / "results.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
