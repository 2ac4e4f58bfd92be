"""Differential operators against closed forms: polynomials, sines, Gaussians."""
from __future__ import annotations

import pytest
import torch

from hypersiren import diff
from hypersiren.nn import Siren

torch.set_default_dtype(torch.float32)


def points(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(True)


def polynomial(p):  # f(x, y) = x^2 y + 3 y^3 - 2 x
    x, y = p[..., 0:1], p[..., 1:2]
    return x**2 * y + 3 * y**3 - 2 * x


def test_gradient_hessian_laplacian_of_a_polynomial():
    p = points(2, 7, 2)
    f = polynomial(p)
    x, y = p[..., 0], p[..., 1]
    torch.testing.assert_close(diff.gradient(f, p), torch.stack([2 * x * y - 2, x**2 + 9 * y**2], -1))
    hessian = torch.stack([torch.stack([2 * y, 2 * x], -1), torch.stack([2 * x, 18 * y], -1)], -2)
    torch.testing.assert_close(diff.hessian(f, p), hessian)
    torch.testing.assert_close(diff.laplacian(f, p), (20 * y)[..., None])


def test_laplacian_of_sines_is_an_eigenfunction():
    p = points(50, 2, seed=1)
    a, b = 3.0, 5.0
    f = torch.sin(a * p[..., :1]) * torch.cos(b * p[..., 1:])
    torch.testing.assert_close(diff.laplacian(f, p), -(a**2 + b**2) * f)


def test_gaussian_gradient_and_laplacian_in_3d():
    p = points(40, 3, seed=2)
    r2 = (p**2).sum(-1, keepdim=True)
    f = torch.exp(-r2 / 2)
    torch.testing.assert_close(diff.gradient(f, p), -p * f)
    torch.testing.assert_close(diff.laplacian(f, p), (r2 - 3) * f)
    torch.testing.assert_close(diff.divergence(diff.gradient(f, p), p), (r2 - 3) * f)


def test_jacobian_and_divergence_of_a_vector_field():
    p = points(30, 3, seed=3)
    x, y, z = p.unbind(-1)
    v = torch.stack([x**2, x * y, z * torch.sin(x)], -1)
    zero = torch.zeros_like(x)
    jac = torch.stack([
        torch.stack([2 * x, zero, zero], -1),
        torch.stack([y, x, zero], -1),
        torch.stack([z * torch.cos(x), zero, torch.sin(x)], -1),
    ], -2)
    torch.testing.assert_close(diff.jacobian(v, p), jac)
    torch.testing.assert_close(diff.divergence(v, p), (3 * x + torch.sin(x))[..., None])


def test_laplacian_per_output_channel():
    p = points(20, 2, seed=4)
    x, y = p[..., :1], p[..., 1:]
    f = torch.cat([x**3, x * y**2, torch.exp(x + y)], -1)
    expected = torch.cat([6 * x, 2 * x, 2 * torch.exp(x + y)], -1)
    torch.testing.assert_close(diff.laplacian(f, p), expected)


def test_operators_keep_the_graph_for_losses():
    p = points(10, 2, seed=5)
    a = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    f = a * (p**2).sum(-1, keepdim=True)  # Laplacian = 4 a in 2D
    lap = diff.laplacian(f, p)
    torch.testing.assert_close(lap, torch.full_like(lap, 6.0))
    (grad_a,) = torch.autograd.grad(lap.sum(), a)
    assert grad_a.item() == pytest.approx(4 * 10)


def test_output_independent_of_input_gives_zero_derivatives():
    p = points(5, 2, seed=6)
    f = (p * 0).sum(-1, keepdim=True) + 1.0
    assert torch.count_nonzero(diff.gradient(f, p)) == 0
    assert torch.count_nonzero(diff.laplacian(f, p)) == 0


def test_shape_errors():
    p = points(4, 2)
    with pytest.raises(ValueError, match="scalar field"):
        diff.gradient(torch.cat([p, p], -1), p)
    with pytest.raises(ValueError, match="components"):
        diff.divergence(p[..., :1], p)


def test_value_and_derivatives_closed_form():
    def field(p):  # m = 2 outputs of d = 2 inputs
        x, y = p[..., :1], p[..., 1:]
        return torch.cat([torch.sin(2 * x) * y**2, torch.exp(-(x**2 + y**2) / 2)], -1)

    coords = points(3, 6, 2, seed=7).detach()
    y, jac, hess_diag = diff.value_and_derivatives(field, coords)
    x0, y0 = coords[..., 0], coords[..., 1]
    g = torch.exp(-(x0**2 + y0**2) / 2)
    torch.testing.assert_close(y, field(coords))
    expected_jac = torch.stack([
        torch.stack([2 * torch.cos(2 * x0) * y0**2, 2 * torch.sin(2 * x0) * y0], -1),
        torch.stack([-x0 * g, -y0 * g], -1),
    ], -2)
    expected_hess = torch.stack([
        torch.stack([-4 * torch.sin(2 * x0) * y0**2, 2 * torch.sin(2 * x0)], -1),
        torch.stack([(x0**2 - 1) * g, (y0**2 - 1) * g], -1),
    ], -2)
    torch.testing.assert_close(jac, expected_jac)
    torch.testing.assert_close(hess_diag, expected_hess)


@pytest.mark.parametrize("shape", [(17, 2), (2, 9, 2)])
def test_value_and_derivatives_of_a_siren_matches_autograd_operators(shape):
    torch.manual_seed(8)
    model = Siren(2, 2, hidden_features=16, hidden_layers=2).double()
    coords = points(*shape, seed=9).detach()
    y, jac, hess_diag = diff.value_and_derivatives(model, coords)

    x = coords.clone().requires_grad_(True)
    out = model(x)
    torch.testing.assert_close(y, out)
    torch.testing.assert_close(jac, diff.jacobian(out, x))
    for i in range(2):
        hess = diff.hessian(out[..., i : i + 1], x)
        torch.testing.assert_close(hess_diag[..., i, :], torch.diagonal(hess, dim1=-2, dim2=-1))
    # the Laplacian and its gradient with respect to the weights (what PDE losses use) agree too
    lap_fast = hess_diag.sum(-1)
    torch.testing.assert_close(lap_fast, diff.laplacian(out, x))
    params = list(model.parameters())  # the output bias does not reach the Laplacian: its gradient is None
    g_fast = torch.autograd.grad(lap_fast.square().sum(), params, allow_unused=True)
    g_ref = torch.autograd.grad(diff.laplacian(out, x).square().sum(), params, allow_unused=True)
    for p, a, b in zip(params, g_fast, g_ref):
        zero = torch.zeros_like(p)
        torch.testing.assert_close(zero if a is None else a, zero if b is None else b)
