"""Audio and video I/O: PCM scaling, mono mix-down, decoding, resizing, and clear errors on bad files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from hypersiren.data.audio import load_audio, pcm_to_float, peak, resampled_length, save_audio
from hypersiren.data.video import load_video, save_video
from hypersiren.errors import InputError
from tests.conftest import moving_square, tone


@pytest.mark.parametrize("dtype,full_scale", [(np.int16, 2**15), (np.int32, 2**31)])
def test_integer_pcm_is_divided_by_full_scale(dtype, full_scale):
    data = np.array([-full_scale, 0, full_scale // 2, full_scale - 1], dtype=dtype)
    np.testing.assert_allclose(pcm_to_float(data), [-1.0, 0.0, 0.5, (full_scale - 1) / full_scale], rtol=1e-6)


def test_unsigned_8_bit_pcm_is_centred():
    np.testing.assert_allclose(pcm_to_float(np.array([0, 128, 255], np.uint8)), [-1.0, 0.0, 127 / 128])


def test_float_wav_round_trip_and_rate(tmp_path, float_wav):
    samples, rate = load_audio(float_wav)
    assert rate == 8000 and samples.dtype == torch.float32
    np.testing.assert_array_equal(samples.numpy(), tone())
    out = tmp_path / "out.wav"
    save_audio(samples, 22050, out)
    rate2, data = wavfile.read(out)
    assert rate2 == 22050 and data.dtype == np.float32
    np.testing.assert_array_equal(data, tone())


def test_int16_wav_matches_float_version(float_wav, int16_wav):
    a, _ = load_audio(float_wav)
    b, _ = load_audio(int16_wav)
    assert torch.allclose(a, b, atol=1 / 32767)


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(), -0.5 * tone()
    path = tmp_path / "stereo.wav"
    wavfile.write(path, 8000, np.stack([left, right], 1))
    samples, _ = load_audio(path)
    np.testing.assert_allclose(samples.numpy(), (left + right) / 2, atol=1e-7)


def test_peak_and_resampled_length():
    assert peak(torch.tensor([0.1, -0.4, 0.2])) == pytest.approx(0.4)
    assert peak(torch.zeros(5)) == 1.0
    assert resampled_length(101, 100, 200) == 201  # same time span, twice the samples
    assert resampled_length(101, 100, 50) == 51


@pytest.mark.parametrize("content,message", [(b"", "cannot read audio"), (b"RIFF\x00\x00", "cannot read audio"),
                                             (b"hello world, not audio", "cannot read audio")])
def test_bad_wav_files(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_audio(path)


def test_truncated_wav_is_rejected(tmp_path, float_wav):
    data = float_wav.read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        load_audio(path)


def test_wav_problems_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(InputError, match="directory"):
        load_audio(tmp_path)
    nan = tmp_path / "nan.wav"
    wavfile.write(nan, 8000, np.array([0.0, np.nan, 0.1], np.float32))
    with pytest.raises(InputError, match="NaN"):
        load_audio(nan)
    short = tmp_path / "short.wav"
    wavfile.write(short, 8000, np.array([0.5], np.float32))
    with pytest.raises(InputError, match="at least 2"):
        load_audio(short)


def test_video_decodes_resizes_and_limits_frames(tiny_mp4):
    frames, fps = load_video(tiny_mp4)
    assert frames.shape == (4, 3, 16, 24) and fps == pytest.approx(10)
    assert 0 <= frames.min() and frames.max() <= 1
    expected = torch.from_numpy(moving_square()).permute(0, 3, 1, 2).float() / 255
    assert (frames - expected).abs().mean() < 0.05  # lossy H.264 and yuv420p chroma subsampling
    small, _ = load_video(tiny_mp4, max_frames=2, longer_side=12)
    assert small.shape == (2, 3, 8, 12)


def test_save_video_round_trip_with_odd_size(tmp_path):
    frames = torch.from_numpy(moving_square(3, 15, 21)).permute(0, 3, 1, 2).float() / 255
    path = tmp_path / "out.mp4"
    save_video(frames, path, fps=12)
    decoded, fps = load_video(path)
    assert decoded.shape == (3, 3, 16, 22) and fps == pytest.approx(12)  # padded to even for yuv420p
    assert (decoded[:, :, :15, :21] - frames).abs().mean() < 0.05


def test_bad_video_files(tmp_path, float_wav):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="cannot read video"):
        load_video(junk)
    with pytest.raises(InputError, match="no video stream|cannot read video"):
        load_video(float_wav)  # an audio file has no video stream
    with pytest.raises(InputError, match="not found"):
        load_video(tmp_path / "missing.mp4")


def test_files_that_are_not_regular_files_are_refused_without_opening(tmp_path):
    import os

    from hypersiren.data.image import load_image

    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)  # opening it would block until someone writes
    for load in (load_audio, load_image, load_video):
        with pytest.raises(InputError, match="got a FIFO"):
            load(fifo)
        with pytest.raises(InputError, match="got a directory"):
            load(tmp_path)
