"""Network pieces: pure torch modules, no I/O."""
from hypersiren.nn.baselines import MLP, EncodedMLP, FourierFeatures, PositionalEncoding
from hypersiren.nn.factory import MODEL_NAMES, NetworkConfig, build_model
from hypersiren.nn.siren import Siren, SirenConfig, affine

__all__ = ["MLP", "EncodedMLP", "FourierFeatures", "PositionalEncoding", "Siren", "SirenConfig", "affine", "MODEL_NAMES",
           "NetworkConfig", "build_model"]
