"""Audio clips as signals: samples from WAV files (``hypersiren.formats.audio``) and back.

Samples are mono float32: integer PCM is divided by its full scale (int16 by 2^15, 24/32-bit by 2^31 as scipy
left-justifies 24-bit, uint8 as (x - 128) / 128) into [-1, 1], float samples are kept as stored (a float WAV may
peak above 1) and stereo is averaged to mono. The network fits ``samples / peak`` (peak = max |sample|), so its
values span [-1, 1]; outputs are multiplied by ``peak`` again and written as 32-bit float WAV, never clipped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hypersiren.errors import InputError
from hypersiren.formats.audio import read_wav, write_wav

_FULL_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31, np.dtype(np.int64): 2.0**63}


def pcm_to_float(data: np.ndarray) -> np.ndarray:
    """Integer or float PCM (N,) or (N, channels) -> float32 with the same shape: integers in [-1, 1], floats as
    stored."""
    if data.dtype == np.uint8:
        return ((data.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if data.dtype in _FULL_SCALE:
        return (data.astype(np.float64) / _FULL_SCALE[data.dtype]).astype(np.float32)
    if data.dtype.kind == "f":
        return data.astype(np.float32)
    raise InputError(f"unsupported WAV sample type {data.dtype}; expected 8/16/24/32-bit PCM or 32/64-bit float")


def load_audio(path: str | Path) -> tuple[Tensor, int]:
    """Read a WAV file: returns mono samples (N,) float32 (see the module docstring) and the sample rate in Hz.

    Raises InputError for a missing, unreadable, empty or non-finite file.
    """
    data, rate = read_wav(path)
    samples = pcm_to_float(data)
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float64).astype(np.float32)
    if samples.size < 2:
        raise InputError(f"audio {path} has {samples.size} samples; expected at least 2")
    if not np.isfinite(samples).all():
        raise InputError(f"audio {path} contains NaN or Inf samples")
    if rate <= 0:
        raise InputError(f"audio {path} has sample rate {rate}; expected a positive rate")
    return torch.from_numpy(np.ascontiguousarray(samples)), int(rate)


def peak(samples: Tensor) -> float:
    """max |sample|, or 1 for a silent clip (so normalisation leaves it unchanged)."""
    value = float(samples.abs().max())
    return value if value > 0 else 1.0


def save_audio(samples: Tensor, rate: int, path: str | Path) -> None:
    """Write mono samples (N,) as a 32-bit float WAV at ``rate`` Hz, atomically; values beyond [-1, 1] are kept."""
    write_wav(path, samples.detach().float().cpu().numpy(), rate)


def resampled_length(length: int, rate: int, new_rate: int) -> int:
    """Samples covering the same time span [first, last sample] at ``new_rate`` (grid endpoints are kept)."""
    return max(2, round((length - 1) * new_rate / rate) + 1)
