"""WAV files through scipy: samples as stored (integer PCM or float, mono or multichannel) in, 32-bit float out."""
from __future__ import annotations

import re
import struct
import warnings
from pathlib import Path

import numpy as np

from hypersiren.errors import InputError
from hypersiren.io import atomic_write, check_input_file

FLOAT32_MAX = float(np.finfo(np.float32).max)  # samples are computed with in float32


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """The samples (N,) or (N, channels) in their stored dtype and the sample rate in Hz of a WAV file.
    InputError for a missing, empty, truncated or unreadable file, or float samples float32 cannot hold."""
    from scipy.io import wavfile

    path = check_input_file(path, "audio file", "a WAV file")
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
    data = np.asarray(data)
    if data.dtype.kind == "f" and (np.isfinite(data) & (np.abs(data) > FLOAT32_MAX)).any():
        raise InputError(f"audio {path} has float samples beyond float32's range (±{FLOAT32_MAX:.3g}); expected "
                         "samples in [-1, 1]")
    return data, int(rate)


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    """Samples (N,) float32 in [-1, 1] as a 32-bit float WAV at ``rate`` Hz, atomically."""
    from scipy.io import wavfile

    with atomic_write(path) as f:
        wavfile.write(f, int(rate), samples.astype(np.float32, copy=False))
