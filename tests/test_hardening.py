"""Hostile input, second pass (issue 13), one table per class: sizes beyond the memory budget, forged checkpoints,
decompression bombs, options outside their types' range, malformed meshes and inputs on which a library used to
warn and go on. Every case must exit with status 2 and one ``hypersiren: error:`` line naming the problem (no
traceback, no library warning), write nothing, and keep the peak memory of the process within PEAK_GROWTH of
its level before the cases.

Fixtures are generated and tiny: a huge picture is a header, a huge model a checkpoint's JSON. All cases run in
one subprocess (``hardening_worker.py``) under a 1 GB memory budget, so peak memory is measured per process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_inputs import write_inputs

import hypersiren

PEAK_GROWTH = 300 << 20  # bytes the peak resident memory may grow by over all cases
BUDGET = "1G"  # HYPERSIREN_MAX_BYTES of the worker: the same decisions on every machine
TINY = ["--hidden-features", "8", "--hidden-layers", "1", "--steps", "1", "--summary-every", "0", "--no-progress"]


def _fit(*args: str) -> list[str]:
    return ["fit", *args, *TINY, "--out", "run"]


def _sample(checkpoint: str, *args: str) -> list[str]:
    return ["sample", "--checkpoint", f"{{d}}/checkpoints/{checkpoint}.safetensors", *args, "--out", "o.png"]


# class -> case -> (argv with {d} = the inputs folder and {ckpt} = a tiny prior checkpoint, part of the message)
CASES = {
    "budget": {
        "render size": (_fit("image", "camera", "--size", "8", "--render-size", "100000"), "--render-size 100000"),
        "size": (_fit("image", "camera", "--size", "100000"), "--size 100000"),
        "full batch of a large size": (["fit", "image", "camera", "--size", "1024", "--steps", "1", "--no-progress",
                                        "--out", "run"], "a training step on 1,048,576 points"),
        "render rate": (_fit("audio", "{d}/tone.wav", "--render-rate", "4000000000"), "--render-rate 4000000000"),
        "video render size": (_fit("video", "{d}/video.mp4", "--render-size", "100000"), "--render-size 100000"),
        "video size": (_fit("video", "{d}/video.mp4", "--size", "100000"), "--size 100000"),
        "mesh resolution": (_fit("sdf", "{d}/ring.xyz", "--mesh-resolution", "5000"), "--mesh-resolution 5000"),
        "eval resolution": (_fit("sdf", "{d}/ring.xyz", "--eval-resolution", "5000"), "--eval-resolution 5000"),
        "mesh picture": (_fit("sdf", "{d}/ring.xyz", "--render-size", "100000"), "--render-size 100000"),
        "sdf batch": (_fit("sdf", "{d}/ring.xyz", "--batch-points", "1000000000000"), "--batch-points"),
        "sdf chunk": (_fit("sdf", "{d}/ring.xyz", "--chunk", "1000000000000"), "--chunk"),
        "helmholtz picture": (_fit("helmholtz", "--render-size", "1000000"), "--render-size 1000000"),
        "wave reference": (_fit("wave", "--reference-size", "100000"), "--reference-size 100000"),
        "network": (["fit", "image", "camera", "--hidden-features", "65536", "--steps", "1", "--out", "run"],
                    "--hidden-features 65536"),
        "composite size": (_fit("composite", "camera", "astronaut", "--size", "100000"), "--size 100000"),
        "inpaint render size": (_fit("inpaint", "camera", "--size", "8", "--render-size", "100000"), "--render-size"),
        "prior resolution": (["train", "prior", "--resolution", "100000", *TINY, "--out", "run"], "--resolution 100000"),
        "prior batch": (["train", "prior", "--batch-size", "1000000000", *TINY, "--out", "run"], "--batch-size"),
        "demo resolution": (["demo", "--resolution", "100000", "--no-progress", "--out", "run"], "--resolution 100000"),
        "sample resolution": (["sample", "--checkpoint", "{ckpt}", "--resolution", "1000000", "--out", "o.png"],
                              "--resolution 1000000"),
        "sample count": (["sample", "--checkpoint", "{ckpt}", "--num", "1000000000", "--out", "o.png"], "--num"),
        "interpolate steps": (["interpolate", "camera", "astronaut", "--checkpoint", "{ckpt}", "--steps", "100000000",
                               "--out", "o.png"], "--steps 100000000"),
        "complete resolution": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/face.png", "--half",
                                 "--resolution", "1000000", "--out", "o.png"], "--resolution 1000000"),
    },
    "checkpoint": {
        "hidden features 10^7": (_sample("hidden_1e7"), "--hidden-features"),
        "hidden features 20000": (_sample("hidden_20000"), "does not match its own configuration"),
        "basis size 60000": (_sample("basis_60000"), "does not match its own configuration"),
        "resolution 10^6": (_sample("resolution_1e6"), "config.resolution 1000000"),
        "resolution as text": (_sample("resolution_text"), "--resolution: expected an integer"),
        "basis size NaN": (_sample("basis_nan"), "--basis-features: expected an integer"),
        "steps beyond int64": (_sample("steps_2e70"), "--steps"),
        "unknown option": (_sample("unknown_key"), "unknown option(s) teleport"),
        "method as a list": (_sample("method_list"), "prior method"),
        "model as a list": (_sample("model_list"), "holds no prior"),
        "density of another size": (_sample("density_dim"), "latent density"),
        "density noise NaN": (_sample("density_nan"), "latent density"),
        "a NaN weight": (_sample("nan_weight"), "holds NaN or Inf values"),
        "deeply nested JSON": (_sample("deep_json"), "nests deeper than"),
        "huge JSON": (_sample("huge_json"), "characters"),
        "5000-digit integer": (_sample("huge_integer"), "digits"),
        "complete": (["complete", "--checkpoint", "{d}/checkpoints/resolution_1e6.safetensors", "--image",
                      "{d}/face.png", "--half", "--out", "o.png"], "config.resolution 1000000"),
        "eval prior": (["eval", "prior", "--checkpoint", "{d}/checkpoints/hidden_20000.safetensors", "--max-images",
                        "2", "--no-progress", "--out", "eval"], "does not match"),
    },
    "pixels": {
        "PNG 20000x20000": (_fit("image", "{d}/bomb20k.png"), "400,000,000 pixels"),
        "PNG 10000x10000": (_fit("image", "{d}/bomb10k.png"), "100,000,000 pixels"),
        "PNG 10^8 x 1": (_fit("image", "{d}/wide.png"), "100,000,000 pixels"),
        "gray PNG 12000x12000": (_fit("poisson-grad", "{d}/bomb16.png"), "144,000,000 pixels"),
        "BMP 50000x50000": (_fit("image", "{d}/bomb.bmp"), "2,500,000,000 pixels"),
        "TIFF 100000x100000": (_fit("image", "{d}/bomb.tif"), "10,000,000,000 pixels"),
        "JPEG 60000x60000": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/bomb.jpg", "--half", "--out",
                              "o.png"], "3,600,000,000 pixels"),
        "GIF 65535x65535": (["interpolate", "{d}/bomb.gif", "camera", "--checkpoint", "{ckpt}", "--out", "o.png"],
                            "pixels"),
        "inpainting mask": (_fit("inpaint", "camera", "--mask", "{d}/bomb10k.png"), "100,000,000 pixels"),
        "composite input": (_fit("composite", "camera", "{d}/bomb.jpg"), "3,600,000,000 pixels"),
        "completion mask": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/face.png", "--mask",
                             "{d}/bomb20k.png", "--out", "o.png"], "400,000,000 pixels"),
    },
    "options": {
        "seed 2^64": (_fit("image", "camera", "--seed", str(2**64)), "--seed"),
        "steps 10^30": (_fit("image", "camera") + ["--steps", str(10**30)], "--steps"),
        "batch points 2^63": (_fit("image", "camera", "--batch-points", str(2**63)), "--batch-points"),
        "device meta": (_fit("image", "camera", "--device", "meta"), "--device"),
        "device xpu": (_fit("image", "camera", "--device", "xpu"), "--device"),
        "device cpu:1": (_fit("image", "camera", "--device", "cpu:1"), "--device"),
        "device cuda:7": (_fit("image", "camera", "--device", "cuda:7"), "cuda:7"),
        "device cuda:0001": (_fit("image", "camera", "--device", "cuda:0001"), "--device"),
        "sample device": (["sample", "--checkpoint", "{ckpt}", "--device", "vulkan", "--out", "o.png"], "--device"),
        "hidden layers 10^8": (_fit("image", "camera", "--hidden-layers", "100000000"), "--hidden-layers"),
        "first omega 10^300": (_fit("image", "camera", "--first-omega", "1e300"), "--first-omega"),
        "learning rate 10^-400": (_fit("image", "camera", "--lr", "1e-400"), "--lr"),
        "loss weight 10^308": (_fit("sdf", "{d}/ring.xyz", "--weight-sdf", "1e308"), "--weight-sdf"),
        "wavenumber 10^300": (_fit("helmholtz", "--wavenumber", "1e300"), "--wavenumber"),
        "PML width 10^-320": (_fit("helmholtz", "--pml-width", "1e-320"), "--pml-width"),
        "pulse narrower than the grid": (_fit("wave", "--pulse-width", "0.001"), "--pulse-width"),
        "wave speed 10^30 (hours of reference)": (_fit("wave", "--speed", "1e30"), "--speed x --duration"),
        "inner steps 10^9": (["train", "prior", "--method", "maml", "--inner-steps", "1000000000", *TINY, "--out",
                              "run"], "--inner-steps"),
        "temperature 10^308": (["sample", "--checkpoint", "{ckpt}", "--temperature", "1e308", "--out", "o.png"],
                               "--temperature"),
        "pixels 2^70": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/face.png", "--pixels", str(2**70),
                         "--out", "o.png"], "--pixels"),
        "setting 10^20 pixels": (["eval", "prior", "--checkpoint", "{ckpt}", "--settings", str(10**20), "--max-images",
                                  "2", "--no-progress", "--out", "eval"], "impossible"),
    },
    "meshes": {name: (_fit("sdf", f"{{d}}/{name}"), message) for name, message in {
        "list_x.ply": "'x' is a list", "float_indices.ply": "face indices are float32",
        "float_lengths.ply": "face list lengths are float32", "huge_vertex_count.ply": "1,000,000,000,000 'vertex' rows",
        "huge_face_count.ply": "'face' rows", "span_overflow.ply": "too far apart", "nan_normal.ply": "NaN",
        "zero_index.obj": "vertex index 0", "nan_index.obj": "cannot read OBJ", "float_index.off": "cannot read OFF",
        "huge_count.off": "cannot read OFF", "nan_vertex.stl": "NaN", "inf.xyz": "NaN or infinite"}.items()},
    "library warnings": {
        "float64 WAV beyond float32": (_fit("audio", "{d}/huge64.wav"), "beyond float32's range"),
        "PNG over PIL's warning limit": (_fit("image", "{d}/bomb10k.png"), "pixels"),
        "OBJ index 0 (trimesh: the last vertex)": (_fit("sdf", "{d}/zero_index.obj"), "vertex index 0"),
        "PLY fractional list length (plyfile: cast)": (_fit("sdf", "{d}/float_lengths.ply"), "list lengths"),
        "temperature overflowing L-BFGS": (["complete", "--checkpoint", "{ckpt}", "--image", "{d}/face.png", "--half",
                                            "--samples", "2", "--temperature", "1e300", "--out", "o.png"],
                                           "--temperature"),
    },
}


@pytest.fixture(scope="module")
def results(tmp_path_factory, tiny_prior_checkpoint) -> dict:
    """name -> the worker's report on that case (one subprocess for every case of every class)."""
    root = tmp_path_factory.mktemp("hardening")
    work, inputs = root / "work", root / "work" / "inputs"
    inputs.mkdir(parents=True)
    write_inputs(inputs, tiny_prior_checkpoint)
    cases = {f"{group}: {name}": [a.format(d=inputs, ckpt=tiny_prior_checkpoint) for a in argv]
             for group, table in CASES.items() for name, (argv, _) in table.items()}
    (root / "cases.json").write_text(json.dumps(cases))
    env = dict(os.environ, HYPERSIREN_MAX_BYTES=BUDGET, HYPERSIREN_CACHE=str(root / "cache"),
               PYTHONPATH=str(Path(hypersiren.__file__).parents[1]))
    env.pop("HYPERSIREN_MAX_PIXELS", None)
    worker = Path(__file__).with_name("hardening_worker.py")
    done = subprocess.run([sys.executable, str(worker), str(root / "cases.json"), str(root / "results.json")],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((root / "results.json").read_text())


@pytest.mark.parametrize("group", CASES)
def test_hostile_input_is_one_error_line_nothing_written_bounded_memory(results, group):
    failures = []
    for name, (_, message) in CASES[group].items():
        report = results[f"{group}: {name}"]
        lines = report["stderr"].strip().splitlines()
        problems = [
            report["traceback"] and "a traceback escaped",
            report["code"] != 2 and f"exit status {report['code']}",
            (len(lines) != 1 or not lines[0].startswith("hypersiren: error: ")) and "not one error line",
            "Traceback" in report["stderr"] and "a traceback was printed",
            lines and message not in lines[-1] and f"the error does not say {message!r}",
            report["stdout"] and "printed to stdout",
            report["changed"] and "wrote to the working directory",
            report["peak_growth"] > PEAK_GROWTH and f"peak memory grew by {report['peak_growth'] >> 20} MB",
        ]
        if any(problems):
            failures.append(f"{name}: {'; '.join(p for p in problems if p)}: {report['traceback'] or report['stderr']}")
    assert not failures, "\n".join(failures)


def test_every_class_has_several_cases():
    assert all(len(table) >= 5 for table in CASES.values())


def test_limits_come_from_the_environment(monkeypatch):
    from hypersiren.errors import InputError
    from hypersiren.limits import check_memory, check_pixels, memory_budget

    monkeypatch.setenv("HYPERSIREN_MAX_BYTES", "2.5G")
    assert memory_budget()[0] == 2_500_000_000
    check_memory({"--render-size 20000": 2e9})
    with pytest.raises(InputError, match=r"--render-size 30000 needs about 3.0 GB .*\(HYPERSIREN_MAX_BYTES=2.5G\)"):
        check_memory({"--render-size 30000": 3e9})
    monkeypatch.setenv("HYPERSIREN_MAX_BYTES", "lots")
    with pytest.raises(InputError, match="HYPERSIREN_MAX_BYTES='lots': expected a positive number"):
        memory_budget()
    with pytest.raises(InputError, match="100,000,000 pixels, more than the limit of 67,108,864"):
        check_pixels("image a.png", 10000, 10000)
    monkeypatch.setenv("HYPERSIREN_MAX_PIXELS", "200M")
    check_pixels("image a.png", 10000, 10000)


def test_a_palette_picture_with_transparency_reads_without_library_warnings(tmp_path):
    import warnings

    import numpy as np
    from PIL import Image

    from hypersiren.data.image import load_image

    picture = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4), "P")
    picture.putpalette(list(range(48)) * 16)
    picture.save(tmp_path / "palette.png", transparency=bytes(range(16)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's "Palette images with Transparency ..." would fail here
        assert load_image(tmp_path / "palette.png").shape == (3, 4, 4)
