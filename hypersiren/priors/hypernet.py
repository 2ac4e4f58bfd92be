"""The hypernetwork prior over SIRENs (Sitzmann et al. 2020, section 4.4): context encoder -> latent ->
hypernetwork -> SIREN.

Loss (paper): MSE over the target pixels + lambda_latent * mean(z^2) + lambda_weights * mean(theta^2), with
theta the parameters of the generated SIRENs (paper: 0.1 and 100).
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from hypersiren.data.grid import grid
from hypersiren.nn.encoders import ENCODERS, build_encoder
from hypersiren.nn.hypernet import HYPERNETS, build_hypernet
from hypersiren.priors.base import FunctionPrior, register_prior


@register_prior
class HypernetPrior(FunctionPrior):
    """Encoder (``set`` with ReLU/sine, or ``cnn``) + hypernetwork (``full`` or ``light``) over a SIREN 2 -> 3.

    latent_dim: size of the latent z; hidden_features/hidden_layers/first_omega/hidden_omega: the generated
    SIREN (paper: 256 wide, 3 hidden layers); head_features/head_layers: the hypernetwork heads (paper: 256,
    1 hidden layer).
    """

    method = "hypernet"

    def __init__(self, encoder: str = "set", activation: str = "relu", hypernet: str = "full", latent_dim: int = 256,
                 hidden_features: int = 256, hidden_layers: int = 3, first_omega: float = 30.0, hidden_omega: float = 30.0,
                 head_features: int = 256, head_layers: int = 1, lambda_latent: float = 0.1, lambda_weights: float = 100.0):
        super().__init__()
        if encoder not in ENCODERS or hypernet not in HYPERNETS or activation not in ("relu", "sine"):
            raise ValueError(f"hypernet prior: encoder must be one of {ENCODERS}, hypernet one of {HYPERNETS}, "
                             f"activation relu or sine; got {encoder!r}, {hypernet!r}, {activation!r}")
        self._config = dict(encoder=encoder, activation=activation, hypernet=hypernet, latent_dim=latent_dim,
                            hidden_features=hidden_features, hidden_layers=hidden_layers, first_omega=float(first_omega),
                            hidden_omega=float(hidden_omega), head_features=head_features, head_layers=head_layers,
                            lambda_latent=float(lambda_latent), lambda_weights=float(lambda_weights))
        siren = dict(in_features=2, out_features=3, hidden_features=hidden_features, hidden_layers=hidden_layers,
                     first_omega=first_omega, hidden_omega=hidden_omega)
        self.encoder = build_encoder(encoder, latent_dim, activation)
        self.hypernet = build_hypernet(hypernet, siren, latent_dim, head_features, head_layers)

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    @property
    def latent_dim(self) -> int:
        return self._config["latent_dim"]

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
        loss = mse + self._config["lambda_latent"] * latent_penalty + self._config["lambda_weights"] * weight_penalty
        return loss, {"mse": mse.detach(), "latent_penalty": latent_penalty.detach(), "weight_penalty": weight_penalty.detach()}

