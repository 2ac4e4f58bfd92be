"""Same seed, same CPU result: two short runs of every zoo entry (and of the face prior) with one seed end with
bit-identical weights and metrics; the run's config.json holds everything needed to rerun it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hypersiren.checkpoint import load_checkpoint
from hypersiren.tasks import TASKS
from tests.conftest import TINY_NET, TINY_PRIOR


def _sphere_xyz(path):
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(200, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    np.savetxt(path, np.hstack([0.5 * normals, normals]))
    return path


# zoo entry -> its inputs and options for a run of a second or so
ENTRIES = {
    "image": lambda fx: ["camera", "--size", "12", "--batch-points", "50"],
    "audio": lambda fx: [fx["wav"], "--batch-points", "100"],
    "video": lambda fx: [fx["mp4"], "--size", "8", "--frames", "2", "--batch-points", "32"],
    "helmholtz": lambda fx: ["--batch-points", "64", "--source-points", "16", "--render-size", "16"],
    "wave": lambda fx: ["--batch-points", "64", "--initial-points", "16", "--boundary-points", "16",
                        "--reference-size", "17", "--frames", "2"],
    "sdf": lambda fx: [fx["xyz"], "--batch-points", "64", "--mesh-resolution", "10", "--eval-resolution", "8",
                       "--eval-points", "100", "--render-size", "16"],
    "poisson-grad": lambda fx: ["camera", "--size", "12", "--batch-points", "50"],
    "poisson-lapl": lambda fx: ["camera", "--size", "12", "--batch-points", "50"],
    "composite": lambda fx: ["camera", "astronaut", "--size", "12", "--batch-points", "50"],
    "inpaint": lambda fx: ["camera", "--size", "12", "--known", "0.5", "--batch-points", "50"],
}


def test_every_zoo_entry_is_covered():
    assert set(ENTRIES) == set(TASKS), "add the new zoo entry to ENTRIES"


def _same_runs(a, b) -> None:
    state_a, _ = load_checkpoint(a / "checkpoint.safetensors")
    state_b, _ = load_checkpoint(b / "checkpoint.safetensors")
    assert set(state_a["model"]) == set(state_b["model"])
    for name, tensor in state_a["model"].items():
        assert torch.equal(tensor, state_b["model"][name]), name
    metrics_a, metrics_b = (json.loads((run / "metrics.json").read_text()) for run in (a, b))
    metrics_a.pop("sec_per_step"), metrics_b.pop("sec_per_step")  # a timing
    assert metrics_a == metrics_b
    config_a, config_b = (json.loads((run / "config.json").read_text()) for run in (a, b))
    config_a.pop("out"), config_b.pop("out")
    assert config_a == config_b


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_zoo_entry_repeats_exactly(cli, tmp_path, float_wav, tiny_mp4, entry):
    fixtures = {"wav": float_wav, "mp4": tiny_mp4, "xyz": _sphere_xyz(tmp_path / "sphere.xyz")}
    argv = ["fit", entry, *ENTRIES[entry](fixtures), "--steps", "2", "--seed", "7", "--summary-every", "0",
            "--device", "cpu", *TINY_NET]
    for run in ("a", "b"):
        code, _, err = cli(*argv, "--out", tmp_path / run)
        assert code == 0, err
    _same_runs(tmp_path / "a", tmp_path / "b")


def test_face_prior_repeats_exactly(cli, tmp_path):
    argv = ["train", "prior", *TINY_PRIOR, "--steps", "2", "--seed", "7", "--device", "cpu"]
    for run in ("a", "b"):
        code, _, err = cli(*argv, "--out", tmp_path / run)
        assert code == 0, err
    _same_runs(tmp_path / "a", tmp_path / "b")
