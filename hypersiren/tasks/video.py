"""``fit video``: represent a video as a function of (t, y, x) with a coordinate network.

Frame index, row and column each map to [-1, 1]; RGB values map from [0, 1] to [-1, 1] and back on output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from hypersiren.config import non_negative_int, option, override, positive_int
from hypersiren.data.image import fit_size, from_unit, save_image, to_unit
from hypersiren.data.video import load_video, save_video
from hypersiren.formats.video import video_size
from hypersiren.limits import FLOAT32
from hypersiren.engine import EngineConfig
from hypersiren.registry import TASKS
from hypersiren.tasks.signal_fit import RENDER_COPIES, SignalFit
from hypersiren.viz import side_by_side, stack_rows

STRIP_FRAMES = 8  # frames shown in the frame strip and TensorBoard grid
VIDEO_FRAMES = 64  # at most this many frames in TensorBoard's animated picture (evenly spaced)


@TASKS.register
class FitVideo(SignalFit):
    name = "video"
    kind = "fit/video"
    description = "fit a video (MP4 or anything FFmpeg decodes) as a function of frame, row and column"

    @dataclass(frozen=True, kw_only=True)
    class Config(SignalFit.Config):
        input: str = option(help="video file (MP4 or any container/codec FFmpeg decodes)", positional=True)
        size: int = option(64, "longer side of each frame in pixels after resizing", check=positive_int)
        frames: int = option(0, "fit only the first N frames, 0 = every frame", check=non_negative_int)
        render_size: int = option(0, "longer side of the rendered frames in fit.mp4 and fit_frames.png; any "
                                     "resolution works, 0 = --size", check=non_negative_int, resumable=True)
        batch_points: int = override(SignalFit.Config, "batch_points", 65536)
        engine: EngineConfig = EngineConfig(steps=1000)

    def load_signal(self) -> Tensor:
        count, height, width = video_size(self.config.input)
        known = [n for n in (count, self.config.frames) if n]  # the header's frame count and --frames, where given
        self.fitted_shape((min(known, default=1), *fit_size(height, width, self.config.size)), 3)
        self.frames, self.fps = load_video(self.config.input, self.config.frames, self.config.size)
        return from_unit(self.frames).permute(0, 2, 3, 1)

    def describe_signal(self, shape: tuple[int, ...]) -> str:
        return (f"--size {self.config.size} and --frames {self.config.frames} ({shape[0]} frames of {shape[1]}x"
                f"{shape[2]} pixels)")

    def output_needs(self, shape: tuple[int, ...], channels: int) -> dict[str, float]:
        size = self.config.render_size or self.config.size
        height, width = fit_size(*shape[1:], size)
        return {f"--render-size {size} (fit.mp4, {shape[0]} frames of {height}x{width} pixels)":
                shape[0] * height * width * channels * FLOAT32 * RENDER_COPIES}

    def fit_frames(self, frame_shape: tuple[int, int] | None = None) -> Tensor:
        """The fit as frames (T, 3, H, W) in [0, 1], at the signal's frame size or ``frame_shape``."""
        shape = (self.shape[0], *frame_shape) if frame_shape else None
        return to_unit(self.render(shape)).permute(0, 3, 1, 2).cpu()

    def frame_strip(self, frames: Tensor) -> Tensor:
        """Up to STRIP_FRAMES evenly spaced frames of (T, 3, H, W) side by side: (3, H, W')."""
        index = torch.linspace(0, len(frames) - 1, min(STRIP_FRAMES, len(frames))).round().long().unique()
        return side_by_side(list(frames[index]))

    def summaries(self, writer, step: int) -> None:
        """Evenly spaced frames of the fit over the ground truth's, and both playing side by side (an animated
        picture in the Images dashboard: ``video_fit_beside_ground_truth``, ``hypersiren.summaries.add_frames``)."""
        from hypersiren.summaries import add_frames

        fit = self.fit_frames()
        strips = [self.frame_strip(fit), self.frame_strip(self.frames)]
        writer.add_image("frames_fit_over_ground_truth", stack_rows(strips), step)
        stride = math.ceil(len(fit) / VIDEO_FRAMES)  # a long video is shown at every stride-th frame, same pace
        pair = [side_by_side([a, b]) for a, b in zip(fit[::stride], self.frames[::stride].float().cpu())]
        add_frames(writer, "video_fit_beside_ground_truth", torch.stack(pair), step, self.fps / stride)

    def write_outputs(self, out_dir: Path) -> list[Path]:
        size = self.config.render_size or self.config.size
        fit = self.fit_frames(fit_size(*self.shape[1:], size))
        paths = [out_dir / "fit.mp4", out_dir / "fit_frames.png", out_dir / "ground_truth_frames.png"]
        save_video(fit, paths[0], self.fps)
        save_image(self.frame_strip(fit), paths[1])
        save_image(self.frame_strip(self.frames), paths[2])
        return paths
