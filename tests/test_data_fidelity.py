"""Inputs are read as they are, or refused in one line, never silently changed, and never hang: FIFOs refused,
16-bit pictures scaled by their full range, EXIF orientation applied, float WAV peaks above 1 kept, truncated
videos announced, huge or degenerate point coordinates refused, and ``complete`` answering in the input's dtype."""
from __future__ import annotations

import os
import re
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from hypersiren.data.image import load_image, read_images
from hypersiren.errors import InputError
from tests.conftest import TINY_NET, moving_square

GRAY16 = (np.arange(6 * 8).reshape(6, 8) * 1300 + 500).astype(np.uint16)  # 500 .. 61600 of 65535


@pytest.fixture
def fifo(tmp_path):
    """``fifo(path)`` makes a FIFO there. Should a test still be blocked on one after a minute, a writer opens each
    FIFO (releasing readers blocked in open, e.g. in a worker thread) and the test fails instead of hanging."""
    made = []

    def make(path):
        os.mkfifo(path)
        made.append(path)
        return path

    def timeout(*_):
        for path in made:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        raise TimeoutError("blocked on a FIFO for a minute")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(60)
    yield make
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_a_fifo_given_as_an_image_is_refused_without_blocking(cli, tmp_path, fifo):
    code, _, err = cli("fit", "image", fifo(tmp_path / "face.png"), "--steps", "1", "--out", tmp_path / "run", *TINY_NET)
    assert code == 2 and "got a FIFO" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_a_fifo_in_a_face_folder_is_skipped_without_blocking(tmp_path, fifo):
    from hypersiren.data.faces import load_faces

    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    fifo(folder / "3.png")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable .*3\.png: .*FIFO"):
        faces = load_faces(folder, "all", resolution=8, cache_dir=tmp_path / "cache", progress=False)
    assert faces.shape == (3, 3, 8, 8)


def test_16_bit_png_and_tiff_are_scaled_by_the_full_range_alike(tmp_path):
    Image.fromarray(GRAY16).save(tmp_path / "gray.png")
    Image.fromarray(GRAY16).save(tmp_path / "gray.tif")
    Image.fromarray(GRAY16.astype(">u2")).save(tmp_path / "big_endian.tif")
    expected = torch.from_numpy(GRAY16 / 65535).float()[None]
    for name in ("gray.png", "gray.tif", "big_endian.tif"):
        torch.testing.assert_close(load_image(tmp_path / name), expected, rtol=0, atol=1e-7, msg=name)
        torch.testing.assert_close(load_image(tmp_path / name, mode="RGB"), expected.expand(3, -1, -1), rtol=0,
                                   atol=1e-7, msg=name)  # gray repeated, not clipped by an 8-bit conversion
    with pytest.warns(UserWarning, match="not square"):  # a 16-bit PIL image handed to HyperSiren, centre-cropped
        images, _ = read_images(Image.open(tmp_path / "gray.png"))
    torch.testing.assert_close(images[0], expected[:, :, 1:7].expand(3, -1, -1), rtol=0, atol=1e-7)


def test_float_pictures_outside_zero_one_are_refused(tmp_path):
    Image.fromarray(np.full((4, 4), 3.5, np.float32), mode="F").save(tmp_path / "bright.tif")
    with pytest.raises(InputError, match=r"values in \[3.5, 3.5\]; expected floats in \[0, 1\]"):
        load_image(tmp_path / "bright.tif")


def test_exif_orientation_is_applied_wherever_pictures_are_read(tmp_path):
    from hypersiren.data.faces import load_faces

    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[0, 0] = 255  # top-left corner marked
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "turned.png", exif=exif)
    upright = np.rot90(pixels, k=-1)  # (6, 4, 3), the mark now top-right

    image = load_image(tmp_path / "turned.png")
    assert image.shape == (3, 6, 4)
    np.testing.assert_array_equal((image.permute(1, 2, 0).numpy() * 255).round(), upright)
    with pytest.warns(UserWarning, match="6x4, not square"):  # a PIL image handed to HyperSiren is turned too
        assert read_images(Image.open(tmp_path / "turned.png"))[1].shape == (6, 4)
    folder = tmp_path / "faces"
    folder.mkdir()
    exif[0x0112] = 3  # "rotate 180 degrees"
    Image.fromarray(pixels[:, :4].copy()).save(folder / "face.png", exif=exif)
    face = load_faces(folder, "all", resolution=4, cache_dir=tmp_path / "cache", progress=False)[0]
    assert face[:, -1, -1].tolist() == [1, 1, 1] and face[:, 0, 0].tolist() == [0, 0, 0]


def test_float_wav_peaks_above_one_are_kept_in_the_outputs(cli, tmp_path):
    from scipy.io import wavfile

    from hypersiren.data.audio import load_audio, save_audio

    t = np.arange(300) / 8000
    loud = (2.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    wavfile.write(tmp_path / "loud.wav", 8000, loud)
    samples, _ = load_audio(tmp_path / "loud.wav")
    assert samples.abs().max() == pytest.approx(2.5, rel=1e-6)
    save_audio(samples, 8000, tmp_path / "copy.wav")
    np.testing.assert_array_equal(wavfile.read(tmp_path / "copy.wav")[1], loud)
    assert cli("fit", "audio", tmp_path / "loud.wav", "--steps", "1", "--summary-every", "0", "--out",
               tmp_path / "run", *TINY_NET)[0] == 0
    np.testing.assert_array_equal(wavfile.read(tmp_path / "run" / "ground_truth.wav")[1], loud)


def test_a_truncated_video_says_how_many_frames_were_read(cli, tmp_path):
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:  # index first, so a cut
        stream = container.add_stream("libx264", rate=10)                              # file still opens
        stream.width, stream.height, stream.pix_fmt = 24, 16, "yuv420p"
        for image in moving_square(frames=30):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.8)])
    code, _, err = cli("fit", "video", path, "--size", "8", "--steps", "1", "--summary-every", "0", "--out",
                       tmp_path / "run", *TINY_NET)
    read = re.search(r"hypersiren: warning: video .*: read (\d+) of the 30 frames it declares; it is truncated", err)
    assert code == 0 and read and 0 < int(read[1]) < 30, err


def test_huge_coordinates_are_framed_without_overflow_or_refused(cli, tmp_path):
    from hypersiren.data.pointcloud import Frame

    corners = np.array([[8e307, -8e307, 0], [-8e307, 8e307, 1e307], [0, 0, -8e307]])
    frame = Frame.fitting(corners)  # the span (1.6e308) is finite; halving keeps every step finite
    unit = frame.to_unit(corners)
    assert np.isfinite(unit).all() and np.abs(unit).max() == pytest.approx(0.9)
    near = np.array([[1e308, 1e308, 1e308], [1e308, 1e308, np.nextafter(1e308, 2e308)]])  # one float64 step apart
    with pytest.raises(InputError, match="too little for float64 to keep their shape"):
        Frame.fitting(near)
    for name, points in {"far.xyz": [[1e308, 0, 0], [-1e308, 0, 0], [0, 1, 0]], "near.xyz": near.tolist() * 20}.items():
        np.savetxt(tmp_path / name, np.array(points))
        code, _, err = cli("fit", "sdf", tmp_path / name, "--steps", "1", "--out", tmp_path / "run", *TINY_NET)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "hypersiren: error:" in err, err
        assert not (tmp_path / "run").exists()


def test_complete_answers_in_the_input_dtype(tiny_prior_checkpoint):
    from hypersiren.prior import HyperSiren

    prior = HyperSiren.load(tiny_prior_checkpoint)
    face = np.random.default_rng(0).random((16, 16, 3))
    assert prior.complete(face, mask="half").dtype == np.float64
    assert prior.complete(face.astype(np.float32), mask="half").dtype == np.float32
    assert prior.complete([face, face], mask="half")[0].dtype == np.float64
    assert prior.complete(torch.from_numpy(face).permute(2, 0, 1), mask="half").dtype == torch.float64
