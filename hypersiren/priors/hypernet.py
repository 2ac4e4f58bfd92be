"""The hypernetwork prior over SIRENs (Sitzmann et al. 2020, section 4.4): context encoder -> latent ->
hypernetwork -> SIREN.

Loss (paper): MSE over the target pixels + lambda_latent * mean(z^2) + lambda_weights * mean(theta^2), with
theta the parameters of the generated SIRENs (paper: 0.1 and 100).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from hypersiren.config import layer_count, non_negative_float, option, width
from hypersiren.data.grid import grid
from hypersiren.nn.encoders import ENCODERS, build_encoder
from hypersiren.nn.hypernet import HYPERNETS, build_hypernet
from hypersiren.priors.base import PRIORS, FunctionPrior, PriorConfig


@PRIORS.register
class HypernetPrior(FunctionPrior):
    """Encoder (``set`` with ReLU/sine, or ``cnn``) + hypernetwork (``full`` or ``light``) over a SIREN 2 -> 3
    (paper: 256 wide, 3 hidden layers; heads 256 wide with 1 hidden layer)."""

    method = "hypernet"

    @dataclass(frozen=True, kw_only=True)
    class Config(PriorConfig):
        encoder: str = option("set", "context encoder", choices=ENCODERS)
        activation: str = option("relu", "set-encoder activation", choices=("relu", "sine"))
        hypernet: str = option("full", "full = paper (a head per SIREN parameter), light = shift modulations of a "
                                       "shared SIREN", choices=HYPERNETS)
        latent_dim: int = option(256, "latent size", check=width)
        head_features: int = option(256, "width of the hypernetwork heads", check=width)
        head_layers: int = option(1, "hidden layers of the hypernetwork heads", check=layer_count)
        lambda_latent: float = option(0.1, "weight of mean(z^2)", check=non_negative_float)
        lambda_weights: float = option(100.0, "weight of mean(theta^2)", check=non_negative_float)

    def __init__(self, config: Config | None = None, **options):
        super().__init__(config, **options)
        c = self.config
        siren = dict(in_features=2, out_features=3, hidden_features=c.hidden_features, hidden_layers=c.hidden_layers,
                     first_omega=c.first_omega, hidden_omega=c.hidden_omega)
        self.encoder = build_encoder(c.encoder, c.latent_dim, c.activation)
        self.hypernet = build_hypernet(c.hypernet, siren, c.latent_dim, c.head_features, c.head_layers)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim
    def infer(self, images: Tensor, masks: Tensor) -> Tensor:
        """Latents (B, latent_dim) from the known pixels of images (B, 3, R, R) under masks (B, R, R)."""
        coords = grid(*images.shape[-2:], device=images.device)
        return self.encoder(images, masks, coords)

    def render(self, code: Tensor | dict, coords: Tensor) -> Tensor:
        """code: latents (B, latent_dim), or the SIRENs ``generate`` made of them (e.g. refined by
        ``hypersiren.priors.refine.refine(..., weights=True)``)."""
        return self.hypernet.render(code if isinstance(code, dict) else self.hypernet(code), coords)

    def generate(self, code: Tensor) -> dict:
        """The SIRENs latents (B, latent_dim) describe: the hypernetwork's generated weights (or shifts)."""
        return self.hypernet(code)

    def training_loss(self, images: Tensor, masks: Tensor, target_coords: Tensor, target_values: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        latent = self.infer(images, masks)
        generated = self.hypernet(latent)
        mse = (self.hypernet.render(generated, target_coords) - target_values).pow(2).mean()
        latent_penalty = latent.pow(2).mean()
        weight_penalty = self.hypernet.weight_penalty(generated)
        loss = mse + self.config.lambda_latent * latent_penalty + self.config.lambda_weights * weight_penalty
        return loss, {"mse": mse.detach(), "latent_penalty": latent_penalty.detach(), "weight_penalty": weight_penalty.detach()}

