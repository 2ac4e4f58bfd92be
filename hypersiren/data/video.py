"""Videos as signals: frames from video files (``hypersiren.formats.video``), resized while decoding, and back.

Frames are (T, C, H, W) float32 in [0, 1] (RGB, C = 3); network values are ``2 v - 1`` as for images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hypersiren.data.image import fit_size, resize
from hypersiren.formats.video import read_video, write_mp4


def load_video(path: str | Path, max_frames: int = 0, longer_side: int = 0) -> tuple[Tensor, float]:
    """Decode the first video stream of ``path``.

    max_frames: keep only the first N frames (0 = all). longer_side: resize every frame so its longer side has
    this many pixels, aspect ratio kept (0 = original size). Frames are resized while decoding, so memory is
    bounded by the resized video. Returns frames (T, 3, H, W) in [0, 1] and the frame rate in frames/s.
    """
    def to_signal(rgb: np.ndarray) -> Tensor:
        image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
        return resize(image, *fit_size(*image.shape[1:], longer_side)) if longer_side else image

    frames, rate = read_video(path, to_signal, max_frames)
    return torch.stack(frames), rate


def save_video(frames: Tensor, path: str | Path, fps: float) -> None:
    """Write frames (T, 3, H, W) in [0, 1] as an H.264 MP4 (odd sizes are padded by one pixel), atomically."""
    array = (frames.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    write_mp4(path, array, fps)
