"""Audio clips as signals: WAV reading (integer PCM and 32/64-bit float) and writing.

Samples are mono float32 in [-1, 1]: integer PCM is divided by its full scale (int16 by 2^15, 24/32-bit by
2^31 as scipy left-justifies 24-bit, uint8 as (x - 128) / 128), float samples are kept and stereo is averaged
to mono. The network fits ``samples / peak`` (peak = max |sample|), so its values span [-1, 1]; outputs are
multiplied by ``peak`` again.
"""
from __future__ import annotations

import re
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hypersiren.errors import InputError

_FULL_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31, np.dtype(np.int64): 2.0**63}


def pcm_to_float(data: np.ndarray) -> np.ndarray:
    """Integer or float PCM (N,) or (N, channels) -> float32 in [-1, 1] with the same shape."""
    if data.dtype == np.uint8:
        return ((data.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if data.dtype in _FULL_SCALE:
        return (data.astype(np.float64) / _FULL_SCALE[data.dtype]).astype(np.float32)
    if data.dtype.kind == "f":
        return data.astype(np.float32)
    raise InputError(f"unsupported WAV sample type {data.dtype}; expected 8/16/24/32-bit PCM or 32/64-bit float")


def load_audio(path: str | Path) -> tuple[Tensor, int]:
    """Read a WAV file: returns mono samples (N,) float32 in [-1, 1] and the sample rate in Hz.

    Raises InputError for a missing, unreadable, empty or non-finite file.
    """
    from scipy.io import wavfile

    path = Path(path)
    if not path.exists():
        raise InputError(f"audio file not found: {path} (expected a WAV file)")
    if path.is_dir():
        raise InputError(f"expected a WAV file, got a directory: {path}")
    try:
        with warnings.catch_warnings(record=True) as caught:  # unknown chunks (LIST, cue) are skipped quietly
            warnings.simplefilter("always", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except (ValueError, OSError, EOFError, IndexError, struct.error) as err:
        raise InputError(f"cannot read audio {path}: {err} (expected a PCM or float WAV file)") from None
    for warning in caught:
        eof = re.search(r"finished at (\d+) bytes, expected (\d+)", str(warning.message))
        # scipy reads what is there; more than a pad byte missing (and not a streaming 0xFFFFFFFF header): truncated
        if eof and int(eof[2]) - int(eof[1]) > 1 and int(eof[2]) < 0xFFFFFFFF:
            raise InputError(f"audio {path} is truncated: {eof[1]} of the {eof[2]} bytes its header announces")
    samples = pcm_to_float(np.asarray(data))
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
    """Write mono samples (N,) as a 32-bit float WAV at ``rate`` Hz, atomically (values are clipped to [-1, 1])."""
    from scipy.io import wavfile

    from hypersiren.io import atomic_write

    array = samples.detach().float().cpu().clamp(-1, 1).numpy()
    with atomic_write(path) as f:
        wavfile.write(f, int(rate), array)


def resampled_length(length: int, rate: int, new_rate: int) -> int:
    """Samples covering the same time span [first, last sample] at ``new_rate`` (grid endpoints are kept)."""
    return max(2, round((length - 1) * new_rate / rate) + 1)
