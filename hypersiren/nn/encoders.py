"""Context encoders: a few known pixels of a face -> one latent vector per face.

Both read only the known pixels and take ``(images, masks, coords)`` with coords (R*R, 2) the pixel
coordinates (``hypersiren.data.grid.grid(R, R)``; the CNN ignores them). Images are (B, 3, R, R) network values in [-1, 1]; masks (B, R, R) bool,
True = known; latents (B, latent_dim).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

ENCODERS = ("set", "cnn")


class Sine(nn.Module):
    """``sin(omega * x)``: the set encoder's sine activation (paper's ``Sine``, omega 30)."""

    def __init__(self, omega: float = 30.0):
        super().__init__()
        self.omega = omega

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.omega * x)


def _mlp(widths: list[int], activation: str) -> nn.Sequential:
    """Linear layers between ``widths``, each followed by the activation (ReLU or sine with SIREN init)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        linear = nn.Linear(a, b)
        if activation == "sine":
            bound = 1.0 / a if i == 0 else math.sqrt(6.0 / a) / 30.0
            nn.init.uniform_(linear.weight, -bound, bound)
        layers += [linear, Sine() if activation == "sine" else nn.ReLU()]
    return nn.Sequential(*layers)


def context_points(images: Tensor, masks: Tensor, coords: Tensor) -> tuple[Tensor, Tensor]:
    """The known pixels of every image as one packed set; ``coords`` (R*R, 2) are the pixel coordinates.

    Returns points (K, 5) = (y, x, r, g, b) for all K known pixels of the batch (row-major within each image)
    and owner (K,) the index of the image each point belongs to. Unknown pixels are never read.
    """
    owner, flat = masks.reshape(masks.shape[0], -1).nonzero(as_tuple=True)
    values = images.flatten(2).transpose(1, 2)[owner, flat]
    return torch.cat([coords.to(values.dtype)[flat], values], dim=-1), owner


class SetEncoder(nn.Module):
    """Permutation-invariant encoder (paper: PointNet-style MLP on (x, y, r, g, b) tuples, masked mean pooling).

    Each known pixel goes through ``5 -> hidden x (hidden_layers + 1) -> latent_dim`` with ReLU or sine
    activations after every layer; the latent is the mean over the known pixels of each image.
    """

    def __init__(self, latent_dim: int = 256, hidden_features: int = 256, hidden_layers: int = 2, activation: str = "relu"):
        super().__init__()
        if activation not in ("relu", "sine"):
            raise ValueError(f"set encoder activation must be relu or sine, got {activation!r}")
        self.latent_dim = latent_dim
        self.net = _mlp([5] + [hidden_features] * (hidden_layers + 1) + [latent_dim], activation)

    def forward(self, images: Tensor, masks: Tensor, coords: Tensor) -> Tensor:
        points, owner = context_points(images, masks, coords)
        embeddings = self.net(points)
        total = embeddings.new_zeros(images.shape[0], self.latent_dim).index_add_(0, owner, embeddings)
        counts = torch.bincount(owner, minlength=images.shape[0]).clamp_min(1).to(total.dtype)
        return total / counts[:, None]


class CNNEncoder(nn.Module):
    """Convolutional encoder fed the masked image and the mask as a fourth channel.

    (The paper's code fed the masked image only, so a black known pixel and an unknown one looked the same.)
    Four 3x3 convolutions (the last three with stride 2) and a linear map of the pooled features to the latent;
    any resolution works.
    """

    def __init__(self, latent_dim: int = 256, channels: int = 128):
        super().__init__()
        self.latent_dim = latent_dim
        widths = [4, channels // 2, channels, 2 * channels, 2 * channels]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers += [nn.Conv2d(a, b, 3, stride=1 if i == 0 else 2, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.out = nn.Linear(4 * widths[-1], latent_dim)

    def forward(self, images: Tensor, masks: Tensor, coords: Tensor | None = None) -> Tensor:
        known = masks[:, None].to(images.dtype)
        return self.out(self.features(torch.cat([images * known, known], dim=1)))


def build_encoder(name: str, latent_dim: int = 256, activation: str = "relu") -> nn.Module:
    """``set`` (with ReLU or sine) or ``cnn``."""
    if name == "set":
        return SetEncoder(latent_dim, activation=activation)
    if name == "cnn":
        return CNNEncoder(latent_dim)
    raise ValueError(f"unknown encoder {name!r}; expected one of {', '.join(ENCODERS)}")
