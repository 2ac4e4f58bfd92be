"""The forward-mode SIREN derivatives equal autograd's, for shared and per-sample parameters."""
import pytest
import torch

from hypersiren import diff
from hypersiren.nn import Siren, build_model
from hypersiren.nn.siren_derivatives import siren_derivatives


def _random_siren(in_features, out_features, seed=0, **kw):
    torch.manual_seed(seed)
    return Siren(in_features, out_features, **{"hidden_features": 32, "hidden_layers": 2, **kw}).double()


@pytest.mark.parametrize("in_features,out_features", [(1, 1), (2, 1), (2, 3), (3, 2)])
def test_forward_mode_equals_autograd(in_features, out_features):
    model = _random_siren(in_features, out_features, seed=in_features + out_features)
    coords = torch.rand(5, 7, in_features, dtype=torch.float64) * 2 - 1
    fast = siren_derivatives(model, coords)
    slow = diff.autograd_value_and_derivatives(model, coords)
    for a, b in zip(fast, slow):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernels", ["eager", "fused"])
def test_float32_matches_autograd_within_1e_5_relative(monkeypatch, kernels):
    """In float32, eagerly and through the compiled fused kernels (the path of large CPU training steps)."""
    from hypersiren.nn import fused

    if kernels == "fused" and not _has_cpp_compiler():
        pytest.skip("no C++ compiler for torch.compile")
    monkeypatch.setattr(fused, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(fused, "_compiled", {})
    monkeypatch.setenv("HYPERSIREN_FUSED_KERNELS", "1" if kernels == "fused" else "0")
    model = _random_siren(2, 1, seed=3, hidden_features=64, hidden_layers=3)
    model.float()
    coords = torch.rand(200, 2) * 2 - 1
    y, jac, hess = siren_derivatives(model, coords)
    y_ref, jac_ref, hess_ref = diff.autograd_value_and_derivatives(model.double(), coords.double())
    for a, b in ((y, y_ref), (jac, jac_ref), (hess, hess_ref)):
        err = (a.double() - b).abs().max() / b.abs().max()
        assert err < 1e-5
    assert (kernels == "fused") == bool(fused._compiled) and fused.enabled() == (kernels == "fused")


def test_order_one_skips_hessian():
    model = _random_siren(2, 2)
    coords = torch.rand(10, 2, dtype=torch.float64)
    y, jac, hess = siren_derivatives(model, coords, order=1)
    y2, jac2, _ = siren_derivatives(model, coords, order=2)
    assert hess is None
    torch.testing.assert_close(y, y2)
    torch.testing.assert_close(jac, jac2)
    with pytest.raises(ValueError, match="order"):
        siren_derivatives(model, coords, order=3)


def test_matches_model_forward_and_is_dispatched():
    model = _random_siren(2, 1)
    coords = torch.rand(10, 2, dtype=torch.float64)
    y, _, _ = diff.value_and_derivatives(model, coords)
    torch.testing.assert_close(y, model(coords))


def test_parameter_gradients_equal_autograd():
    """The custom backward gives the same parameter gradients as double backward, for a Laplacian loss."""
    model = _random_siren(2, 2, seed=5)
    coords = torch.rand(30, 2, dtype=torch.float64) * 2 - 1
    losses = []
    for fn in (siren_derivatives, diff.autograd_value_and_derivatives):
        y, jac, hess = fn(model, coords)
        loss = (y**2).mean() + (jac**3).mean() + (hess.sum(-1) ** 2).mean()
        losses.append(torch.autograd.grad(loss, list(model.parameters())))
    for a, b in zip(*losses):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("order,trace", [(1, False), (2, False), (2, True)])
def test_backward_passes_gradcheck(order, trace):
    """First and second derivatives of the custom sine-jet function (gradcheck / gradgradcheck)."""
    model = _random_siren(2, 1, hidden_features=6, hidden_layers=1)
    coords = torch.rand(3, 2, dtype=torch.float64)
    params = [p for p in model.parameters()]

    def laplacian(*ps):
        named = dict(zip([n for n, _ in model.named_parameters()], ps))
        y, jac, second = siren_derivatives(model, coords, params=named, order=order, trace=trace)
        return torch.cat([y.flatten(), jac.flatten()] + ([] if second is None else [second.flatten()]))

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in params)
    assert torch.autograd.gradcheck(laplacian, inputs)
    assert torch.autograd.gradgradcheck(laplacian, inputs)


def test_per_sample_params_and_shifts_equal_autograd():
    model = _random_siren(2, 1, seed=7)
    batch = 3
    params = {name: (p.detach() + 0.01 * torch.randn(batch, *p.shape, dtype=p.dtype))
              for name, p in model.named_parameters()}
    shifts = 0.1 * torch.randn(batch, model.num_sine_layers, 32, dtype=torch.float64)
    coords = torch.rand(batch, 11, 2, dtype=torch.float64) * 2 - 1
    for kwargs in ({"params": params}, {"shifts": shifts}, {"params": params, "shifts": shifts}):
        fast = diff.value_and_derivatives(model, coords, **kwargs)
        slow = diff.autograd_value_and_derivatives(model, coords, **kwargs)
        for a, b in zip(fast, slow):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_closed_form_single_sine_layer():
    """y = sin(w0 (a x + b)) read out with weight 1: y' = w0 a cos(.), y'' = -(w0 a)^2 sin(.)."""
    model = Siren(1, 1, hidden_features=1, hidden_layers=0, first_omega=3.0).double()
    with torch.no_grad():
        model.layers[0].weight.fill_(0.7)
        model.layers[0].bias.fill_(0.2)
        model.layers[1].weight.fill_(1.0)
        model.layers[1].bias.fill_(0.0)
    x = torch.linspace(-1, 1, 9, dtype=torch.float64)[:, None]
    y, jac, hess = siren_derivatives(model, x)
    phase = 3.0 * (0.7 * x + 0.2)
    torch.testing.assert_close(y, torch.sin(phase))
    torch.testing.assert_close(jac[..., 0], 2.1 * torch.cos(phase))
    torch.testing.assert_close(hess[..., 0], -(2.1**2) * torch.sin(phase))


def test_other_models_fall_back_to_autograd():
    torch.manual_seed(0)
    model = build_model("tanh", 2, 1, hidden_features=16, hidden_layers=1).double()
    coords = torch.rand(4, 2, dtype=torch.float64)
    y, jac, hess = diff.value_and_derivatives(model, coords)
    assert jac.shape == (4, 1, 2) and hess.shape == (4, 1, 2)
    torch.testing.assert_close(hess.sum(-1)[..., 0], diff.laplacian(*_with_grad(model, coords))[..., 0])


def _with_grad(model, coords):
    x = coords.clone().requires_grad_(True)
    return model(x), x


def test_bad_inputs():
    model = _random_siren(2, 1)
    with pytest.raises(ValueError, match="features"):
        siren_derivatives(model, torch.rand(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(B, N, d\)"):
        siren_derivatives(model, torch.rand(4, 2, dtype=torch.float64), shifts=torch.zeros(4, 3, 32, dtype=torch.float64))


def test_laplacian_mode_equals_autograd_and_trains_alike():
    model = _random_siren(2, 2, seed=11)
    coords = torch.rand(4, 9, 2, dtype=torch.float64) * 2 - 1
    y, jac, lap = diff.value_and_laplacian(model, coords)
    y_ref, jac_ref, hess_ref = diff.autograd_value_and_derivatives(model, coords)
    assert lap.shape == y.shape
    for a, b in ((y, y_ref), (jac, jac_ref), (lap, hess_ref.sum(-1))):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    grads = [torch.autograd.grad((v**2).mean() + (l**2).mean(), list(model.parameters()))
             for v, l in ((y, lap), (y_ref, hess_ref.sum(-1)))]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    x = coords.clone().requires_grad_(True)
    torch.testing.assert_close(lap, diff.laplacian(model(x), x))


def test_benchmark_script_reports_every_method(tmp_path, capsys):
    import json
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "derivative_speed.py"),
                            run_name="derivative_speed")
    out = tmp_path / "bench.json"
    assert script["main"](["--size", "8", "--steps", "1", "--hidden-features", "8", "--hidden-layers", "1",
                           "--device", "cpu", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"double-backward", "forward-hessian", "forward-laplacian"}
    assert all(f"| {name} |" in table for name in results)
    # autograd keeps more for the backward pass than the forward-mode jets
    assert results["forward-laplacian"]["saved_bytes"] < results["double-backward"]["saved_bytes"]


def _has_cpp_compiler() -> bool:
    import shutil

    return any(shutil.which(name) for name in ("c++", "g++", "clang++"))


@pytest.mark.parametrize("trace", [False, True])
@pytest.mark.parametrize("layout", ["small-blocks", "whole-batch", "fused-kernels"])
def test_blocked_fast_path_equals_autograd(monkeypatch, trace, layout):
    """The fast path, in tiny blocks (several per sample, the last one partial, as on CPU), on the whole batch
    at once (as on a GPU) or in tiny blocks with the elementwise work compiled into fused kernels (as for large
    CPU work), gives autograd's values and gradients with respect to per-sample parameters, shifts and the
    coordinates."""
    import hypersiren.nn.siren_derivatives as fast
    from hypersiren.nn import fused

    if layout == "whole-batch":
        monkeypatch.setattr(fast, "_blocks", lambda jet, width: [(slice(None), slice(None))])
    else:
        # 3 points per block with the Laplacian row (4 rows of width 32), 2 with the Hessian diagonal (5 rows)
        monkeypatch.setattr(fast, "_BLOCK_ELEMENTS", 4 * 32 * 3)
    if layout == "fused-kernels":
        if not _has_cpp_compiler():
            pytest.skip("no C++ compiler for torch.compile")
        monkeypatch.setattr(fused, "MIN_ELEMENTS", 0)
        monkeypatch.setattr(fused, "_compiled", {})
        monkeypatch.setenv("HYPERSIREN_FUSED_KERNELS", "1")
    else:
        monkeypatch.setenv("HYPERSIREN_FUSED_KERNELS", "0")
    model = _random_siren(2, 2, seed=13)
    batch = 2
    params = {name: (p.detach() + 0.01 * torch.randn(batch, *p.shape, dtype=p.dtype)).requires_grad_(True)
              for name, p in model.named_parameters()}
    shifts = (0.1 * torch.randn(batch, model.num_sine_layers, 32, dtype=torch.float64)).requires_grad_(True)
    coords = (torch.rand(batch, 8, 2, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    # per-sample parameters and shifts, then shared parameters (the module's) with per-sample shifts
    for params, inputs in ((params, [*params.values(), shifts, coords]), (None, [*model.parameters(), shifts, coords])):
        y, jac, second = fast.siren_derivatives(model, coords, params=params, shifts=shifts, trace=trace)
        y_ref, jac_ref, hess_ref = diff.autograd_value_and_derivatives(model, coords, params=params, shifts=shifts)
        results = []
        for outputs in ((y, jac, second), (y_ref, jac_ref, hess_ref.sum(-1) if trace else hess_ref)):
            loss = (outputs[0] ** 2).mean() + (outputs[1] ** 3).mean() + (outputs[2] ** 2).mean()
            results.append((*outputs, *torch.autograd.grad(loss, inputs)))
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    if layout == "fused-kernels":  # the compiled kernels ran (no fallback to eager mode)
        assert fused.enabled() and set(fused._compiled) == {fast._jet_rows, fast._jet_rows_vjp}
