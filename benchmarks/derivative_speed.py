"""Step time and peak memory of a Laplacian-supervised SIREN fit: forward-mode derivatives vs double backward.

One training step = Laplacian of the network on the full grid, MSE against a target Laplacian, backward, Adam.
Methods:
  double-backward    the paper's code: autograd gradient, then its divergence (``hypersiren.diff.laplacian``)
  forward-hessian    ``diff.value_and_derivatives`` (forward-mode jet with the d Hessian-diagonal rows), summed
  forward-laplacian  ``diff.value_and_laplacian`` (forward-mode jet carrying one Laplacian row)

Time: all methods run interleaved in one process (round after round, so a busy machine slows them alike),
with the allocator tuned as ``hypersiren fit`` tunes it (``runtime.tune_allocator``) for all of them; the
median step is reported, the first (warm-up) round dropped and shown apart: on CPU it includes compiling the
fused elementwise kernels of the forward-mode path (``hypersiren.nn.fused``; cached on disk afterwards). Memory: the bytes autograd keeps for the
backward pass (every distinct storage saved through ``torch.autograd.graph.saved_tensors_hooks``), which is the
part of a step's memory that grows with the grid and the one the methods differ in; exact and independent of
the machine's load. On CUDA also the step's peak ``torch.cuda.max_memory_allocated`` (CPU allocations are not
traced by tracemalloc, and the process's peak RSS is dominated by torch itself at small sizes).

    python benchmarks/derivative_speed.py              # 256x256, SIREN 256x3 (the paper's setting)
    python benchmarks/derivative_speed.py --quick      # 64x64, a few steps
"""
import statistics
import sys
import time
from dataclasses import dataclass

import torch

from hypersiren import diff, experiments
from hypersiren.config import Config, non_negative_int, option, positive_int
from hypersiren.data.grid import grid
from hypersiren.nn import Siren
from hypersiren.runtime import resolve_device, tune_allocator


def _laplacian_double_backward(model, coords):
    x = coords.clone().requires_grad_(True)
    return diff.laplacian(model(x), x)


METHODS = {
    "double-backward": _laplacian_double_backward,
    "forward-hessian": lambda model, coords: diff.value_and_derivatives(model, coords)[2].sum(-1),
    "forward-laplacian": lambda model, coords: diff.value_and_laplacian(model, coords)[2],
}


@dataclass(frozen=True, kw_only=True)
class DerivativeSpeed(Config):
    size: int = option(256, "grid side", check=positive_int)
    hidden_features: int = option(256, "network width", check=positive_int)
    hidden_layers: int = option(3, "hidden-to-hidden layers", check=non_negative_int)
    steps: int = option(5, "timed steps per method", check=positive_int)
    quick: bool = option(False, "64x64 grid, 3 steps")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    json: str | None = option(None, "also write the results to this JSON file")

    def __post_init__(self):
        if self.quick:  # frozen: the smoke test's settings replace the given ones
            object.__setattr__(self, "size", 64)
            object.__setattr__(self, "steps", 3)
        super().__post_init__()


class Fit:
    """A Laplacian-supervised fit of a random target (fixed seed), ready to step."""

    def __init__(self, args, device):
        torch.manual_seed(0)
        self.coords = grid(args.size, args.size, device=device)
        self.target = torch.randn(len(self.coords), 1, device=device)
        self.model = Siren(2, 1, args.hidden_features, args.hidden_layers).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.device = device

    def step(self, method: str) -> dict[str, float]:
        """One optimisation step: its wall time (s), the bytes saved for backward and, on CUDA, peak bytes."""
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
        saved: dict[int, int] = {}

        def pack(t: torch.Tensor):
            storage = t.untyped_storage()
            saved[storage.data_ptr()] = storage.nbytes()
            return t

        tick = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            lap = METHODS[method](self.model, self.coords)
            loss = torch.mean((lap - self.target) ** 2)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if cuda:
            torch.cuda.synchronize(self.device)
        result = {"step_s": time.perf_counter() - tick, "saved_bytes": sum(saved.values())}
        if cuda:
            result["peak_bytes"] = torch.cuda.max_memory_allocated(self.device) - base
        return result


def run(args: DerivativeSpeed) -> None:
    device = resolve_device(args.device)
    tune_allocator()
    fit = Fit(args, device)
    steps: dict[str, list[dict]] = {m: [] for m in METHODS}
    for round_ in range(args.steps + 1):
        for method in METHODS:
            steps[method].append(fit.step(method))
    results = {m: {k: statistics.median(r[k] for r in rs[1:]) for k in rs[0]} | {"first_step_s": rs[0]["step_s"]}
               for m, rs in steps.items()}

    ref = results["double-backward"]
    threads = torch.get_num_threads()
    print(f"Laplacian-supervised fit, {args.size}x{args.size} grid (full batch), SIREN "
          f"{args.hidden_features}x{args.hidden_layers}, {device} ({threads} threads), median of {args.steps} steps")
    cuda = device.type == "cuda"
    print("| method | step time | speed-up | first step | saved for backward | vs double backward |"
          + (" peak memory | vs double backward |" if cuda else ""))
    print("| --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if cuda else ""))
    for method, r in results.items():
        row = (f"| {method} | {r['step_s'] * 1000:.0f} ms | {ref['step_s'] / r['step_s']:.2f}x | "
               f"{r['first_step_s']:.1f} s | {r['saved_bytes'] / 2**20:.0f} MiB | "
               f"{r['saved_bytes'] / ref['saved_bytes']:.2f}x |")
        if cuda:
            row += f" {r['peak_bytes'] / 2**20:.0f} MiB | {r['peak_bytes'] / ref['peak_bytes']:.2f}x |"
        print(row)
    if args.json:
        from hypersiren.io import write_json

        write_json(args.json, {"size": args.size, "hidden_features": args.hidden_features,
                               "hidden_layers": args.hidden_layers, "device": str(device), "threads": threads,
                               "steps": args.steps, "results": results})


def main(argv: list[str] | None = None) -> int:
    return experiments.main(DerivativeSpeed, run, argv, prog="derivative_speed")


if __name__ == "__main__":
    sys.exit(main())
