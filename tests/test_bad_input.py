"""Bad input everywhere: every CLI command gives one line ``hypersiren...: error: ...`` (after one-line warnings,
if any) and exit status 2, every
public API entry point raises its documented exception (InputError / CheckpointError), and nothing is left behind.

Inputs: missing, empty, truncated and corrupt images, audio, video and meshes; NaN/Inf values; wrong shapes and
channel counts; zero or impossible contexts; masks of another size; unknown options and out-of-range numbers;
output paths that are files, directories or of an unknown picture type.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from hypersiren.errors import CheckpointError, InputError

TINY = ["--hidden-features", "8", "--hidden-layers", "1", "--steps", "1", "--summary-every", "0", "--no-progress"]


def _write_inputs(d: Path) -> None:
    """Every bad (and a few good) input file, a few hundred bytes each."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / "good.png")
    png = (d / "good.png").read_bytes()
    (d / "empty.png").write_bytes(b"")
    (d / "truncated.png").write_bytes(png[: len(png) // 2])
    (d / "corrupt.png").write_bytes(png[:40] + bytes(200))
    for name, value in (("nan", np.nan), ("inf", np.inf)):
        array = np.ones((8, 8), np.float32)
        array[2, 2] = value
        Image.fromarray(array, mode="F").save(d / f"{name}.tif")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(d / "black16.png")
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(d / "white10.png")
    tone = np.sin(np.arange(100) / 5).astype(np.float32)
    bad = tone.copy()
    bad[5] = np.nan
    wavfile.write(d / "nan.wav", 8000, bad)
    wavfile.write(d / "good.wav", 8000, tone)
    wavfile.write(d / "one.wav", 8000, tone[:1])
    (d / "truncated.wav").write_bytes((d / "good.wav").read_bytes()[:60])
    (d / "empty.wav").write_bytes(b"")
    (d / "empty.mp4").write_bytes(b"")
    (d / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 300)
    (d / "empty.xyz").write_bytes(b"")
    (d / "nan.xyz").write_text("0 0 0 0 0 1\nnan 1 0 0 0 1\n1 1 1 0 1 0\n")
    (d / "no_normals.xyz").write_text("0 0 0\n1 1 1\n")
    (d / "text.xyz").write_text("a b c d e f\n")
    (d / "one_point.xyz").write_text("0 0 0 0 0 1\n0 0 0 0 0 1\n")
    (d / "truncated.ply").write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                                     "property float z\nend_header\n0 0 0\n")
    (d / "truncated_binary.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        b"element face 1\nproperty list uchar int vertex_indices\nend_header\n" + bytes(20))
    (d / "bad_index.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 7\n")
    (d / "mesh.stl").write_text("solid\n")
    (d / "mesh.dae").write_text("<COLLADA/>\n")
    os.mkfifo(d / "fifo.ply")
    (d / "a_directory").mkdir()
    (d / "a_file").write_text("x")
    (d / "no_faces").mkdir()
    (d / "junk_faces").mkdir()
    (d / "junk_faces" / "a.png").write_bytes(b"junk")
    (d / "junk_faces" / "b.jpg").write_bytes(b"")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad-inputs")
    _write_inputs(d)
    return d


# argv (with {d} = the inputs folder, {ckpt} = a tiny prior checkpoint) -> part of the one-line message
CLI_CASES = {
    # fit image / poisson / composite: images
    "image missing": (["fit", "image", "{d}/nope.png"], "image not found"),
    "image empty": (["fit", "image", "{d}/empty.png"], "cannot read image"),
    "image truncated": (["fit", "image", "{d}/truncated.png"], "truncated"),
    "image corrupt": (["fit", "image", "{d}/corrupt.png"], "cannot read image"),
    "image NaN": (["fit", "image", "{d}/nan.tif"], "NaN or Inf"),
    "image Inf": (["fit", "image", "{d}/inf.tif"], "NaN or Inf"),
    "image is a directory": (["fit", "image", "{d}/a_directory"], "got a directory"),
    "poisson too small": (["fit", "poisson-grad", "camera", "--size", "2"], "at least 3x3"),
    "poisson NaN": (["fit", "poisson-lapl", "{d}/nan.tif"], "NaN or Inf"),
    "composite second image empty": (["fit", "composite", "camera", "{d}/empty.png"], "cannot read image"),
    "composite mask missing": (["fit", "composite", "camera", "astronaut", "--mask", "{d}/nope.png"], "not found"),
    "composite mask corrupt": (["fit", "composite", "camera", "astronaut", "--mask", "{d}/corrupt.png"], "cannot read"),
    "composite weight > 1": (["fit", "composite", "camera", "astronaut", "--weight", "2"], "--weight"),
    # audio and video
    "audio NaN": (["fit", "audio", "{d}/nan.wav"], "NaN or Inf"),
    "audio empty file": (["fit", "audio", "{d}/empty.wav"], "cannot read audio"),
    "audio one sample": (["fit", "audio", "{d}/one.wav"], "expected at least 2"),
    "audio truncated": (["fit", "audio", "{d}/truncated.wav"], "truncated"),
    "audio is an image": (["fit", "audio", "{d}/good.png"], "cannot read audio"),
    "video empty": (["fit", "video", "{d}/empty.mp4"], "cannot read video"),
    "video corrupt": (["fit", "video", "{d}/junk.mp4"], "cannot read video"),
    # point clouds and meshes
    "sdf missing": (["fit", "sdf", "{d}/nope.xyz"], "not found"),
    "sdf empty": (["fit", "sdf", "{d}/empty.xyz"], "is empty"),
    "sdf NaN point": (["fit", "sdf", "{d}/nan.xyz"], "NaN or infinite"),
    "sdf no normals": (["fit", "sdf", "{d}/no_normals.xyz"], "without normals"),
    "sdf text": (["fit", "sdf", "{d}/text.xyz"], "cannot parse"),
    "sdf coincident points": (["fit", "sdf", "{d}/one_point.xyz"], "coincide"),
    "sdf truncated ascii ply": (["fit", "sdf", "{d}/truncated.ply"], "PLY ends after"),
    "sdf truncated binary ply": (["fit", "sdf", "{d}/truncated_binary.ply"], "truncated or corrupt"),
    "sdf bad face index": (["fit", "sdf", "{d}/bad_index.obj"], "indices outside"),
    "sdf STL without triangles": (["fit", "sdf", "{d}/mesh.stl"], "holds no mesh or points"),
    "sdf FIFO": (["fit", "sdf", "{d}/fifo.ply"], "got a FIFO"),
    "sdf unknown format": (["fit", "sdf", "{d}/mesh.dae"], "expected a .xyz"),
    # physics entries: out-of-range numbers
    "helmholtz pml too wide": (["fit", "helmholtz", "--pml-width", "0.9"], "--pml-width"),
    "helmholtz velocity": (["fit", "helmholtz", "--velocity", "x"], "invalid choice"),
    "wave frames": (["fit", "wave", "--frames", "1"], "--frames must be at least 2"),
    "wave curriculum": (["fit", "wave", "--curriculum", "2"], "--curriculum"),
    # engine options and command line
    "unknown option": (["fit", "image", "camera", "--bogus"], "unrecognized arguments: --bogus"),
    "unknown task": (["fit", "sound"], "invalid choice: 'sound'"),
    "unknown command": (["paint"], "invalid choice: 'paint'"),
    "lr NaN": (["fit", "image", "camera", "--lr", "nan"], "--lr: expected a positive number"),
    "lr Inf": (["fit", "image", "camera", "--lr", "inf"], "--lr: expected a positive number"),
    "omega Inf": (["fit", "image", "camera", "--first-omega", "inf"], "--first-omega"),
    "steps text": (["fit", "image", "camera", "--steps", "many"], "--steps: expected a positive integer"),
    "clip NaN": (["fit", "image", "camera", "--clip-grad", "nan"], "--clip-grad"),
    "resume and overwrite": (["fit", "image", "camera", "--resume", "--overwrite"], "not allowed with"),
    "on-nan choice": (["fit", "image", "camera", "--on-nan", "ignore"], "invalid choice"),
    "device": (["fit", "image", "camera", "--device", "tpu9"], "--device: expected auto, cpu, cuda"),
    "output is a file": (["fit", "image", "camera", "--out", "{d}/a_file"], "is a file"),
    "output under a file": (["fit", "image", "camera", "--out", "{d}/a_file/run"], "is a file"),
    # face priors
    "train prior no images": (["train", "prior", "--data", "{d}/no_faces"], "no images found"),
    "train prior unreadable images": (["train", "prior", "--data", "{d}/junk_faces"], "could be read"),
    "train prior data is a file": (["train", "prior", "--data", "{d}/a_file"], "not a directory"),
    "train prior resolution 1": (["train", "prior", "--resolution", "1"], "resolution must be"),
    "train prior val fraction": (["train", "prior", "--val-fraction", "1.5"], "val_fraction"),
    "complete image empty": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/empty.png", "--half",
                              "--out", "{d}/o.png"], "cannot read image"),
    "complete image NaN": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/nan.tif", "--half",
                            "--out", "{d}/o.png"], "NaN or Inf"),
    "complete zero context": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/good.png", "--mask",
                               "{d}/black16.png", "--out", "{d}/o.png"], "no known pixel"),
    "complete mask of another size": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/good.png", "--mask",
                                       "{d}/white10.png", "--out", "{d}/o.png"], "mask has shape (10, 10)"),
    "complete mask corrupt": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/good.png", "--mask",
                               "{d}/corrupt.png", "--out", "{d}/o.png"], "cannot read image"),
    "complete zero pixels": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/good.png", "--pixels", "0",
                              "--out", "{d}/o.png"], "--pixels: expected a positive integer"),
    "complete too many pixels": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/good.png", "--pixels",
                                  "257", "--out", "{d}/o.png"], "impossible"),
    "complete two contexts": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/good.png", "--half",
                               "--pixels", "3", "--out", "{d}/o.png"], "not allowed with"),
    "complete output is a directory": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/good.png", "--half",
                                        "--out", "{d}/a_directory"], "is a directory"),
    "complete output under a file": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/good.png", "--half",
                                      "--out", "{d}/a_file/o.png"], "is a file"),
    "complete unknown picture type": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/good.png", "--half",
                                       "--out", "{d}/o.xyz"], "unknown image suffix"),
    "complete checkpoint is a directory": (["complete", "--checkpoint", "{d}/a_directory", "--image", "{d}/good.png",
                                            "--half", "--out", "{d}/o.png"], "checkpoint not found"),
    "eval unknown setting": (["eval", "prior", "--checkpoint", "{ckpt}", "--settings", "7x", "--max-images", "2",
                              "--no-progress", "--out", "{d}/eval"], "unknown context setting"),
    "eval impossible setting": (["eval", "prior", "--checkpoint", "{ckpt}", "--settings", "100000", "--max-images",
                                 "2", "--no-progress", "--out", "{d}/eval"], "impossible"),
    "eval no images": (["eval", "prior", "--checkpoint", "{ckpt}", "--data", "{d}/no_faces", "--no-progress",
                        "--out", "{d}/eval"], "no images found"),
    "eval output is a file": (["eval", "prior", "--checkpoint", "{ckpt}", "--out", "{d}/a_file"], "is a file"),
    "sample temperature Inf": (["sample", "--checkpoint", "{ckpt}", "--temperature", "inf", "--out", "{d}/o.png"],
                               "--temperature"),
    "sample unknown picture type": (["sample", "--checkpoint", "{ckpt}", "--out", "{d}/o.unknown"],
                                    "unknown image suffix"),
    "sample refit on no images": (["sample", "--checkpoint", "{ckpt}", "--data", "{d}/no_faces", "--no-progress",
                                   "--out", "{d}/o.png"], "no images found"),
    "interpolate image NaN": (["interpolate", "{d}/nan.tif", "camera", "--checkpoint", "{ckpt}", "--out",
                               "{d}/o.png"], "NaN or Inf"),
    "interpolate one step": (["interpolate", "camera", "astronaut", "--checkpoint", "{ckpt}", "--steps", "1",
                              "--out", "{d}/o.png"], "at least 2 steps"),
    "demo unknown setting": (["demo", "--settings", "bogus", "--steps", "1", "--no-progress", "--out", "{d}/demo"],
                             "unknown context setting"),
    "demo no images": (["demo", "--data", "{d}/no_faces", "--no-progress", "--out", "{d}/demo"], "no images found"),
    "demo output is a file": (["demo", "--out", "{d}/a_file"], "is a file"),
}


def _tree(d: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(d)), p.stat().st_size if p.is_file() else -1) for p in d.rglob("*"))


@pytest.mark.parametrize("case", CLI_CASES, ids=list(CLI_CASES))
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(cli, inputs, tiny_prior_checkpoint, tmp_path,
                                                              monkeypatch, case):
    argv, message = CLI_CASES[case]
    argv = [a.format(d=inputs, ckpt=tiny_prior_checkpoint) for a in argv]
    if argv[0] in ("fit", "train"):
        argv += TINY + ([] if "--out" in argv else ["--out", str(inputs / "run")])
    if argv[0] == "train":
        argv += ["--resolution", "8"] * ("--resolution" not in argv) + ["--batch-size", "2", "--eval-images", "2"]
    monkeypatch.chdir(tmp_path)  # a default output (runs/...) would land here
    before = _tree(inputs)
    code, out, err = cli(*argv)
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert all(line.startswith("hypersiren: warning: ") for line in lines[:-1]), err  # e.g. skipped files
    assert lines[-1].startswith("hypersiren") and "error: " in lines[-1], err
    assert message in lines[-1], lines[-1]
    assert out == ""
    assert _tree(inputs) == before and not list(tmp_path.iterdir())  # no output, no partial file


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_output_directory_not_writable(cli, inputs, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = cli("fit", "image", "camera", *TINY, "--out", locked / "run")
        assert code == 2 and "not writable" in err and len(err.strip().splitlines()) == 1
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o700)


def test_diverging_run_names_the_step_and_keeps_the_last_good_checkpoint(cli, tmp_path):
    """A learning rate that sends the weights to Inf after step 4 (finite in float64, not in float32): the run
    stops with one line naming the step, keeps the last finite checkpoint and writes no metrics (stop or skip)."""
    from hypersiren.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    argv = ["fit", "image", "camera", "--size", "8", "--hidden-features", "8", "--hidden-layers", "1",
            "--summary-every", "0", "--no-progress", "--steps", "4", "--checkpoint-every", "1", "--out", run]
    assert cli(*argv)[0] == 0
    good, meta = load_checkpoint(run / "checkpoint.safetensors")
    good["optimizer"]["param_groups"][0]["lr"] = 1e300  # resuming restores the optimiser, and with it this lr
    save_checkpoint(run / "checkpoint.safetensors", good, meta)
    (run / "metrics.json").unlink()
    for on_nan in ("stop", "skip"):
        code, out, err = cli(*argv, "--steps", "8", "--resume", "--on-nan", on_nan)
        assert code == 2 and len(err.strip().splitlines()) == 1 and out == "", err
        assert "NaN or Inf by step 5" in err, err  # the first step after the resume point
        kept = load_checkpoint(run / "checkpoint.safetensors")[0]
        assert kept["step"] == 4 and all(torch.equal(kept["model"][k], v) for k, v in good["model"].items())
        assert not (run / "metrics.json").exists()


def _api_cases(d: Path, checkpoint: Path):
    from hypersiren.checkpoint import load_checkpoint
    from hypersiren.data.audio import load_audio
    from hypersiren.data.context import mask_from_spec
    from hypersiren.data.faces import load_faces
    from hypersiren.data.image import load_image, save_image
    from hypersiren.data.pointcloud import read_point_cloud
    from hypersiren.data.video import load_video
    from hypersiren.engine import EngineConfig, check_run_dir
    from hypersiren.io import check_output_dir, check_output_file
    from hypersiren.mesh import sdf_volume
    from hypersiren.prior import HyperSiren

    prior = HyperSiren.load(checkpoint)
    face = np.zeros((16, 16, 3), np.uint8)
    nan_face = np.full((16, 16, 3), np.nan, np.float32)
    return {
        "load_image missing": (lambda: load_image(d / "nope.png"), InputError),
        "load_image corrupt": (lambda: load_image(d / "corrupt.png"), InputError),
        "load_image Inf": (lambda: load_image(d / "inf.tif"), InputError),
        "load_audio NaN": (lambda: load_audio(d / "nan.wav"), InputError),
        "load_audio truncated": (lambda: load_audio(d / "truncated.wav"), InputError),
        "load_video corrupt": (lambda: load_video(d / "junk.mp4"), InputError),
        "read_point_cloud NaN": (lambda: read_point_cloud(d / "nan.xyz"), InputError),
        "read_point_cloud truncated ply": (lambda: read_point_cloud(d / "truncated_binary.ply"), InputError),
        "load_faces no images": (lambda: load_faces(d / "no_faces", progress=False), InputError),
        "load_faces unreadable": (lambda: load_faces(d / "junk_faces", resolution=8, cache_dir=d / "cache",
                                                     progress=False), InputError),
        "mask all unknown": (lambda: mask_from_spec(np.zeros((8, 8), bool), 1, 8), InputError),
        "mask of another size": (lambda: mask_from_spec(np.ones((4, 4), bool), 1, 8), InputError),
        "mask not 0/1": (lambda: mask_from_spec(np.full((8, 8), 0.5), 1, 8), InputError),
        "context unknown word": (lambda: mask_from_spec("most", 1, 8), InputError),
        "complete NaN image": (lambda: prior.complete(nan_face, mask="half"), InputError),
        "complete 5 channels": (lambda: prior.complete(np.zeros((16, 16, 5), np.uint8), mask="half"), InputError),
        "complete no context": (lambda: prior.complete(face, mask=np.zeros((16, 16), bool)), InputError),
        "complete mask of another size": (lambda: prior.complete(face, mask=np.ones((5, 5), bool)), InputError),
        "complete two contexts": (lambda: prior.complete(face, mask="half", num_pixels=3), InputError),
        "complete all pixels + 1": (lambda: prior.complete(face, num_pixels=16 * 16 + 1), InputError),
        "save_image unknown type": (lambda: save_image(torch.zeros(3, 4, 4), d / "x.unknown"), InputError),
        "check_output_dir file": (lambda: check_output_dir(d / "a_file"), InputError),
        "check_output_file directory": (lambda: check_output_file(d / "a_directory"), InputError),
        "check_run_dir resume+overwrite": (lambda: check_run_dir(d, EngineConfig(resume=True, overwrite=True)), InputError),
        "sdf_volume resolution 1": (lambda: sdf_volume(lambda x: x[:, :1], 1), InputError),
        "load_checkpoint of an image": (lambda: load_checkpoint(d / "good.png"), CheckpointError),
        "HyperSiren.load missing": (lambda: HyperSiren.load(d / "nope.safetensors"), CheckpointError),
    }


@pytest.mark.filterwarnings("ignore:skipped 2 unreadable image")
def test_api_bad_input_raises_documented_errors(inputs, tiny_prior_checkpoint):
    before = _tree(inputs)
    for name, (call, error) in _api_cases(inputs, tiny_prior_checkpoint).items():
        with pytest.raises(error) as info:
            call()
        assert "\n" not in str(info.value) and str(info.value), name
    assert _tree(inputs) == before
