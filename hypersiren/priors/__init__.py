"""Priors over implicit functions: modules that turn a context (a few known pixels) into a SIREN.

Every prior implements ``FunctionPrior`` and is registered by ``method`` name in ``PRIORS`` (one module per method
in this package), so one checkpoint format, ``train prior --method`` and ``HyperSiren.load`` serve all of them.
"""
from hypersiren.priors.base import PRIORS, FunctionPrior, PriorConfig

__all__ = ["PRIORS", "FunctionPrior", "PriorConfig"]
