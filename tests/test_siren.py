"""SIREN initialisation statistics (paper, section 3.2 and appendix 1) and the per-sample forward paths."""
from __future__ import annotations

import math

import pytest
import torch

from hypersiren.nn import Siren, affine


def arcsine_ks(values: torch.Tensor) -> float:
    """Kolmogorov-Smirnov distance of samples to the arcsine law on [-1, 1] (CDF 1/2 + asin(x)/pi)."""
    s, _ = values.flatten().sort()
    cdf = 0.5 + torch.asin(s.clamp(-1, 1)) / math.pi
    n = len(s)
    return float(torch.maximum(torch.arange(1, n + 1) / n - cdf, cdf - torch.arange(n) / n).max())


def layer_statistics(model: Siren, coords: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Per sine layer: w0 W x (weight part of the pre-activation), the full pre-activation w0 (W x + b), sin of it."""
    stats, x = [], coords
    for layer, omega in zip(model.layers[:-1], model.omegas):
        weight_part = omega * (x @ layer.weight.T)
        pre = weight_part + omega * layer.bias
        x = torch.sin(pre)
        stats.append({"weight_part": weight_part, "pre": pre, "activation": x})
    return stats


@pytest.fixture(scope="module")
def five_layer_stats():
    torch.manual_seed(0)
    model = Siren(2, 1, hidden_features=256, hidden_layers=4)  # 5 sine layers
    with torch.no_grad():
        return model, layer_statistics(model, torch.rand(4096, 2) * 2 - 1)


def test_hidden_preactivations_have_unit_std_from_the_weights(five_layer_stats):
    # The paper's result: with W ~ U(-sqrt(6/n)/w0, sqrt(6/n)/w0) and arcsine inputs (variance 1/2),
    # Var(w0 W x) = n * (6/n)/3 * 1/2 = 1 in every layer after the first.
    model, stats = five_layer_stats
    for layer in stats[1:]:
        assert layer["weight_part"].std().item() == pytest.approx(1.0, abs=0.08)


def test_bias_adds_w0_squared_over_3n_to_the_preactivation_variance(five_layer_stats):
    # What is actually true of the full pre-activation: the bias keeps PyTorch's U(-1/sqrt(n), 1/sqrt(n)) and is
    # scaled by w0 as in the paper's code, adding w0^2 / (3 n) = 1.17 for n = 256: std sqrt(2.17), not 1.
    model, stats = five_layer_stats
    n = model.config["hidden_features"]
    expected = math.sqrt(1 + model.config["hidden_omega"] ** 2 / (3 * n))
    for layer in stats[1:]:
        assert layer["pre"].std().item() == pytest.approx(expected, rel=0.12)
        assert layer["pre"].mean().abs().item() < 0.2


def test_first_layer_preactivation_spans_many_periods(five_layer_stats):
    # W ~ U(-1/2, 1/2) with x ~ U(-1, 1)^2: Var(w0 W x) = 900 * 2 * (1/12) * (1/3) = 50.
    _, stats = five_layer_stats
    assert stats[0]["weight_part"].std().item() == pytest.approx(math.sqrt(50), rel=0.1)


def test_activations_are_arcsine_distributed(five_layer_stats):
    # arcsine law on [-1, 1]: mean 0, variance 1/2. A uniform law is 0.105 away in KS distance.
    _, stats = five_layer_stats
    for layer in stats:
        a = layer["activation"]
        assert a.var().item() == pytest.approx(0.5, abs=0.04)
        assert a.mean().abs().item() < 0.05
        assert arcsine_ks(a) < 0.05
    uniform = torch.rand(100_000) * 2 - 1
    assert arcsine_ks(uniform) > 0.09  # the KS check can fail


def test_init_bounds_match_the_paper():
    model = Siren(3, 2, hidden_features=64, hidden_layers=2, first_omega=30, hidden_omega=20)
    bounds = model.init_bounds()
    assert bounds["layers.0.weight"] == pytest.approx(1 / 3)
    assert bounds["layers.1.weight"] == pytest.approx(math.sqrt(6 / 64) / 20)
    assert bounds["layers.3.weight"] == pytest.approx(math.sqrt(6 / 64) / 20)
    for name, p in model.named_parameters():
        assert p.abs().max() <= bounds[name]
        assert p.abs().max() > 0.8 * bounds[name]  # drawn from the whole interval
    assert model.parameter_shapes() == {name: p.shape for name, p in model.named_parameters()}


def test_layer_count_and_forward_matches_explicit_formula():
    torch.manual_seed(1)
    model = Siren(2, 3, hidden_features=8, hidden_layers=2, first_omega=30, hidden_omega=15)
    assert len(model.layers) == 4 and model.num_sine_layers == 3
    x = torch.rand(5, 2) * 2 - 1
    h = x
    for layer, omega in zip(model.layers[:-1], (30, 15, 15)):
        h = torch.sin(omega * (h @ layer.weight.T + layer.bias))
    expected = h @ model.layers[-1].weight.T + model.layers[-1].bias
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


def test_affine_per_sample_equals_loop():
    torch.manual_seed(2)
    x, w, b = torch.randn(3, 5, 4), torch.randn(3, 6, 4), torch.randn(3, 6)
    expected = torch.stack([x[i] @ w[i].T + b[i] for i in range(3)])
    torch.testing.assert_close(affine(x, w, b), expected)


def test_per_sample_params_identical_copies_equal_module_forward():
    torch.manual_seed(3)
    model = Siren(2, 3, hidden_features=16, hidden_layers=2)
    coords = torch.rand(4, 10, 2) * 2 - 1
    params = {name: p.detach().expand(4, *p.shape).clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        torch.testing.assert_close(model(coords, params=params), model(coords), rtol=1e-5, atol=1e-6)


def test_per_sample_params_different_sets_equal_loop_over_models():
    torch.manual_seed(4)
    models = [Siren(2, 3, hidden_features=16, hidden_layers=2) for _ in range(3)]
    coords = torch.rand(3, 7, 2) * 2 - 1
    params = {name: torch.stack([dict(m.named_parameters())[name].detach() for m in models])
              for name, _ in models[0].named_parameters()}
    with torch.no_grad():
        batched = models[0](coords, params=params)
        looped = torch.stack([m(coords[i]) for i, m in enumerate(models)])
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)


def test_partial_params_fall_back_to_module_parameters():
    torch.manual_seed(5)
    model, other = Siren(2, 1, 8, 1), Siren(2, 1, 8, 1)
    coords = torch.rand(2, 6, 2) * 2 - 1
    last = len(model.layers) - 1
    params = {f"layers.{last}.weight": other.layers[-1].weight.detach().expand(2, -1, -1),
              f"layers.{last}.bias": other.layers[-1].bias.detach().expand(2, -1)}
    with torch.no_grad():
        model_with_other_head = Siren(2, 1, 8, 1)
        model_with_other_head.load_state_dict(model.state_dict())
        model_with_other_head.layers[-1].load_state_dict(other.layers[-1].state_dict())
        torch.testing.assert_close(model(coords, params=params), model_with_other_head(coords), rtol=1e-5, atol=1e-6)


def test_zero_shifts_equal_plain_forward_and_shifts_act_inside_the_sine():
    torch.manual_seed(6)
    model = Siren(2, 2, hidden_features=12, hidden_layers=2)
    coords = torch.rand(3, 9, 2) * 2 - 1
    zero = torch.zeros(3, model.num_sine_layers, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(coords, shifts=zero), model(coords), rtol=1e-5, atol=1e-6)
        shifts = torch.randn(3, model.num_sine_layers, 12) * 0.1
        h = coords
        for i, (layer, omega) in enumerate(zip(model.layers[:-1], model.omegas)):
            h = torch.sin(omega * (h @ layer.weight.T + layer.bias + shifts[:, i, None]))
        expected = h @ model.layers[-1].weight.T + model.layers[-1].bias
        torch.testing.assert_close(model(coords, shifts=shifts), expected, rtol=1e-4, atol=1e-5)


def test_shifts_with_per_sample_params_equal_loop():
    torch.manual_seed(7)
    model = Siren(2, 1, hidden_features=8, hidden_layers=1)
    coords = torch.rand(2, 5, 2) * 2 - 1
    shifts = torch.randn(2, model.num_sine_layers, 8) * 0.1
    params = {name: p.detach() + 0.01 * torch.randn(2, *p.shape) for name, p in model.named_parameters()}
    with torch.no_grad():
        batched = model(coords, params=params, shifts=shifts)
        for i in range(2):
            single = Siren(2, 1, hidden_features=8, hidden_layers=1)
            single.load_state_dict({name: p[i] for name, p in params.items()})
            torch.testing.assert_close(batched[i : i + 1], single(coords[i : i + 1], shifts=shifts[i : i + 1]),
                                       rtol=1e-5, atol=1e-6)


def test_per_sample_params_carry_gradients():
    model = Siren(2, 1, hidden_features=8, hidden_layers=1)
    params = {name: p.detach().expand(2, *p.shape).clone().requires_grad_(True) for name, p in model.named_parameters()}
    model(torch.rand(2, 4, 2), params=params).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())


def test_invalid_sizes_raise():
    with pytest.raises(ValueError):
        Siren(0, 1)
    with pytest.raises(ValueError):
        Siren(2, 1, hidden_layers=-1)
