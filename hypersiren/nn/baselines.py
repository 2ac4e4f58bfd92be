"""Baseline coordinate networks of the SIREN paper's comparisons: ReLU, ReLU with positional encoding,
Gaussian Fourier features (Tancik et al. 2020) and tanh. All map coords (..., in) -> (..., out)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class MLP(nn.Module):
    """Plain MLP with ``hidden_layers + 1`` activated layers and a linear output (same depth as a Siren)."""

    def __init__(self, in_features: int, out_features: int, hidden_features: int, hidden_layers: int,
                 activation: str = "relu"):
        super().__init__()
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        widths = [in_features] + [hidden_features] * (hidden_layers + 1)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), act()]
        layers.append(nn.Linear(hidden_features, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, coords: Tensor) -> Tensor:
        return self.net(coords)


class PositionalEncoding(nn.Module):
    """NeRF encoding: x -> [x, sin(2^k pi x), cos(2^k pi x) for k < num_frequencies]; (..., d) -> (..., d(1+2L))."""

    def __init__(self, in_features: int, num_frequencies: int = 10):
        super().__init__()
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(num_frequencies), persistent=False)
        self.out_features = in_features * (1 + 2 * num_frequencies)

    def forward(self, coords: Tensor) -> Tensor:
        angles = (coords.unsqueeze(-1) * self.frequencies).flatten(-2)
        return torch.cat([coords, torch.sin(angles), torch.cos(angles)], dim=-1)


class FourierFeatures(nn.Module):
    """Gaussian random Fourier features: x -> [cos(2 pi B x), sin(2 pi B x)], B ~ N(0, scale^2); (..., d) -> (..., 2m)."""

    def __init__(self, in_features: int, num_features: int = 256, scale: float = 10.0):
        super().__init__()
        self.register_buffer("matrix", torch.randn(num_features, in_features) * scale)
        self.out_features = 2 * num_features

    def forward(self, coords: Tensor) -> Tensor:
        angles = 2 * math.pi * coords @ self.matrix.T
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class EncodedMLP(nn.Module):
    """An input encoding followed by a ReLU MLP."""

    def __init__(self, encoding: nn.Module, out_features: int, hidden_features: int, hidden_layers: int):
        super().__init__()
        self.encoding = encoding
        self.mlp = MLP(encoding.out_features, out_features, hidden_features, hidden_layers, "relu")

    def forward(self, coords: Tensor) -> Tensor:
        return self.mlp(self.encoding(coords))
