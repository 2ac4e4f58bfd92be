"""Shared fixtures: tiny signals generated on the fly (tests never read /work/shared or the network)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

# Small everything: tests run on two shared CPU cores.
torch.set_num_threads(1)

TINY_NET = ["--hidden-features", "16", "--hidden-layers", "1", "--no-progress"]


def tone(length: int = 400, rate: int = 8000) -> np.ndarray:
    """Two sines in [-0.75, 0.75]: (length,) float32."""
    t = np.arange(length) / rate
    return (0.5 * np.sin(2 * math.pi * 440 * t) + 0.25 * np.sin(2 * math.pi * 1250 * t)).astype(np.float32)


@pytest.fixture
def float_wav(tmp_path: Path) -> Path:
    from scipy.io import wavfile

    path = tmp_path / "tone_float.wav"
    wavfile.write(path, 8000, tone())
    return path


@pytest.fixture
def int16_wav(tmp_path: Path) -> Path:
    from scipy.io import wavfile

    path = tmp_path / "tone_int16.wav"
    wavfile.write(path, 8000, np.round(tone() * 32767).astype(np.int16))
    return path


def moving_square(frames: int = 4, height: int = 16, width: int = 24) -> np.ndarray:
    """A white square moving right on a coloured gradient: (T, H, W, 3) uint8."""
    y, x = np.mgrid[:height, :width]
    video = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        video[t, ..., 0] = 255 * x // width
        video[t, ..., 1] = 255 * y // height
        video[t, ..., 2] = 64
        video[t, 4:10, 2 + 3 * t : 8 + 3 * t] = 255
    return video


def write_square_video(path: Path) -> Path:
    """``moving_square`` as a 4-frame 24x16 H.264 MP4 at ``path``, written with PyAV."""
    import av

    video = moving_square()
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        for image in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture
def tiny_mp4(tmp_path: Path) -> Path:
    """A 4-frame 24x16 H.264 MP4 (``write_square_video``)."""
    return write_square_video(tmp_path / "square.mp4")


@pytest.fixture
def cli(capsys):
    """Run ``hypersiren ARGS`` in-process: returns (exit status, stdout, stderr)."""
    from hypersiren.cli import main

    def run(*args) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(autouse=True)
def face_cache_in_tmp(tmp_path_factory, monkeypatch):
    """Preprocessed face caches (hypersiren.data.faces) go to a temporary folder, never ~/.cache."""
    monkeypatch.setenv("HYPERSIREN_CACHE", str(tmp_path_factory.mktemp("hypersiren-cache")))


TINY_PRIOR = ["--resolution", "16", "--batch-size", "8", "--hidden-features", "16", "--hidden-layers", "1",
              "--basis-features", "24", "--encoder-latent", "8", "--encoder-dim", "16", "--queries", "4",
              "--encoder-layers", "1", "--eval-images", "8", "--summary-every", "0", "--no-progress"]
TINY_HYPERNET = ["--method", "hypernet", "--resolution", "16", "--batch-size", "8", "--hidden-features", "16",
                 "--hidden-layers", "1", "--latent-dim", "8", "--eval-images", "8", "--summary-every", "0", "--no-progress"]


@pytest.fixture(scope="session")
def tiny_prior_checkpoint(tmp_path_factory) -> Path:
    """A tiny face prior of the default method (16 x 16 LFW faces, 3 steps): its checkpoint path."""
    from hypersiren.cli import main

    out = tmp_path_factory.mktemp("tiny-prior")
    assert main(["train", "prior", *TINY_PRIOR, "--steps", "3", "--out", str(out)]) == 0
    return out / "checkpoint.safetensors"
