"""Videos as signals: decoding (PyAV, any container/codec FFmpeg reads), resizing, MP4 writing.

Frames are (T, C, H, W) float32 in [0, 1] (RGB, C = 3); network values are ``2 v - 1`` as for images.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hypersiren.data.image import fit_size, resize
from hypersiren.errors import InputError


def load_video(path: str | Path, max_frames: int = 0, longer_side: int = 0) -> tuple[Tensor, float]:
    """Decode the first video stream of ``path``.

    max_frames: keep only the first N frames (0 = all). longer_side: resize every frame so its longer side has
    this many pixels, aspect ratio kept (0 = original size). Frames are resized while decoding, so memory is
    bounded by the resized video. Returns frames (T, 3, H, W) in [0, 1] and the frame rate in frames/s.
    """
    import av

    path = Path(path)
    if not path.exists():
        raise InputError(f"video file not found: {path} (expected a video file such as MP4)")
    if path.is_dir():
        raise InputError(f"expected a video file, got a directory: {path}")
    frames: list[Tensor] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream; expected a video file such as MP4")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # decode with several threads
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            for frame in container.decode(stream):
                image = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).float() / 255.0
                if longer_side:
                    image = resize(image, *fit_size(*image.shape[1:], longer_side))
                frames.append(image)
                if max_frames and len(frames) >= max_frames:
                    break
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read video {path}: {err} (expected a video file FFmpeg decodes, e.g. MP4)") from None
    if not frames:
        raise InputError(f"video {path} has no decodable frames")
    return torch.stack(frames), rate


def save_video(frames: Tensor, path: str | Path, fps: float) -> None:
    """Write frames (T, 3, H, W) in [0, 1] as an H.264 MP4 (yuv420p, so odd sizes are padded by one pixel),
    atomically."""
    import av

    from hypersiren.io import atomic_write

    array = (frames.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    height, width = array.shape[1] + array.shape[1] % 2, array.shape[2] + array.shape[2] % 2
    array = np.pad(array, ((0, 0), (0, height - array.shape[1]), (0, width - array.shape[2]), (0, 0)), mode="edge")
    with atomic_write(path) as f:
        with av.open(f, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": "18"}
            for image in array:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode())
