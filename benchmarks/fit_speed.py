"""Fit-step speed: hypersiren's training step against the ``siren-pytorch`` package and the matmul bound.

Every contender trains on the same image (``camera``, full batch, SIREN 2 -> 4 sine layers of 256 -> 1 by
default, fp32, Adam lr 1e-4) in its own worker process, so allocator settings stay per contender. The parent
hands out blocks of steps round-robin (rotating the order every round), so machine noise hits every row alike.

Rows:
  hypersiren                 the engine's step (``SignalFit.loss`` + backward + Adam) with the allocator tuned as
                             ``hypersiren fit`` does (``runtime.tune_allocator``)
  hypersiren, untuned alloc  the same step without the tuning (glibc defaults)
  hypersiren --compile       the tuned step with the network compiled as ``--compile`` does (only with --compile)
  siren-pytorch              ``siren_pytorch.SirenNet`` of the same architecture, glibc defaults
  siren-pytorch + env        the same with MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised
  matmul bound               only the forward + backward matrix products of the same shapes
  matmul + sine floor        the matrix products plus the arithmetic the sine needs (a sin per activation forward,
                             a cos and a product backward) on a cache-resident buffer: no memory traffic at all,
                             so no implementation of the fp32 step with torch's sin/cos can beat it on this CPU

Prints a markdown table: median seconds per step, ratio to siren-pytorch, the first step's time (one-off costs:
allocation, compilation), minor page faults per step and PSNR (dB, values in [-1, 1]) after 100/300/500 steps.

    python benchmarks/fit_speed.py              # 500 steps per contender (long on a laptop CPU)
    python benchmarks/fit_speed.py --quick      # a smoke test: a few steps at 64x64
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from hypersiren import experiments
from hypersiren.config import Config, non_negative_int, option, positive_int
from hypersiren.errors import InputError

ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str((1 << 31) - 1)}
CONTENDERS = {  # name -> (worker kind, extra environment)
    "hypersiren": ("hypersiren", {}),
    "hypersiren, untuned alloc": ("hypersiren-untuned", {}),
    "hypersiren --compile": ("hypersiren-compile", {}),
    "siren-pytorch": ("siren-pytorch", {}),
    "siren-pytorch + env": ("siren-pytorch", ALLOCATOR_ENV),
    "matmul bound": ("matmul", {}),
    "matmul + sine floor": ("matmul-sine", {}),
}
BASELINE = "siren-pytorch"
PSNR_STEPS = (100, 300, 500)


@dataclass(frozen=True, kw_only=True)
class FitSpeed(Config):
    steps: int = option(500, "training steps per contender", check=positive_int)
    size: int = option(256, "image side in pixels", check=positive_int)
    image: str = option("camera", "image file or built-in name")
    hidden_features: int = option(256, "network width", check=positive_int)
    hidden_layers: int = option(3, "hidden-to-hidden layers", check=non_negative_int)
    block: int = option(10, "steps a contender runs per turn", check=positive_int)
    warmup: int = option(2, "untimed first steps per contender", check=non_negative_int)
    threads: int = option(0, "torch threads per worker, 0 = torch's choice", check=non_negative_int)
    device: str = option("cpu", "cpu or cuda")
    only: tuple[str, ...] | None = option(None, "run only these rows", choices=tuple(CONTENDERS))
    compile: bool = option(False, "add the torch.compile row (compiles for a minute on CPU)")
    quick: bool = option(False, "smoke test: 6 steps at 64x64")
    json: str | None = option(None, "also write the results to this JSON file")
    worker: str | None = option(None, argparse.SUPPRESS)

    def __post_init__(self):
        if self.quick:  # frozen: the smoke test's settings replace the given ones before they are checked
            for name, value in dict(steps=6, size=64, block=3, warmup=1).items():
                object.__setattr__(self, name, value)
        super().__post_init__()
        if self.warmup >= self.steps:
            raise InputError(f"--warmup ({self.warmup}) must be below --steps ({self.steps})")


# ----------------------------------------------------------------------------------------------- workers


def _task(args: FitSpeed):
    """The ``hypersiren fit image`` task of the benchmark's image, size and network."""
    from hypersiren.tasks.image import FitImage

    return FitImage(FitImage.Config(input=args.image, size=args.size, hidden_features=args.hidden_features,
                                    hidden_layers=args.hidden_layers), args.device)


class Trainer:
    """One contender: ``step()`` trains one step (the engine's ``train_step`` on the ``fit image`` task, with our
    network or siren-pytorch's), ``psnr()`` evaluates the current fit."""

    def __init__(self, kind: str, args):
        import torch

        from hypersiren.metrics import psnr_from_mse
        from hypersiren.runtime import seed_everything, tune_allocator

        if kind in ("hypersiren", "hypersiren-compile"):
            tune_allocator()  # what `hypersiren fit` (engine.train) does first; never for the reference
        seed_everything(0)
        self.torch, self.psnr_from_mse = torch, psnr_from_mse
        self.task = _task(args)
        self.device = self.task.device
        self.ours = kind.startswith("hypersiren")
        if self.ours:
            self.model = self.task.model
            if kind == "hypersiren-compile":
                self.model.compile()  # as engine.train does with --compile
        else:
            from siren_pytorch import SirenNet

            self.model = SirenNet(2, args.hidden_features, self.task.values.shape[-1], args.hidden_layers + 1,
                                  w0=30.0, w0_initial=30.0).to(self.device)
        if self.ours:  # the engine's optimiser (fused Adam where supported); siren-pytorch as a user would run it
            from hypersiren.engine import make_optimizer

            self.optimizer = make_optimizer(self.model.parameters(), 1e-4)
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.count = 0

    def step(self) -> None:
        from hypersiren.engine import train_step

        train_step(self.task, self.model, self.optimizer, self.count)
        self.count += 1

    def psnr(self) -> float:
        with self.torch.no_grad():
            fit = self.model(self.task.coords)
        return self.psnr_from_mse(float(self.torch.mean((fit - self.task.values) ** 2)))


class MatmulBound:
    """Only the matrix products of one training step: forward, gradient of inputs and of weights, per layer;
    with ``sine``, also sin (forward) and cos times a gradient (backward) of as many values as the sine layers
    have activations, computed on a buffer small enough to stay in the core's cache."""

    CACHE_ELEMENTS = 1 << 16  # 256 KiB of float32

    def __init__(self, args, sine: bool = False):
        import torch

        self.torch = torch
        n = args.size * args.size
        sine_values = n * args.hidden_features * (args.hidden_layers + 1) if sine else 0
        self.sine_rounds = -(-sine_values // self.CACHE_ELEMENTS)
        self.cache = [torch.rand(self.CACHE_ELEMENTS, device=args.device) for _ in range(3)]
        widths = [2] + [args.hidden_features] * (args.hidden_layers + 1) + [1]
        gen = torch.Generator().manual_seed(0)

        def rand(*shape):
            return torch.randn(*shape, generator=gen).to(args.device)

        self.products = []  # (a, b, out) with out = a @ b
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            x, w, g = rand(n, fan_in), rand(fan_out, fan_in), rand(n, fan_out)
            self.products.append((x, w.t(), rand(n, fan_out)))  # forward
            self.products.append((g.t(), x, rand(fan_out, fan_in)))  # weight gradient
            if i > 0:  # coordinates need no gradient
                self.products.append((g, w, rand(n, fan_in)))
        self.count = 0

    def step(self) -> None:
        for a, b, out in self.products:
            self.torch.mm(a, b, out=out)
        pre, grad, out = self.cache
        for _ in range(self.sine_rounds):
            self.torch.sin(pre, out=out)
            self.torch.cos(pre, out=out).mul_(grad)
        self.count += 1

    def psnr(self) -> float:
        return float("nan")


def run_worker(args) -> None:
    """Answer ``{"steps": k}`` requests on stdin with step times, PSNRs at PSNR_STEPS and minor faults."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker.startswith("matmul"):
        contender = MatmulBound(args, sine=args.worker == "matmul-sine")
    else:
        contender = Trainer(args.worker, args)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    print(json.dumps({"ready": True, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        times, psnrs = [], {}
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(request["steps"]):
            tick = time.perf_counter()
            contender.step()
            sync()
            times.append(time.perf_counter() - tick)
            if contender.count in PSNR_STEPS or contender.count == args.steps:
                psnrs[contender.count] = contender.psnr()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        print(json.dumps({"times": times, "psnr": psnrs, "faults": faults}), flush=True)


# ----------------------------------------------------------------------------------------------- parent


class Worker:
    def __init__(self, name: str, args, argv: list[str]):
        kind, extra_env = CONTENDERS[name]
        env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV} | extra_env
        self.name = name
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv, "--worker", kind],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        self.threads = 0  # set by ready()
        self.times: list[float] = []
        self.faults: list[float] = []
        self.first: float | None = None
        self.psnr: dict[int, float] = {}
        self.done = 0

    def ready(self) -> None:
        """Wait for the worker to have built its data and model."""
        self.threads = self._read()["threads"]

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.name!r} died (exit status {self.process.wait()})")
        return json.loads(line)

    def run(self, steps: int, warmup: int) -> None:
        self.process.stdin.write(json.dumps({"steps": steps}) + "\n")
        self.process.stdin.flush()
        reply = self._read()
        start = self.done
        if start == 0:
            self.first = reply["times"][0]
        self.done += steps
        timed = [t for i, t in enumerate(reply["times"]) if start + i >= warmup]
        self.times += timed
        if timed and start >= warmup:  # fault counts of blocks without one-off warm-up costs
            self.faults.append(reply["faults"] / steps)
        self.psnr.update({int(k): v for k, v in reply["psnr"].items()})

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def _fmt_psnr(value) -> str:
    return "–" if value is None or value != value else f"{value:.2f}"


def table(workers: list[Worker], steps: int) -> tuple[str, dict]:
    psnr_steps = sorted({s for s in PSNR_STEPS if s <= steps} | {steps})
    median = {w.name: statistics.median(w.times) for w in workers}
    base = median.get(BASELINE)
    lines = ["| contender | s/step (median) | vs siren-pytorch | first step s | minor faults/step | "
             + " | ".join(f"PSNR@{s}" for s in psnr_steps) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(psnr_steps)]
    results = {}
    for w in workers:
        faults = statistics.median(w.faults) if w.faults else float("nan")
        ratio = f"{median[w.name] / base:.2f}x" if base else "–"
        lines.append(f"| {w.name} | {median[w.name]:.3f} | {ratio} | {w.first:.2f} | {faults:.0f} | "
                     + " | ".join(_fmt_psnr(w.psnr.get(s)) for s in psnr_steps) + " |")
        results[w.name] = {"sec_per_step_median": median[w.name], "sec_per_step_min": min(w.times), "first_step": w.first,
                           "minor_faults_per_step": faults, "psnr": {str(k): v for k, v in w.psnr.items()}}
    bound = median.get("matmul bound")
    for name in ("hypersiren", "matmul + sine floor"):
        if bound and name in median:
            lines.append(f"\n{name} / matmul bound: {median[name] / bound:.2f}x")
    return "\n".join(lines), results


def run(args: FitSpeed, argv: list[str]) -> int:
    if args.worker:
        run_worker(args)
        return 0
    names = args.only or [n for n in CONTENDERS if args.compile or n != "hypersiren --compile"]
    workers = [Worker(name, args, argv) for name in names]  # they start up in parallel
    for w in workers:
        w.ready()
    import torch

    print(f"fit step, {args.image} {args.size}x{args.size}, SIREN 2-{args.hidden_features}x{args.hidden_layers + 1}-1, "
          f"fp32, {args.device}, torch {torch.__version__}, {workers[0].threads} threads per worker, "
          f"{args.steps} steps, blocks of {args.block}", flush=True)
    from tqdm.auto import tqdm

    rounds = -(-args.steps // args.block)
    try:
        for r in tqdm(range(rounds), desc="rounds"):
            steps = min(args.block, args.steps - r * args.block)
            order = workers[r % len(workers):] + workers[: r % len(workers)]
            for w in order:
                w.run(steps, args.warmup)
    finally:
        for w in workers:
            w.close()
    text, results = table(workers, args.steps)
    print(text)
    if args.json:
        from hypersiren.io import write_json

        write_json(args.json, {"args": {k: v for k, v in args.to_dict().items() if k != "worker"}, "results": results})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return experiments.main(FitSpeed, lambda config: run(config, argv), argv, prog="fit_speed")


if __name__ == "__main__":
    sys.exit(main())
