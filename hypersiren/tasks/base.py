"""What a zoo entry supplies to the engine: its data, model, loss, metrics, summaries and outputs."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn


class Task:
    """One trainable entry of the zoo.

    Subclasses set ``name`` (the CLI word), ``kind`` (stored in checkpoints), ``description`` (one line for
    ``hypersiren zoo``) and ``defaults`` (engine options this task changes, e.g. ``{"steps": 500}``), and
    implement ``__init__`` (build data and ``self.model`` from ``config``; raise InputError on bad input),
    ``batch``, ``loss`` and ``metrics``. ``summaries`` and ``write_outputs`` are optional.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    description: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    model: nn.Module

    def __init__(self, config: dict[str, Any], device: torch.device):
        self.config = config
        self.device = device

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the task's own command-line options (inputs, sizes, loss weights)."""

    def model_meta(self) -> dict[str, Any]:
        """JSON config that rebuilds ``self.model`` (stored in the checkpoint as ``meta["model"]``)."""
        return dict(getattr(self.model, "config", {}))

    def parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser trains."""
        return list(self.model.parameters())

    def batch(self, step: int) -> Any:
        """The training batch for ``step`` (drawn with torch's global RNG, which the engine seeds and saves)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, float | Tensor]]:
        """Scalar loss and named scalars to log. ``model`` is ``self.model`` or its compiled/DDP wrapper."""
        raise NotImplementedError

    def metrics(self) -> dict[str, float]:
        """Evaluation metrics of the current model (called under no_grad-free context; use torch.no_grad inside)."""
        raise NotImplementedError

    def summaries(self, writer, step: int) -> None:
        """Write pictures/audio to a TensorBoard SummaryWriter."""

    def final_state(self) -> dict[str, Any]:
        """Extra entries of the checkpoint written when training ends (tensors, dicts, JSON scalars; default none)."""
        return {}

    def write_outputs(self, out_dir: Path) -> list[Path]:
        """Write the rendered result (PNG, WAV, mesh) into ``out_dir``; returns the paths written."""
        return []


def add_model_arguments(parser: argparse.ArgumentParser, first_omega: float = 30.0) -> None:
    """The coordinate-network options every zoo entry shares."""
    from hypersiren.nn import MODEL_NAMES

    group = parser.add_argument_group("network")
    group.add_argument("--model", default="siren", choices=MODEL_NAMES, help="coordinate network (default: siren)")
    group.add_argument("--hidden-features", type=positive_int, default=256, help="width of hidden layers (default: 256)")
    group.add_argument("--hidden-layers", type=non_negative_int, default=3, help="hidden-to-hidden layers (default: 3)")
    group.add_argument("--first-omega", type=positive_float, default=first_omega,
                       help=f"w0 of the first sine layer (default: {first_omega:g})")
    group.add_argument("--hidden-omega", type=positive_float, default=30.0, help="w0 of later sine layers (default: 30)")


def model_from_config(config: dict[str, Any], in_features: int, out_features: int) -> tuple[nn.Module, dict[str, Any]]:
    """Build the network the shared model options describe; returns it and the config that rebuilds it."""
    from hypersiren.nn import build_model

    meta = dict(name=config["model"], in_features=in_features, out_features=out_features,
                hidden_features=config["hidden_features"], hidden_layers=config["hidden_layers"],
                first_omega=config["first_omega"], hidden_omega=config["hidden_omega"])
    return build_model(**meta), meta


def _number(kind: type, low: float, inclusive: bool, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (value >= low if inclusive else value > low) or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    parse.__name__ = what
    return parse


positive_int = _number(int, 0, False, "a positive integer")
non_negative_int = _number(int, 0, True, "an integer >= 0")
positive_float = _number(float, 0.0, False, "a positive number")
non_negative_float = _number(float, 0.0, True, "a number >= 0")
