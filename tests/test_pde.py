"""PDE building blocks against closed forms: PML stretching, Helmholtz and wave residuals, the FD reference."""
import math

import numpy as np
import pytest
import torch

from hypersiren.diff import autograd_value_and_derivatives
from hypersiren.errors import InputError
from hypersiren.pde import (PML, gaussian_pulse, gaussian_source, hankel_solution, helmholtz_residual, leapfrog_wave,
                            squared_slowness, wave_residual)

K = 20.0


class StretchedPlaneWave(torch.nn.Module):
    """exp(i k (cos a x~ + sin a y~)) in the PML-stretched coordinates, as (Re, Im): solves the PML equation."""

    def __init__(self, pml: PML, angle: float):
        super().__init__()
        self.pml, self.direction = pml, (math.cos(angle), math.sin(angle))

    def forward(self, coords):
        z = self.pml.stretched_coordinate(coords)
        u = torch.exp(1j * K * (self.direction[0] * z[..., 0] + self.direction[1] * z[..., 1]))
        return torch.stack([u.real, u.imag], dim=-1)


def random_points(n, generator_seed=0, low=-1.0, high=1.0):
    g = torch.Generator().manual_seed(generator_seed)
    return (torch.rand(n, 2, generator=g, dtype=torch.float64) * (high - low) + low)


@pytest.mark.parametrize("angle", [0.3, 2.0, 4.0])
def test_stretched_plane_wave_has_zero_pml_residual(angle):
    pml = PML(width=0.4, strength=3.0)
    coords = random_points(400)
    model = StretchedPlaneWave(pml, angle)
    y, jac, hess = autograd_value_and_derivatives(model, coords)
    residual = helmholtz_residual(coords, y, jac, hess, K, torch.ones(len(coords), dtype=torch.float64),
                                  torch.zeros(len(coords), dtype=torch.float64), pml)
    assert (~pml.interior(coords)).sum() > 100  # the test covers the layer
    assert residual.abs().max() < 1e-9 * K**2


def test_plane_wave_decays_in_the_layer():
    pml = PML(width=0.5, strength=5.0)
    x = torch.tensor([[0.5, 0.0], [0.75, 0.0], [1.0, 0.0]], dtype=torch.float64)
    u = StretchedPlaneWave(pml, 0.0)(x)
    amplitude = u.norm(dim=-1)
    expected = torch.exp(-K * 5.0 * pml.depth(x[:, 0]) ** 3 / (3 * 0.5**2))
    torch.testing.assert_close(amplitude, expected)


def finite_difference_derivatives(field, coords, h=1e-4):
    """(y, jac, hess_diag) of a complex numpy field by central differences, in the network layout (N, 2[, 2])."""
    u = field(coords)
    jac, hess = [], []
    for j in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[j] = h
        plus, minus = field(coords + e), field(coords - e)
        jac.append((plus - minus) / (2 * h))
        hess.append((plus - 2 * u + minus) / h**2)
    jac, hess = np.stack(jac, -1), np.stack(hess, -1)
    as_outputs = lambda a: torch.from_numpy(np.stack([a.real, a.imag], axis=1))
    return torch.from_numpy(np.stack([u.real, u.imag], -1)), as_outputs(jac), as_outputs(hess)


@pytest.mark.parametrize("with_pml", [False, True])
def test_hankel_solution_satisfies_helmholtz_away_from_source(with_pml):
    pml = PML(width=0.5, strength=5.0)
    coords = random_points(300, 1)
    coords = coords[coords.norm(dim=-1) > 0.2]
    field = lambda c: hankel_solution(c, K, pml=pml if with_pml else None)
    y, jac, hess = finite_difference_derivatives(field, coords)
    ones, zeros = torch.ones(len(coords), dtype=torch.float64), torch.zeros(len(coords), dtype=torch.float64)
    residual = helmholtz_residual(coords, y, jac, hess, K, ones, zeros, pml if with_pml else PML(1e-9, 0.0))
    scale = K**2 * torch.complex(y[:, 0], y[:, 1]).abs()
    assert (residual.abs() / scale).max() < 1e-4


def test_hankel_matches_pml_solution_outside_layer_and_decays_inside():
    pml = PML(width=0.5, strength=5.0)
    inside = torch.tensor([[0.3, 0.2], [-0.1, 0.45]], dtype=torch.float64)
    np.testing.assert_allclose(hankel_solution(inside, K, pml=pml), hankel_solution(inside, K))
    edge = torch.tensor([[1.0, 0.0], [0.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    assert np.abs(hankel_solution(edge, K, pml=pml)).max() < 1e-3 * np.abs(hankel_solution(edge, K)).min()


def test_hankel_source_is_unit_delta():
    # (Laplacian + k^2) G = -delta: the flux of grad G through a small circle tends to -1.
    r, n = 1e-3, 64
    theta = torch.arange(n, dtype=torch.float64) * 2 * math.pi / n
    circle = torch.stack([torch.cos(theta), torch.sin(theta)], -1)
    h = 1e-6
    radial = (hankel_solution(circle * (r + h), K) - hankel_solution(circle * (r - h), K)) / (2 * h)
    flux = radial.mean() * 2 * math.pi * r
    assert abs(flux.real + 1) < 1e-3 and abs(flux.imag) < 1e-2


def test_gaussian_source_has_unit_mass_and_sigma_factor():
    n = 801
    x = torch.linspace(-0.1, 0.1, n, dtype=torch.float64)
    coords = torch.stack(torch.meshgrid(x, x, indexing="ij"), -1)
    mass = gaussian_source(coords, 0.01).sum() * (x[1] - x[0]) ** 2
    assert abs(float(mass) - 1) < 1e-6
    far = torch.tensor([[0.4, 0.1]], dtype=torch.float64)
    ratio = hankel_solution(far, K, sigma=0.01) / hankel_solution(far, K)
    np.testing.assert_allclose(ratio, math.exp(-0.5 * (K * 0.01) ** 2))


def test_velocity_models():
    coords = torch.tensor([[0.0, 0.05], [0.2, -0.2], [0.5, 0.5]])
    assert squared_slowness(coords, "homogeneous").tolist() == [1.0, 1.0, 1.0]
    assert squared_slowness(coords, "square", 2.0).tolist() == [0.25, 0.25, 1.0]
    assert squared_slowness(coords, "circle", 2.0).tolist() == [0.25, 1.0, 1.0]
    with pytest.raises(InputError, match="unknown velocity model 'marmousi'"):
        squared_slowness(coords, "marmousi")


class StandingWave(torch.nn.Module):
    """sin(a (x+1)) sin(b (y+1)) cos(c sqrt(a^2+b^2) t) with (t, x, y) inputs."""

    def __init__(self, a, b, speed):
        super().__init__()
        self.a, self.b, self.speed, self.omega = a, b, speed, speed * math.hypot(a, b)

    def forward(self, txy):
        t, x, y = txy.unbind(-1)
        return (torch.sin(self.a * (x + 1)) * torch.sin(self.b * (y + 1)) * torch.cos(self.omega * t))[..., None]


class TravellingPulse(torch.nn.Module):
    """A Gaussian profile moving along direction (cos a, sin a) at speed c."""

    def __init__(self, angle, speed):
        super().__init__()
        self.direction, self.speed = (math.cos(angle), math.sin(angle)), speed

    def forward(self, txy):
        t, x, y = txy.unbind(-1)
        s = self.direction[0] * x + self.direction[1] * y - self.speed * t
        return torch.exp(-(s**2) / 0.02)[..., None]


@pytest.mark.parametrize("model", [StandingWave(math.pi, 1.5 * math.pi, 0.7), TravellingPulse(0.8, 1.3)])
def test_wave_residual_zero_on_exact_solutions(model):
    txy = torch.rand(500, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    _, _, hess = autograd_value_and_derivatives(model, txy)
    residual = wave_residual(hess, model.speed)
    assert residual.abs().max() < 1e-8 * hess.abs().max()
    wrong = wave_residual(hess, 1.1)
    assert wrong.abs().max() > 1e-2 * hess.abs().max()  # the check can fail


def test_gaussian_pulse():
    xy = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, -0.2]])
    torch.testing.assert_close(gaussian_pulse(xy, 0.1), torch.tensor([1.0, math.exp(-0.5), math.exp(-2.0)]))


def standing_wave_error(n, duration=0.8, frames=3):
    x = np.linspace(-1, 1, n)
    X, Y = np.meshgrid(x, x, indexing="ij")
    shape = np.sin(math.pi * (X + 1) / 2) * np.sin(math.pi * (Y + 1))  # zero on the edges
    omega = 0.9 * math.pi / 2 * math.sqrt(5)
    solution = leapfrog_wave(shape, 0.9, duration, frames)
    exact = np.stack([shape * math.cos(omega * t) for t in np.linspace(0, duration, frames)])
    return np.abs(solution - exact).max()


def test_leapfrog_converges_at_second_order():
    errors = [standing_wave_error(n) for n in (17, 33, 65)]
    assert errors[-1] < 1e-3
    for coarse, fine in zip(errors, errors[1:]):
        assert 3.5 < coarse / fine < 4.5


def test_leapfrog_rejects_unstable_step():
    with pytest.raises(ValueError, match="cfl"):
        leapfrog_wave(np.zeros((5, 5)), 1.0, 1.0, 2, cfl=0.9)
