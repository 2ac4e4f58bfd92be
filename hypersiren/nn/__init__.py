"""Network pieces: pure torch modules, no I/O."""
from hypersiren.nn.baselines import MLP, EncodedMLP, FourierFeatures, PositionalEncoding
from hypersiren.nn.factory import MODEL_NAMES, build_model
from hypersiren.nn.siren import Siren, affine

__all__ = ["MLP", "EncodedMLP", "FourierFeatures", "PositionalEncoding", "Siren", "affine", "MODEL_NAMES", "build_model"]
