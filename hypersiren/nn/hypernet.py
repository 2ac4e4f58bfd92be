"""Hypernetworks: a latent vector per sample -> the SIREN that sample describes.

``full``: the paper's form, one ReLU MLP head per SIREN parameter tensor predicting every weight and bias.
``light``: a shared, trained SIREN whose sine layers are shifted per sample (FiLM shift modulations, Dupont et
al. 2022) by one small MLP head; about 100x fewer parameters and no per-sample weight matrices.

Both map latents (B, latent_dim) to a ``generated`` dict that ``render(generated, coords)`` evaluates at
coords (B, N, 2) -> (B, N, out_features), and ``weight_penalty(generated)`` = mean(theta^2) over the
parameters of the SIRENs they describe (the paper's regulariser).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hypersiren.nn.siren import Siren

HYPERNETS = ("full", "light")


def _head(latent_dim: int, hidden_features: int, hidden_layers: int, out_features: int) -> nn.Sequential:
    """ReLU MLP ``latent_dim -> hidden_features x (hidden_layers + 1) -> out_features`` (linear output)."""
    widths = [latent_dim] + [hidden_features] * (hidden_layers + 1)
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        linear = nn.Linear(a, b)
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], out_features))


class FullHypernet(nn.Module):
    """One head per parameter tensor of a ``Siren(**siren_config)`` (paper: 3-layer ReLU heads, width 256).

    Initialisation: each head's output bias is a fresh SIREN initialisation of its tensor and its output weight
    is kaiming-normal scaled by ``0.1 * bound`` (bound = the SIREN init half-width), so at initialisation every
    generated SIREN is a SIREN-initialised network plus a small latent-dependent perturbation.
    """

    def __init__(self, siren_config: dict, latent_dim: int = 256, hidden_features: int = 256, hidden_layers: int = 1):
        super().__init__()
        template = Siren(**siren_config).requires_grad_(False)
        object.__setattr__(self, "siren", template)  # a shape/forward template only: not a trained submodule
        self.shapes = dict(template.parameter_shapes())
        bounds = template.init_bounds()
        initial = dict(template.named_parameters())
        self.heads = nn.ModuleDict()
        for name, shape in self.shapes.items():
            head = _head(latent_dim, hidden_features, hidden_layers, math.prod(shape))
            with torch.no_grad():
                head[-1].weight.mul_(0.1 * bounds[name])
                head[-1].bias.copy_(initial[name].reshape(-1))
            self.heads[name.replace(".", "_")] = head

    def forward(self, latent: Tensor) -> dict[str, dict[str, Tensor]]:
        params = {name: self.heads[name.replace(".", "_")](latent).reshape(-1, *shape) for name, shape in self.shapes.items()}
        return {"params": params}

    def render(self, generated: dict, coords: Tensor) -> Tensor:
        return self.siren(coords, params=generated["params"])

    def weight_penalty(self, generated: dict) -> Tensor:
        params = generated["params"].values()
        return sum(p.pow(2).sum() for p in params) / sum(p.numel() for p in params)


class LightHypernet(nn.Module):
    """A shared trained SIREN modulated per sample by shifts (B, num_sine_layers, hidden) from one MLP head.

    The head's output layer starts at zero bias and weights scaled by 1e-2, so every sample starts as the
    shared SIREN-initialised network.
    """

    def __init__(self, siren_config: dict, latent_dim: int = 256, hidden_features: int = 256, hidden_layers: int = 1):
        super().__init__()
        self.siren = Siren(**siren_config)
        self.shift_shape = (self.siren.num_sine_layers, siren_config["hidden_features"])
        self.head = _head(latent_dim, hidden_features, hidden_layers, math.prod(self.shift_shape))
        with torch.no_grad():
            self.head[-1].weight.mul_(1e-2)
            self.head[-1].bias.zero_()

    def forward(self, latent: Tensor) -> dict[str, Tensor]:
        return {"shifts": self.head(latent).reshape(-1, *self.shift_shape)}

    def render(self, generated: dict, coords: Tensor) -> Tensor:
        return self.siren(coords, shifts=generated["shifts"])

    def weight_penalty(self, generated: dict) -> Tensor:
        """mean(theta^2) over each sample's effective parameters: shared weights, shifted sine-layer biases."""
        shifts = generated["shifts"]
        batch = shifts.shape[0]
        total = shifts.new_zeros(())
        count = 0
        for i, layer in enumerate(self.siren.layers):
            bias = layer.bias + shifts[:, i] if i < shifts.shape[1] else layer.bias.expand(batch, -1)
            total = total + batch * layer.weight.pow(2).sum() + bias.pow(2).sum()
            count += batch * (layer.weight.numel() + layer.bias.numel())
        return total / count


def build_hypernet(name: str, siren_config: dict, latent_dim: int = 256, hidden_features: int = 256,
                   hidden_layers: int = 1) -> nn.Module:
    """``full`` (paper) or ``light`` (shift modulations of a shared SIREN)."""
    if name == "full":
        return FullHypernet(siren_config, latent_dim, hidden_features, hidden_layers)
    if name == "light":
        return LightHypernet(siren_config, latent_dim, hidden_features, hidden_layers)
    raise ValueError(f"unknown hypernetwork {name!r}; expected one of {', '.join(HYPERNETS)}")
