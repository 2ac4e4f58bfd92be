"""hypersiren: implicit neural representations with SIRENs.

Importing the package loads torch only; TensorBoard and matplotlib are imported when first used.
"""
from hypersiren import diff
from hypersiren.nn import Siren, build_model

__version__ = "0.1.0"
__all__ = ["HyperSiren", "Siren", "build_model", "diff", "__version__"]


def __getattr__(name: str):
    if name == "HyperSiren":  # imported on first use: it pulls in the priors and the face data code
        from hypersiren.prior import HyperSiren

        return HyperSiren
    raise AttributeError(f"module 'hypersiren' has no attribute {name!r}")
