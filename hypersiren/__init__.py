"""hypersiren: implicit neural representations with SIRENs.

Importing the package loads torch only; TensorBoard and matplotlib are imported when first used.
"""
from hypersiren import diff
from hypersiren.nn import Siren, build_model

__version__ = "0.1.0"
__all__ = ["Siren", "build_model", "diff", "__version__"]
