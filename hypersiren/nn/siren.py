"""Sinusoidal representation network (Sitzmann et al. 2020).

Every sine layer computes ``sin(w0 * (W x + b))``; the last layer is linear. The same forward path runs with
the module's own parameters or with *per-sample parameters*: a dict of the same names whose tensors carry a
leading batch dimension B, applied to B coordinate sets in one batched call (used by hypernetworks and
meta-learned priors). ``w0`` is folded into the (small) weight and bias instead of scaling the (large)
activations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
import torch.nn.functional as F

from hypersiren.config import Check, Config, layer_count, option, width
from hypersiren.nn import fused_sine


MAX_OMEGA = 1e6  # beyond it, the float32 sine arguments of inputs in [-1, 1] keep no precision (phase steps > 0.1)
omega = Check(float, lambda v: 0 < v <= MAX_OMEGA, f"a positive number up to {MAX_OMEGA:g}")


@dataclass(frozen=True, kw_only=True)
class SirenConfig(Config):
    """The hidden layers of a SIREN (see ``Siren``); tasks and priors that build one hold these options."""

    title = "network"

    hidden_features: int = option(256, "width of hidden layers", check=width)
    hidden_layers: int = option(3, "hidden-to-hidden layers", check=layer_count)
    first_omega: float = option(30.0, "w0 of the first sine layer", check=omega)
    hidden_omega: float = option(30.0, "w0 of later sine layers", check=omega)


def affine(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``x W^T + b``. x (..., in) with weight (out, in) and bias (out,); or x (B, N, in) with a per-sample
    weight (B, out, in) and/or a per-sample bias (B, out)."""
    if weight.dim() == 3:
        return torch.baddbmm(bias.unsqueeze(-2), x, weight.transpose(-1, -2))
    if bias.dim() == 2:  # shared weight, per-sample bias: one big matmul instead of B small ones
        return F.linear(x, weight) + bias.unsqueeze(-2)
    return F.linear(x, weight, bias)


class Siren(nn.Module):
    """SIREN ``in_features -> hidden_features x (hidden_layers + 1) -> out_features``.

    ``hidden_layers`` counts the hidden-to-hidden sine layers, as in the paper's code: 3 hidden layers means
    4 sine layers and one linear output layer (5 weight matrices).

    Initialisation (paper, section 3.2): first layer weights U(-1/n, 1/n); every later layer
    U(-sqrt(6/n)/w0, sqrt(6/n)/w0) with n the fan-in; biases keep PyTorch's U(-1/sqrt(n), 1/sqrt(n)).
    """

    def __init__(
        self,
        in_features: int = 2,
        out_features: int = 1,
        hidden_features: int = 256,
        hidden_layers: int = 3,
        first_omega: float = 30.0,
        hidden_omega: float = 30.0,
    ):
        super().__init__()
        if min(in_features, out_features, hidden_features) < 1 or hidden_layers < 0:
            raise ValueError("Siren needs positive feature counts and hidden_layers >= 0")
        widths = [in_features] + [hidden_features] * (hidden_layers + 1) + [out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.omegas = [float(first_omega)] + [float(hidden_omega)] * hidden_layers
        self.config = dict(
            in_features=in_features, out_features=out_features, hidden_features=hidden_features,
            hidden_layers=hidden_layers, first_omega=float(first_omega), hidden_omega=float(hidden_omega),
        )
        self.reset_parameters()

    @property
    def num_sine_layers(self) -> int:
        return len(self.omegas)

    def weight_bound(self, index: int) -> float:
        """Half-width of the uniform initialisation of layer ``index``'s weight."""
        fan_in = self.layers[index].in_features
        if index == 0:
            return 1.0 / fan_in
        return math.sqrt(6.0 / fan_in) / self.config["hidden_omega"]

    def init_bounds(self) -> dict[str, float]:
        """Uniform half-width of every parameter's initialisation, keyed like ``named_parameters``."""
        bounds = {}
        for i, layer in enumerate(self.layers):
            bounds[f"layers.{i}.weight"] = self.weight_bound(i)
            bounds[f"layers.{i}.bias"] = 1.0 / math.sqrt(layer.in_features)
        return bounds

    @torch.no_grad()
    def reset_parameters(self) -> None:
        bounds = self.init_bounds()
        for name, p in self.named_parameters():
            p.uniform_(-bounds[name], bounds[name])

    def parameter_shapes(self) -> dict[str, torch.Size]:
        """The per-sample parameter layout: name -> shape of one sample's tensor (without the batch dim)."""
        return {name: p.shape for name, p in self.named_parameters()}

    def forward(self, coords: Tensor, params: dict[str, Tensor] | None = None, shifts: Tensor | None = None) -> Tensor:
        """Evaluate the network.

        coords: (..., in_features), or (B, N, in_features) with per-sample ``params``.
        params: optional per-sample parameters, name -> (B, *shape); missing names fall back to the module's.
        shifts: optional per-sample shift modulations (B, num_sine_layers, hidden_features) added to each
            sine layer's pre-activation inside the sine (Dupont et al. 2022).
        Returns (..., out_features).
        """
        *sine_layers, (weight, bias) = self.effective_parameters(params, shifts)
        fused = params is None and shifts is None and fused_sine.applies(coords, self.config["hidden_features"])
        x = coords
        for sine_weight, sine_bias in sine_layers:
            if fused:  # a training step on a large CPU batch: the elementwise work in fused kernels
                x = fused_sine.sine_of_affine(x, sine_weight, sine_bias)
            else:
                x = _sine(affine(x, sine_weight, sine_bias))
        return affine(x, weight, bias)

    def effective_parameters(self, params: dict[str, Tensor] | None = None, shifts: Tensor | None = None
                             ) -> list[tuple[Tensor, Tensor]]:
        """(weight, bias) of every layer as the forward pass applies them: per-sample ``params`` in place of the
        module's where given; in a sine layer the shift added to the bias and both scaled by the layer's w0, so
        that it computes ``sin(x W^T + b)``. The last pair is the linear output layer's."""
        layers = []
        for i, layer in enumerate(self.layers):
            weight, bias = layer.weight, layer.bias
            if params is not None:
                weight = params.get(f"layers.{i}.weight", weight)
                bias = params.get(f"layers.{i}.bias", bias)
            if i < self.num_sine_layers:
                if shifts is not None:
                    bias = bias + shifts[:, i]
                weight, bias = weight * self.omegas[i], bias * self.omegas[i]
            layers.append((weight, bias))
        return layers


def _sine(pre: Tensor) -> Tensor:
    """``sin(pre)``; in place when no gradient will flow back through it (inference, rendering), which saves
    one activation-sized buffer and one pass over memory per layer."""
    return torch.sin(pre) if pre.requires_grad else pre.sin_()
