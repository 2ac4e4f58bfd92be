"""``fit inpaint``: which pixels training sees (a random fraction or a mask picture), the metrics on both sides,
the command end to end and bad input."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from hypersiren.errors import InputError
from hypersiren.tasks.inpaint import FitInpaint
from tests.conftest import TINY_NET


def task(**options) -> FitInpaint:
    return FitInpaint(FitInpaint.Config(**dict(input="camera", size=16, hidden_features=16, hidden_layers=1) | options),
                      "cpu")


def test_training_sees_only_the_known_pixels():
    inpaint = task(known=0.25, batch_points=20)
    assert int(inpaint.known.sum()) == 64  # a quarter of 16 x 16, exactly
    assert torch.equal(inpaint.targets, inpaint.values[inpaint.known])
    coords, values = inpaint.batch(0)
    known_coords = {tuple(c) for c in inpaint.coords[inpaint.known].tolist()}
    assert len(coords) == 20 and all(tuple(c) in known_coords for c in coords.tolist())
    assert torch.equal(task(known=0.25).known, inpaint.known)  # drawn from the seed
    assert not torch.equal(task(known=0.25, engine={"seed": 1}).known, inpaint.known)


def test_mask_picture_is_resized_to_the_image(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[:, :4] = 255  # left half known
    Image.fromarray(mask).save(tmp_path / "mask.png")
    inpaint = task(mask=tmp_path / "mask.png")
    assert torch.equal(inpaint.known.reshape(16, 16), torch.arange(16).expand(16, 16) < 8)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "black.png")
    with pytest.raises(InputError, match="no known"):
        task(mask=tmp_path / "black.png")


def test_metrics_separate_the_fit_from_the_inpainting():
    inpaint = task(known=0.5)
    guess = torch.where(inpaint.known[:, None], inpaint.values, torch.zeros_like(inpaint.values))  # exact where known
    inpaint.render = lambda shape=None: guess.reshape(*inpaint.shape, -1)
    metrics = inpaint.metrics()
    assert metrics["psnr_known"] > 100 and metrics["psnr_unknown"] < metrics["psnr"] < 100
    assert "psnr_unknown" not in task(known=1.0).metrics()


def test_cli_end_to_end(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = cli("fit", "inpaint", "camera", "--size", "16", "--known", "0.3", "--steps", "3",
                            "--summary-every", "0", *TINY_NET, "--out", out)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"psnr", "psnr_known", "psnr_unknown", "steps"} <= set(metrics) and "psnr_known" in stdout
    for name in ("fit.png", "ground_truth.png", "context.png", "checkpoint.safetensors"):
        assert (out / name).is_file()
    assert json.loads((out / "config.json").read_text())["known"] == 0.3


@pytest.mark.parametrize("argv,message", [(["--known", "0"], "--known: expected a fraction in (0, 1]"),
                                          (["--mask", "nope.png"], "image not found")])
def test_bad_input_is_one_line(cli, tmp_path, argv, message):
    code, _, err = cli("fit", "inpaint", "camera", *argv, *TINY_NET, "--out", tmp_path / "run")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
