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


def ssim(prediction: Tensor, target: Tensor, data_range: float = 1.0, win_size: int = 7) -> Tensor:
    """Mean structural similarity of each image pair: (B, C, H, W) x 2 -> (B,) float64 on the inputs' device.

    ``skimage.metrics.structural_similarity(..., channel_axis=0, data_range=data_range)`` with its defaults
    (uniform win_size x win_size window, sample covariance, K1 = 0.01, K2 = 0.03, the mean over the windows that
    fit inside the image, averaged over channels), on float64 copies, one pair at a time on the CPU (100 faces
    of 32 x 32 take ~30 ms). win_size is reduced to the largest odd size that fits images smaller than it;
    images need at least 3 x 3 pixels.
    """
    from skimage.metrics import structural_similarity

    side = min(prediction.shape[-2:])
    win_size = min(win_size, side if side % 2 else side - 1)
    if win_size < 3:
        raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {tuple(prediction.shape[-2:])}")
    pairs = zip(prediction.detach().double().cpu().numpy(), target.detach().double().cpu().numpy())
    values = [structural_similarity(x, y, channel_axis=0, data_range=data_range, win_size=win_size) for x, y in pairs]
    return torch.tensor(values, dtype=torch.float64, device=prediction.device)
