"""``fit wave``: solve the 2-D wave equation u_tt = c^2 Laplacian(u) from a Gaussian pulse at rest (paper, 4.3).

The network maps (t, x, y), t in [0, duration] and (x, y) in [-1, 1]^2, to u. Loss terms at random points:
the PDE residual, the initial conditions u(0) = pulse and u_t(0) = 0 and the Dirichlet condition u = 0 on
the square's edges. Residual and time derivative are scaled by the pulse's time scale tau = width / c so every
term is of the size of u. Time curriculum (the paper's): the sampled time window grows linearly from 0 to the
full duration over the first ``--curriculum`` fraction of the steps. The metric is the relative L2 error against
a second-order finite-difference solution on a fine grid at ``--frames`` times.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hypersiren.config import non_negative_float, option, positive_float, positive_int
from hypersiren.data.grid import grid
from hypersiren.data.image import save_image
from hypersiren.diff import value_and_derivatives
from hypersiren.engine import EngineConfig
from hypersiren.errors import InputError
from hypersiren.nn import NetworkConfig, build_model
from hypersiren.nn.measure import step_bytes
from hypersiren.pde import gaussian_pulse, leapfrog_wave, wave_residual
from hypersiren.registry import TASKS
from hypersiren.tasks.base import Task, TaskConfig
from hypersiren.viz import colormap, normalize, side_by_side, stack_rows

MAX_PULSE_WIDTH = 0.25  # so the pulse is < 4e-4 at the edges, where the Dirichlet condition holds
FRAME_NODE_BYTES = 64  # memory per node and frame: the reference, the network's field and their pictures
MAX_TRAVEL = 100.0  # speed x duration in domain units: the reference's time steps grow with it (25,600 at 257 nodes)


@TASKS.register
class Wave(Task):
    name = "wave"
    kind = "pde/wave"
    description = "2-D wave equation from a Gaussian pulse at rest, time curriculum; vs finite differences"

    @dataclass(frozen=True, kw_only=True)
    class Config(NetworkConfig, TaskConfig):
        speed: float = option(1.0, "wave speed c in domain units per unit time", check=positive_float)
        duration: float = option(1.0, "end time T", check=positive_float)
        pulse_width: float = option(0.1, f"standard deviation of the initial Gaussian pulse, at most {MAX_PULSE_WIDTH}",
                                    check=positive_float)
        batch_points: int = option(4096, "residual points per step", check=positive_int)
        initial_points: int = option(1024, "points at t = 0 per step", check=positive_int)
        boundary_points: int = option(512, "points on the edges per step", check=positive_int)
        condition_weight: float = option(1.0, "weight of the initial and boundary terms against the residual",
                                         check=positive_float)
        curriculum: float = option(0.5, "fraction of the steps over which the time window grows to T, 0 = off",
                                   check=non_negative_float)
        frames: int = option(5, "evaluation times linspace(0, T, frames), >= 2", check=positive_int, resumable=True)
        reference_size: int = option(257, "nodes per side of the finite-difference reference grid, >= 17",
                                     check=positive_int, resumable=True)
        engine: EngineConfig = EngineConfig(steps=2000)

        def __post_init__(self):
            super().__post_init__()
            if not self.pulse_width <= MAX_PULSE_WIDTH:
                raise InputError(f"--pulse-width must be in (0, {MAX_PULSE_WIDTH}], got {self.pulse_width}")
            if self.speed * self.duration > MAX_TRAVEL:
                raise InputError(f"--speed x --duration = {self.speed * self.duration:g} domain units travelled; expected "
                                 f"at most {MAX_TRAVEL:g} (the finite-difference reference's time steps grow with it)")
            if not self.curriculum <= 1:
                raise InputError(f"--curriculum must be a fraction in [0, 1], got {self.curriculum}")
            if self.frames < 2:
                raise InputError(f"--frames must be at least 2, got {self.frames}")
            if self.reference_size < 17:
                raise InputError(f"--reference-size must be at least 17 nodes, got {self.reference_size}")
            if self.pulse_width < 0.5 / (self.reference_size - 1):
                raise InputError(f"--pulse-width {self.pulse_width:g} is narrower than a quarter of the reference "
                                 f"grid's spacing 2 / (--reference-size - 1) = {2 / (self.reference_size - 1):.3g}, "
                                 "which cannot sample it; expected a wider pulse or a finer grid")

    def __init__(self, config: Config, device: torch.device | str | None = None):
        super().__init__(config, device)
        self.speed, self.duration, self.width = float(config.speed), float(config.duration), float(config.pulse_width)
        self.tau = self.width / self.speed
        n = config.reference_size
        self.space = grid(n, n)
        initial = gaussian_pulse(self.space.double(), self.width).reshape(n, n).numpy()
        self.times = torch.linspace(0, self.duration, config.frames).tolist()
        self.reference = torch.from_numpy(leapfrog_wave(initial, self.speed, self.duration, config.frames)).float()
        self._meta = config.network_meta(3, 1)
        self.model = build_model(**self._meta).to(self.device)

    def model_meta(self) -> dict[str, Any]:
        return self._meta

    def memory_needs(self) -> dict[str, float]:
        c = self.config
        network = f"--hidden-features {c.hidden_features}, --hidden-layers {c.hidden_layers}"
        nodes, points = c.reference_size**2, c.batch_points + c.initial_points + c.boundary_points
        return {f"--reference-size {c.reference_size} and --frames {c.frames} ({network})":
                    nodes * c.frames * FRAME_NODE_BYTES + step_bytes(nodes, c.hidden_features, c.hidden_layers),
                f"a training step on --batch-points {c.batch_points} + --initial-points {c.initial_points} + "
                f"--boundary-points {c.boundary_points} points ({network})":
                    step_bytes(points, c.hidden_features, c.hidden_layers, derivatives=6)}

    def time_window(self, step: int) -> float:
        """The largest time sampled at ``step`` under the curriculum."""
        ramp = self.config.curriculum * self.config.engine.steps
        return self.duration if ramp == 0 else self.duration * min(1.0, (step + 1) / ramp)

    def batch(self, step: int) -> dict[str, Tensor]:
        """Points (t, x, y): ``interior`` for the residual, ``initial`` at t = 0, ``boundary`` on the edges."""
        t_max, dev = self.time_window(step), self.device
        n, m, b = self.config.batch_points, self.config.initial_points, self.config.boundary_points
        interior = torch.cat([torch.rand(n, 1, device=dev) * t_max, torch.rand(n, 2, device=dev) * 2 - 1], dim=1)
        initial = torch.cat([torch.zeros(m, 1, device=dev), torch.rand(m, 2, device=dev) * 2 - 1], dim=1)
        edge = torch.rand(b, 2, device=dev) * 2 - 1
        axis = torch.randint(2, (b,), device=dev)
        edge[torch.arange(b, device=dev), axis] = torch.randint(2, (b,), device=dev).float() * 2 - 1
        boundary = torch.cat([torch.rand(b, 1, device=dev) * t_max, edge], dim=1)
        return {"interior": interior, "initial": initial, "boundary": boundary}

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        _, _, hess = value_and_derivatives(model, batch["interior"])
        residual = (wave_residual(hess.float(), self.speed) * self.tau**2).square().mean()
        u0, jac0, _ = value_and_derivatives(model, batch["initial"], order=1)
        target = gaussian_pulse(batch["initial"][:, 1:], self.width)
        initial = (u0[:, 0].float() - target).square().mean() + (jac0[:, 0, 0].float() * self.tau).square().mean()
        boundary = model(batch["boundary"]).float().square().mean()
        loss = residual + self.config.condition_weight * (initial + boundary)
        return loss, {"residual": residual.detach(), "initial": initial.detach(), "boundary": boundary.detach()}

    @torch.no_grad()
    def frames(self) -> Tensor:
        """The network's field at the evaluation times on the reference grid: (frames, n, n)."""
        n = self.config.reference_size
        self.model.eval()
        out = []
        for t in self.times:
            coords = torch.cat([torch.full((len(self.space), 1), t), self.space], dim=1).to(self.device)
            out.append(self.model(coords)[:, 0].float().reshape(n, n).cpu())
        self.model.train()
        return torch.stack(out)

    def metrics(self) -> dict[str, float]:
        fit = self.frames()
        errors = [(f - r).norm() / r.norm() for f, r in zip(fit, self.reference)]
        metrics = {f"rel_l2_t{t:.3g}": float(e) for t, e in zip(self.times, errors)}
        metrics["rel_l2"] = float(torch.stack(errors).mean())
        return metrics

    def picture(self) -> Tensor:
        """Frames over time (columns), network above the finite-difference reference, each time on its own
        colour scale shared by both rows (the pulse spreads and fades): (3, H, W)."""
        pairs = [normalize(torch.stack(pair), symmetric=True) for pair in zip(self.frames(), self.reference)]
        return stack_rows([side_by_side([colormap(pair[row], "RdBu") for pair in pairs]) for row in range(2)])

    def summaries(self, writer, step: int) -> None:
        writer.add_image("frames_network_vs_reference", self.picture(), step)

    def write_outputs(self, out_dir: Path) -> list[Path]:
        path = out_dir / "frames.png"
        save_image(self.picture(), path)
        return [path]
