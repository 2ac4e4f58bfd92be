"""Quality metrics on normalised values."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def mse(prediction: Tensor, target: Tensor) -> float:
    return float(torch.mean((prediction.float() - target.float()) ** 2))


def psnr_from_mse(mse_value: float, data_range: float = 2.0) -> float:
    """PSNR in dB for values spanning ``data_range`` (2 for network values in [-1, 1], 1 for images in [0, 1])."""
    if mse_value <= 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse_value)


def psnr(prediction: Tensor, target: Tensor, data_range: float = 2.0) -> float:
    return psnr_from_mse(mse(prediction, target), data_range)
