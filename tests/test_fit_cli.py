"""``hypersiren fit image|audio|video`` and ``hypersiren zoo`` end to end on tiny inputs, and bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from hypersiren.checkpoint import load_checkpoint
from hypersiren.nn import MODEL_NAMES
from tests.conftest import TINY_NET

FAST = ["--steps", "3", "--summary-every", "0", "--device", "cpu", *TINY_NET]


def tensorboard_tags(run) -> dict[str, list[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"images": 0, "audio": 0, "scalars": 0})
    events.Reload()
    return events.Tags()


def check_run_dir(run, kind: str) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"psnr", "steps", "sec_per_step", "params"} <= set(metrics)
    assert metrics["steps"] == 3 and metrics["params"] > 0 and np.isfinite(metrics["psnr"])
    config = json.loads((run / "config.json").read_text())
    assert config["engine"]["steps"] == 3 and config["hidden_features"] == 16
    state, meta = load_checkpoint(run / "checkpoint.safetensors", kind=kind)
    assert state["step"] == 3 and meta["model"]["hidden_features"] == 16
    return metrics


def test_fit_image_camera(cli, tmp_path):
    run = tmp_path / "run"
    code, out, err = cli("fit", "image", "camera", "--size", "32", *FAST, "--summary-every", "2", "--out", run)
    assert code == 0, err
    assert "psnr" in out and str(run) in out
    check_run_dir(run, "fit/image")
    for name in ("fit.png", "ground_truth.png", "fit_gradient.png", "fit_laplacian.png"):
        assert Image.open(run / name).size == (32, 32)
    assert Image.open(run / "ground_truth.png").mode == "L"  # camera is grayscale
    tags = tensorboard_tags(run)
    assert {"train/loss", "train/psnr_dB", "eval/psnr_dB", "train/sec_per_step", "model/params"} <= set(tags["scalars"])
    assert {"fit", "ground_truth", "fit_gradient_magnitude", "fit_laplacian"} <= set(tags["images"])


def test_fit_image_file_rgb_with_render_size(cli, tmp_path):
    source = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)).save(source)
    run = tmp_path / "run"
    code, _, err = cli("fit", "image", source, "--size", "15", "--render-size", "45", *FAST, "--out", run)
    assert code == 0, err
    assert Image.open(run / "fit.png").size == (45, 30)  # rendered 3x the fit resolution, aspect kept
    assert Image.open(run / "fit.png").mode == "RGB"
    assert Image.open(run / "ground_truth.png").size == (15, 10)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_fit_image_every_model(cli, tmp_path, model):
    code, _, err = cli("fit", "image", "astronaut", "--size", "12", "--model", model, *FAST, "--out", tmp_path / "r")
    assert code == 0, err
    _, meta = load_checkpoint(tmp_path / "r" / "checkpoint.safetensors")
    assert meta["model"]["name"] == model


@pytest.mark.parametrize("wav", ["float_wav", "int16_wav"])
def test_fit_audio(cli, tmp_path, wav, request):
    path = request.getfixturevalue(wav)
    run = tmp_path / "run"
    code, _, err = cli("fit", "audio", path, *FAST, "--out", run)
    assert code == 0, err
    check_run_dir(run, "fit/audio")
    rate, fit = wavfile.read(run / "fit.wav")
    assert rate == 8000 and fit.shape == (400,) and fit.dtype == np.float32
    rate, truth = wavfile.read(run / "ground_truth.wav")
    assert rate == 8000 and np.allclose(truth, wavfile.read(path)[1] / (32768 if wav == "int16_wav" else 1), atol=1e-4)
    assert (run / "waveforms.png").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["first_omega"] == 3000 and config["batch_points"] == 0  # the paper's audio defaults
    tags = tensorboard_tags(run)
    assert {"fit", "ground_truth"} <= set(tags["audio"]) and "waveforms" in tags["images"]


def test_fit_audio_crop_and_render_rate(cli, tmp_path, float_wav):
    run = tmp_path / "run"
    code, _, err = cli("fit", "audio", float_wav, "--size", "100", "--render-rate", "16000", *FAST, "--out", run)
    assert code == 0, err
    rate, fit = wavfile.read(run / "fit.wav")
    assert rate == 16000 and fit.shape == (199,)  # 99 intervals at 8 kHz = 198 at 16 kHz
    assert wavfile.read(run / "ground_truth.wav")[1].shape == (100,)


def test_fit_video(cli, tmp_path, tiny_mp4):
    run = tmp_path / "run"
    code, _, err = cli("fit", "video", tiny_mp4, "--size", "12", "--frames", "3", "--batch-points", "64",
                       "--render-size", "24", *FAST, "--summary-every", "2", "--out", run)
    assert code == 0, err
    check_run_dir(run, "fit/video")
    import av

    with av.open(str(run / "fit.mp4")) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert len(frames) == 3 and (frames[0].width, frames[0].height) == (24, 16)
    strip = Image.open(run / "fit_frames.png")
    assert strip.size[1] == 16 and strip.size[0] == 3 * 24 + 2 * 2  # three frames with 2-pixel gaps
    assert Image.open(run / "ground_truth_frames.png").size[1] == 8
    assert "frames_fit_over_ground_truth" in tensorboard_tags(run)["images"]


def test_zoo_lists_the_signal_tasks(cli):
    code, out, _ = cli("zoo")
    assert code == 0
    names = {line.split()[0] for line in out.splitlines()}
    assert {"image", "audio", "video"} <= names


def test_seeded_cli_runs_repeat_and_resume_matches(cli, tmp_path):
    args = ["fit", "image", "camera", "--size", "16", "--batch-points", "50", *FAST]
    for name in ("a", "b"):
        assert cli(*args, "--steps", "4", "--out", tmp_path / name)[0] == 0
    assert cli(*args, "--steps", "2", "--out", tmp_path / "c")[0] == 0
    assert cli(*args, "--steps", "4", "--resume", "--out", tmp_path / "c")[0] == 0
    states = [load_checkpoint(tmp_path / n / "checkpoint.safetensors")[0]["model"] for n in "abc"]
    for name, tensor in states[0].items():
        assert torch.equal(tensor, states[1][name]) and torch.equal(tensor, states[2][name])


@pytest.fixture
def junk(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"this is not a signal" * 10)
    return path


BAD_INPUTS = {
    "missing image": (["fit", "image", "{tmp}/nope.png"], "image not found"),
    "unreadable image": (["fit", "image", "{junk}"], "cannot read image"),
    "missing audio": (["fit", "audio", "{tmp}/nope.wav"], "audio file not found"),
    "unreadable audio": (["fit", "audio", "{junk}"], "cannot read audio"),
    "audio size 1": (["fit", "audio", "{wav}", "--size", "1"], "--size 1"),
    "audio input is a directory": (["fit", "audio", "{tmp}"], "got a directory"),
    "missing video": (["fit", "video", "{tmp}/nope.mp4"], "video file not found"),
    "unreadable video": (["fit", "video", "{junk}"], "cannot read video"),
    "negative steps": (["fit", "image", "camera", "--steps", "-5"], "--steps: expected a positive integer"),
    "size 0": (["fit", "image", "camera", "--size", "0"], "--size: expected a positive integer"),
    "text size": (["fit", "video", "{junk}", "--size", "big"], "--size: expected a positive integer"),
    "negative frames": (["fit", "video", "{junk}", "--frames", "-1"], "--frames: expected an integer >= 0"),
    "zero lr": (["fit", "image", "camera", "--lr", "0"], "--lr: expected a positive number"),
    "unknown model": (["fit", "image", "camera", "--model", "gelu"], "invalid choice: 'gelu'"),
    "unknown task": (["fit", "sound", "x"], "invalid choice: 'sound'"),
    "unknown device": (["fit", "image", "camera", "--device", "tpu9"], "--device: expected auto, cpu, cuda"),
    "output is a file": (["fit", "image", "camera", "--out", "{junk}"], "is a file"),
    "output under a file": (["fit", "image", "camera", "--out", "{junk}/run"], "is a file"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(cli, tmp_path, junk, float_wav, case):
    argv, message = BAD_INPUTS[case]
    argv = [a.format(tmp=tmp_path, junk=junk, wav=float_wav) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "new" / "run")]
    before = sorted(tmp_path.rglob("*"))
    code, out, err = cli(*argv, "--steps" if "--steps" not in argv else "--seed", "1", "--no-progress")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hypersiren") and "error:" in lines[0], err
    assert message in lines[0]
    assert "Traceback" not in err and out == ""
    assert sorted(tmp_path.rglob("*")) == before  # no run directory, no partial file


def test_bad_input_through_a_real_process(tmp_path):
    missing = tmp_path / "missing.wav"
    result = subprocess.run([sys.executable, "-m", "hypersiren.cli", "fit", "audio", str(missing)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"hypersiren: error: audio file not found: {missing} (expected a WAV file)"]
    assert not list(tmp_path.iterdir())  # the default run directory runs/fit-audio was not created
