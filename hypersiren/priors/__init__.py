"""Priors over implicit functions: modules that turn a context (a few known pixels) into a SIREN.

Every prior implements ``FunctionPrior``; they are registered by ``method`` name so one checkpoint format and
``HyperSiren.load`` serve all of them.
"""
from hypersiren.priors.base import PRIORS, FunctionPrior, register_prior
from hypersiren.priors import functa, hypernet, maml  # noqa: F401  (registers "functa", "hypernet", "maml", "reptile")

__all__ = ["PRIORS", "FunctionPrior", "register_prior"]
