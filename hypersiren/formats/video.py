"""Video files through PyAV (FFmpeg): frames of any container and codec FFmpeg decodes in, H.264 MP4 out."""
from __future__ import annotations

import contextlib
import math
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np

from hypersiren.errors import InputError
from hypersiren.io import atomic_write, check_input_file
from hypersiren.limits import check_pixels

Decoded = TypeVar("Decoded")  # whatever each_frame makes of a frame


def video_size(path: str | Path) -> tuple[int, int, int]:
    """(frames, height, width) of the first video stream of ``path`` from its header, nothing decoded; frames is
    the container's count, else its duration times its frame rate, else 0 (unknown). InputError as ``read_video``."""
    with _video_stream(path) as stream:
        frames = stream.frames
        if not frames and stream.duration and stream.time_base:
            frames = math.ceil(float(stream.duration * stream.time_base) * float(stream.average_rate or 0))
        return int(frames), stream.codec_context.height, stream.codec_context.width


@contextlib.contextmanager
def _video_stream(path: str | Path) -> Iterator:
    """The first video stream of ``path``, opened, its frame size within the pixel limit (``hypersiren.limits``)."""
    import av

    path = check_input_file(path, "video file", "a video file such as MP4")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream; expected a video file such as MP4")
            stream = container.streams.video[0]
            check_pixels(f"each frame of video {path}", stream.codec_context.width, stream.codec_context.height)
            yield stream
    except InputError:
        raise
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read video {path}: {err} (expected a video file FFmpeg decodes, e.g. MP4)") from None


def read_video(path: str | Path, each_frame: Callable[[np.ndarray], Decoded], max_frames: int = 0
               ) -> tuple[list[Decoded], float]:
    """Decode the first video stream of ``path``: ``each_frame`` of every RGB frame (H, W, 3) uint8 in order
    (the first ``max_frames``, 0 = all), so only what it returns stays in memory, and the frame rate in
    frames/s. InputError for a missing, empty or undecodable file, one without video, or frames over the pixel
    limit. A truncated or damaged file gives the frames before the damage, with a warning naming how many of the
    declared frames were read."""
    import av

    frames: list[Decoded] = []
    damage = ""
    with _video_stream(path) as stream:
        stream.thread_type = "AUTO"  # decode with several threads
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        declared = stream.frames  # 0 when the container does not say
        try:
            for frame in stream.container.decode(stream):
                frames.append(each_frame(frame.to_ndarray(format="rgb24")))
                if max_frames and len(frames) >= max_frames:
                    break
        except av.FFmpegError as err:
            if not frames:
                raise
            damage = f" ({err})"
    if not frames:
        raise InputError(f"video {path} has no decodable frames")
    if damage or len(frames) < min(declared, max_frames or declared):
        read = f"{len(frames)} of the {declared} frames it declares" if declared else f"{len(frames)} frames"
        warnings.warn(f"video {path}: read {read}; it is truncated or damaged{damage}, so only those frames are used",
                      stacklevel=2)
    return frames, rate


def write_mp4(path: str | Path, frames: np.ndarray, fps: float) -> None:
    """Frames (T, H, W, 3) uint8 RGB as an H.264 MP4 (yuv420p, CRF 18), atomically. yuv420p needs even sizes:
    an odd height or width is padded by repeating the last row or column."""
    import av

    height, width = frames.shape[1] + frames.shape[1] % 2, frames.shape[2] + frames.shape[2] % 2
    frames = np.pad(frames, ((0, 0), (0, height - frames.shape[1]), (0, width - frames.shape[2]), (0, 0)), mode="edge")
    with atomic_write(path) as f:
        with av.open(f, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": "18"}
            for image in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode())
