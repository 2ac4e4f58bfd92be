"""``fit audio``: represent one audio clip (WAV) as a function of time with a coordinate network.

Time maps to [-1, 1] (first to last sample); the network fits ``samples / peak`` so its values span [-1, 1];
outputs are scaled back by ``peak``. The paper's w0 = 3000 for the first layer lets a SIREN resolve the
clip's high frequencies on that short interval.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from hypersiren.config import Check, non_negative_int, option, override
from hypersiren.data.audio import load_audio, peak, resampled_length, save_audio
from hypersiren.data.image import save_image
from hypersiren.engine import EngineConfig
from hypersiren.errors import InputError
from hypersiren.registry import TASKS
from hypersiren.limits import FLOAT32
from hypersiren.tasks.signal_fit import RENDER_COPIES, SignalFit

WAV_RATE = Check(int, lambda v: 0 <= v < 2**32, "a rate in Hz below 2^32 (WAV stores it in 32 bits), 0 = the clip's")


def waveform_picture(tracks: dict[str, Tensor], rate: int) -> Tensor:
    """Plot named waveforms (N,) above each other against time in seconds: (3, H, W) in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(len(tracks), 1, figsize=(8, 1.6 * len(tracks)), sharex=True, sharey=True, squeeze=False)
    for ax, (name, samples) in zip(axes[:, 0], tracks.items()):
        values = samples.detach().float().cpu().numpy()
        ax.plot(np.arange(len(values)) / rate, values, linewidth=0.4)
        ax.set_ylabel(name)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    plt.close(fig)
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float() / 255.0


@TASKS.register
class FitAudio(SignalFit):
    name = "audio"
    kind = "fit/audio"
    description = "fit an audio clip (WAV: integer PCM or float, stereo averaged to mono) as a function of time"

    @dataclass(frozen=True, kw_only=True)
    class Config(SignalFit.Config):
        input: str = option(help="WAV file (8/16/24/32-bit PCM or 32/64-bit float, mono or stereo)", positional=True)
        size: int = option(0, "keep only the first S samples of the clip, 0 = the whole clip", check=non_negative_int)
        render_rate: int = option(0, "sample rate in Hz of the rendered fit.wav; the fit is a continuous function of "
                                     "time and is resampled, 0 = the clip's rate", check=WAV_RATE, resumable=True)
        first_omega: float = override(SignalFit.Config, "first_omega", 3000.0)  # the paper's audio setting
        engine: EngineConfig = EngineConfig(steps=1000)

        def __post_init__(self):
            super().__post_init__()
            if self.size == 1:
                raise InputError("--size 1 keeps a single sample; expected 0 (the whole clip) or at least 2")

    def load_signal(self) -> Tensor:
        samples, self.rate = load_audio(self.config.input)
        if self.config.size:
            samples = samples[: self.config.size]
        self.samples = samples
        self.peak = peak(samples)
        return (samples / self.peak)[:, None]

    def describe_signal(self, shape: tuple[int, ...]) -> str:
        return f"the clip ({shape[0]:,} samples; --size {self.config.size} keeps the first S, 0 = all)"

    def output_needs(self, shape: tuple[int, ...], channels: int) -> dict[str, float]:
        length = self.render_length(shape[0])
        return {f"--render-rate {self.render_rate} (fit.wav, {length:,} samples)":
                length * channels * FLOAT32 * RENDER_COPIES}

    @property
    def render_rate(self) -> int:
        """Sample rate of fit.wav in Hz: ``--render-rate``, else the clip's."""
        return self.config.render_rate or self.rate

    def render_length(self, length: int) -> int:
        """Samples of fit.wav: the clip's ``length`` samples resampled to ``render_rate``."""
        return resampled_length(length, self.rate, self.render_rate) if self.render_rate != self.rate else length

    def fit_samples(self, length: int | None = None) -> Tensor:
        """The fit as samples (length,) in the clip's units (default length: the clip's)."""
        return self.render((length,) if length else None)[:, 0] * self.peak

    def waveforms(self, fit: Tensor) -> Tensor:
        """Ground truth, fit and error plotted against time: (3, H, W)."""
        return waveform_picture({"ground truth": self.samples, "fit": fit, "error": fit - self.samples}, self.rate)

    def summaries(self, writer, step: int) -> None:
        fit = self.fit_samples().cpu()
        scale = max(self.peak, 1.0)  # TensorBoard clips audio to [-1, 1]: a float clip peaking above 1 is scaled down
        writer.add_audio("fit", (fit / scale).clamp(-1, 1)[None], step, sample_rate=self.rate)
        writer.add_audio("ground_truth", (self.samples / scale)[None], step, sample_rate=self.rate)
        writer.add_image("waveforms", self.waveforms(fit), step)

    def write_outputs(self, out_dir: Path) -> list[Path]:
        paths = [out_dir / "fit.wav", out_dir / "ground_truth.wav", out_dir / "waveforms.png"]
        save_audio(self.fit_samples(self.render_length(len(self.samples))), self.render_rate, paths[0])
        save_audio(self.samples, self.rate, paths[1])
        save_image(self.waveforms(self.fit_samples().cpu()), paths[2])
        return paths
