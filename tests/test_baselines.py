"""Baseline networks: shapes through the factory, and the encodings against their formulas."""
from __future__ import annotations

import math

import pytest
import torch

from hypersiren.nn import MODEL_NAMES, FourierFeatures, PositionalEncoding, Siren, build_model
from hypersiren.nn.baselines import MLP


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("in_features,out_features", [(1, 1), (2, 3), (3, 1)])
def test_every_model_maps_coordinates_to_values(name, in_features, out_features):
    model = build_model(name, in_features, out_features, hidden_features=16, hidden_layers=2, fourier_features=8,
                        pe_frequencies=4)
    x = torch.rand(4, 5, in_features) * 2 - 1
    y = model(x)
    assert y.shape == (4, 5, out_features)
    assert torch.isfinite(y).all()
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_mlp_depth_matches_siren(name):
    mlp = build_model(name, 2, 1, hidden_features=8, hidden_layers=3)
    siren = Siren(2, 1, 8, 3)
    linear_shapes = [m.weight.shape for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert linear_shapes == [layer.weight.shape for layer in siren.layers]
    activation = torch.nn.ReLU if name == "relu" else torch.nn.Tanh
    assert sum(isinstance(m, activation) for m in mlp.modules()) == siren.num_sine_layers


def test_siren_from_factory_uses_omegas():
    model = build_model("siren", 2, 1, hidden_features=8, hidden_layers=1, first_omega=60, hidden_omega=10)
    assert isinstance(model, Siren) and model.omegas == [60.0, 10.0]


def test_positional_encoding_formula():
    enc = PositionalEncoding(2, num_frequencies=3)
    x = torch.tensor([[0.25, -0.5]])
    out = enc(x)
    assert out.shape == (1, enc.out_features) == (1, 2 * 7)
    expected_sin = [math.sin(2**k * math.pi * v) for v in (0.25, -0.5) for k in range(3)]
    expected_cos = [math.cos(2**k * math.pi * v) for v in (0.25, -0.5) for k in range(3)]
    torch.testing.assert_close(out[0], torch.tensor([0.25, -0.5] + expected_sin + expected_cos), atol=1e-6, rtol=0)


def test_fourier_features_formula_and_scale():
    torch.manual_seed(0)
    enc = FourierFeatures(2, num_features=2000, scale=10.0)
    assert enc.matrix.std().item() == pytest.approx(10.0, rel=0.05)
    x = torch.tensor([[0.1, -0.3]])
    angles = 2 * math.pi * (x @ enc.matrix.T)
    torch.testing.assert_close(enc(x), torch.cat([angles.cos(), angles.sin()], -1))
    assert enc(x).shape == (1, enc.out_features) == (1, 4000)
    assert "matrix" in enc.state_dict()  # the random projection is saved with checkpoints


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("gelu", 2, 1)


def test_mlp_rejects_unknown_activation():
    with pytest.raises(KeyError):
        MLP(2, 1, 8, 1, activation="gelu")
