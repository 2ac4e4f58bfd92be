"""Poisson reconstruction: derivative targets in coordinate units, zero residual on analytic solutions, the
constant/affine ambiguity, and the poisson-grad / poisson-lapl commands end to end."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from hypersiren import diff
from hypersiren.data.grid import grid
from hypersiren.runtime import resolve_device
from hypersiren.tasks.poisson import (PoissonGradient, PoissonLaplacian, ambiguity_coefficients, discrete_laplacian,
                                      sobel_gradients)
from tests.conftest import TINY_NET

H, W = 9, 12


class Quadratic(nn.Module):
    """An analytic field u(y, x) = 0.3 x^2 - 0.2 x y + 0.5 y^2 + 0.1 x - 0.4 y + offset (+ affine extra)."""

    def __init__(self, offset: float = 0.0, affine: tuple[float, float] = (0.0, 0.0)):
        super().__init__()
        self.offset, self.affine = offset, affine

    def forward(self, coords):
        y, x = coords[..., :1], coords[..., 1:]
        u = 0.3 * x**2 - 0.2 * x * y + 0.5 * y**2 + 0.1 * x - 0.4 * y
        return u + self.offset + self.affine[0] * y + self.affine[1] * x


def _interior(height: int, width: int) -> torch.Tensor:
    i, j = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return ((i > 0) & (i < height - 1) & (j > 0) & (j < width - 1)).flatten()


def _field(module: nn.Module) -> torch.Tensor:
    """The module sampled on grid(H, W) as a (1, H, W) field."""
    return module(grid(H, W).double()).reshape(1, H, W).float()


def test_sobel_and_laplace_are_exact_on_quadratics_in_coordinate_units():
    coords = grid(H, W)
    y, x = coords[:, 0], coords[:, 1]
    inside = _interior(H, W)
    grads = sobel_gradients(_field(Quadratic()))
    assert grads.shape == (H * W, 1, 2)
    torch.testing.assert_close(grads[inside, 0, 0], (-0.2 * x + 1.0 * y - 0.4)[inside], atol=1e-5, rtol=0)
    torch.testing.assert_close(grads[inside, 0, 1], (0.6 * x - 0.2 * y + 0.1)[inside], atol=1e-5, rtol=0)
    lap = discrete_laplacian(_field(Quadratic()))
    assert lap.shape == (H * W, 1)
    torch.testing.assert_close(lap[inside, 0], torch.full((int(inside.sum()),), 1.6), atol=1e-3, rtol=0)


def test_ambiguity_removal_recovers_constant_and_affine_offsets():
    coords = grid(H, W)
    truth = Quadratic()(coords)
    shifted = Quadratic(offset=0.7, affine=(0.2, -0.3))(coords)
    for derivative, expected in (("gradient", None), ("laplacian", truth)):
        coefficients = ambiguity_coefficients(shifted, truth, coords, derivative)
        basis = torch.ones(len(coords), 1) if derivative == "gradient" else torch.cat([torch.ones(len(coords), 1), coords], 1)
        corrected = shifted + (basis.double() @ coefficients).float()
        if expected is not None:
            torch.testing.assert_close(corrected, expected, atol=1e-5, rtol=0)
            torch.testing.assert_close(coefficients[:, 0].float(), torch.tensor([-0.7, -0.2, 0.3]), atol=1e-5, rtol=0)
        else:  # a constant cannot undo the affine part: only the mean is matched
            assert abs(float((corrected - truth).mean())) < 1e-6
            assert float((corrected - truth).abs().max()) > 0.1


def _task(cls, tmp_path, **overrides):
    from PIL import Image

    path = tmp_path / "image.png"
    Image.fromarray((np.random.default_rng(0).random((H, W)) * 255).astype(np.uint8)).save(path)
    return cls(cls.Config(input=path, size=W, hidden_features=16, hidden_layers=1, **overrides), resolve_device("cpu"))


@pytest.mark.parametrize("cls", [PoissonGradient, PoissonLaplacian])
def test_loss_and_metrics_vanish_on_the_analytic_solution(cls, tmp_path):
    task = _task(cls, tmp_path)
    assert task.shape == (H, W)
    task.values = Quadratic()(task.coords)
    task.targets = task.derivative_targets()
    inside = _interior(H, W)
    # the solutions up to what the derivative cannot see: a constant (gradient), an affine function (Laplacian)
    exact = Quadratic(offset=0.5) if cls is PoissonGradient else Quadratic(offset=-0.2, affine=(0.1, 0.3))
    loss, _ = task.loss(exact, (task.coords[inside], task.targets[inside]))
    assert float(loss.detach()) < 1e-8
    if cls is PoissonGradient:  # while an affine change is visible to the gradient
        wrong, _ = task.loss(Quadratic(affine=(0.1, 0.3)), (task.coords[inside], task.targets[inside]))
        assert float(wrong.detach()) > 1e-3
    task.model = exact
    metrics = task.metrics()
    assert metrics["psnr"] > 100 and metrics["mse"] < 1e-10


@pytest.mark.parametrize("cls", [PoissonGradient, PoissonLaplacian])
def test_siren_loss_uses_forward_mode_and_equals_autograd(cls, tmp_path):
    task = _task(cls, tmp_path)
    coords, target = task.batch(0)
    loss, _ = task.loss(task.model, (coords, target))
    _, jac, hess = diff.autograd_value_and_derivatives(task.model, coords)
    reference = jac if cls is PoissonGradient else hess.sum(-1)
    torch.testing.assert_close(loss, torch.mean((reference - target) ** 2), rtol=1e-5, atol=1e-6)
    assert loss.grad_fn is not None and "SineJet" in repr(_graph_names(loss))


def _graph_names(tensor):
    names, stack, seen = set(), [tensor.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(f for f, _ in fn.next_functions)
    return names


def test_a_few_steps_reduce_the_gradient_loss(tmp_path):
    torch.manual_seed(0)
    task = _task(PoissonGradient, tmp_path)
    optimizer = torch.optim.Adam(task.model.parameters(), lr=1e-3)
    first = None
    for step in range(30):
        loss, _ = task.loss(task.model, task.batch(step))
        first = first if first is not None else float(loss.detach())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.5 * first


@pytest.mark.parametrize("name,derivative", [("poisson-grad", "gradient"), ("poisson-lapl", "laplacian")])
def test_cli_end_to_end(cli, tmp_path, name, derivative):
    out = tmp_path / "run"
    code, stdout, stderr = cli("fit", name, "camera", "--size", 16, "--steps", 3, "--batch-points", 100, *TINY_NET,
                               "--out", out)
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(metrics["psnr"]) and f"{derivative}_mse" in metrics
    config = json.loads((out / "config.json").read_text())
    assert config["input"] == "camera" and config["size"] == 16
    for file in ("checkpoint.safetensors", "fit.png", "ground_truth.png", f"target_{derivative}.png"):
        assert (out / file).is_file()
    assert list(out.glob("events.out.tfevents.*"))


def test_cli_bad_inputs(cli, tmp_path):
    out = tmp_path / "run"
    code, _, stderr = cli("fit", "poisson-grad", tmp_path / "missing.png", *TINY_NET, "--out", out)
    assert code == 2 and "image not found" in stderr and stderr.count("\n") == 1
    code, _, stderr = cli("fit", "poisson-lapl", "camera", "--size", 2, *TINY_NET, "--out", out)
    assert code == 2 and "at least 3x3" in stderr
    assert not out.exists()


def test_eval_script_trains_every_model_and_writes_table_and_figure(tmp_path, capsys):
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "eval" / "poisson.py"), run_name="eval_poisson")
    out = tmp_path / "eval"
    assert script["main"](["--out", str(out), "--size", "12", "--steps", "2", "--hidden-features", "8",
                          "--hidden-layers", "1", "--models", "siren", "tanh", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"gradient", "laplacian"} and set(metrics["laplacian"]) == {"siren", "tanh"}
    assert (out / "poisson.png").stat().st_size > 0 and "| laplacian |" in (out / "poisson.md").read_text()
    assert script["main"](["--out", str(tmp_path / "bad"), "--image", str(tmp_path / "missing.png")]) == 2
    assert "image not found" in capsys.readouterr().err and not (tmp_path / "bad").exists()
