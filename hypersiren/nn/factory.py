"""Build a coordinate network by name from a JSON-serialisable config (the form checkpoints store)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from hypersiren.config import option
from hypersiren.nn.measure import build_checked
from hypersiren.nn.baselines import MLP, EncodedMLP, FourierFeatures, PositionalEncoding
from hypersiren.nn.siren import Siren, SirenConfig

MODEL_NAMES = ("siren", "relu", "relu-pe", "fourier", "tanh")


@dataclass(frozen=True, kw_only=True)
class NetworkConfig(SirenConfig):
    """The coordinate network of a zoo entry: a SIREN or one of the paper's baselines, by name."""

    title = "network"

    model: str = option("siren", "coordinate network", choices=MODEL_NAMES, noun="model")

    def network_meta(self, in_features: int, out_features: int) -> dict[str, Any]:
        """The JSON config ``build_model(**meta)`` rebuilds this network from (stored in checkpoints)."""
        return dict(name=self.model, in_features=in_features, out_features=out_features,
                    hidden_features=self.hidden_features, hidden_layers=self.hidden_layers,
                    first_omega=self.first_omega, hidden_omega=self.hidden_omega)


def build_model(name: str, in_features: int, out_features: int, hidden_features: int = 256,
                hidden_layers: int = 3, first_omega: float = 30.0, hidden_omega: float = 30.0,
                pe_frequencies: int = 10, fourier_features: int = 256, fourier_scale: float = 10.0) -> nn.Module:
    """A network ``(..., in_features) -> (..., out_features)``; options that don't apply to ``name`` are ignored.
    InputError if training it would exceed the memory budget (``hypersiren.nn.measure.build_checked``)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")

    def build() -> nn.Module:
        if name == "siren":
            return Siren(in_features, out_features, hidden_features, hidden_layers, first_omega, hidden_omega)
        if name in ("relu", "tanh"):
            return MLP(in_features, out_features, hidden_features, hidden_layers, name)
        if name == "relu-pe":
            return EncodedMLP(PositionalEncoding(in_features, pe_frequencies), out_features, hidden_features,
                              hidden_layers)
        return EncodedMLP(FourierFeatures(in_features, fourier_features, fourier_scale), out_features,
                          hidden_features, hidden_layers)

    return build_checked(build, f"the {name} network (--hidden-features {hidden_features}, --hidden-layers "
                                f"{hidden_layers})")
