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
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="training steps per contender (default: 500)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default: 256)")
    parser.add_argument("--image", default="camera", help="image file or built-in name (default: camera)")
    parser.add_argument("--hidden-features", type=int, default=256)
    parser.add_argument("--hidden-layers", type=int, default=3, help="hidden-to-hidden layers (default: 3)")
    parser.add_argument("--block", type=int, default=10, help="steps a contender runs per turn (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps per contender (default: 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per worker (default: 0 = torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--only", nargs="+", choices=list(CONTENDERS), help="run only these rows")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile row (compiles for a minute on CPU)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 6 steps at 64x64")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.size, args.block, args.warmup = 6, 64, 3, 1
    if min(args.steps, args.size, args.block, args.hidden_features) < 1 or args.hidden_layers < 0 or args.warmup < 0:
        parser.error("--steps, --size, --block and --hidden-features must be positive, --hidden-layers and --warmup >= 0")
    if args.warmup >= args.steps:
        parser.error(f"--warmup ({args.warmup}) must be below --steps ({args.steps})")
    return args


# ----------------------------------------------------------------------------------------------- workers


def _task(args):
    """The ``hypersiren fit image`` task exactly as the CLI builds it."""
    import torch

    from hypersiren.tasks.image import FitImage

    parser = argparse.ArgumentParser()
    FitImage.add_arguments(parser)
    config = vars(parser.parse_args([args.image, "--size", str(args.size), "--hidden-features",
                                     str(args.hidden_features), "--hidden-layers", str(args.hidden_layers)]))
    return FitImage(config, torch.device(args.device))


class Trainer:
    """One contender: ``step()`` trains one step, ``psnr()`` evaluates the current fit."""

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
        """The engine's inner step (engine.train): batch, task loss, zero_grad, backward, Adam step."""
        if self.ours:
            loss, _ = self.task.loss(self.model, self.task.batch(self.count))
        else:
            coords, target = self.task.batch(self.count)
            loss = self.torch.mean((self.model(coords) - target) ** 2)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
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


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
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

        write_json(args.json, {"args": {k: v for k, v in vars(args).items() if k != "worker"}, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
