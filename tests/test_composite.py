"""Gradient-domain compositing: the blended target, masks, mixed inputs, the command end to end, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from hypersiren.data.image import from_unit
from hypersiren.runtime import resolve_device
from hypersiren.tasks.composite import Composite
from hypersiren.tasks.poisson import sobel_gradients
from tests.conftest import TINY_NET


def _png(path, array):
    Image.fromarray(array).save(path)
    return str(path)


def _task(image_a, image_b, **overrides):
    config = dict(image_a=image_a, image_b=image_b, size=12, hidden_features=16, hidden_layers=1)
    return Composite(Composite.Config(**config | overrides), resolve_device("cpu"))


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(1)
    a = _png(tmp_path / "a.png", (rng.random((12, 12)) * 255).astype(np.uint8))
    b = _png(tmp_path / "b.png", (rng.random((12, 12)) * 255).astype(np.uint8))
    return a, b


def test_target_is_the_weighted_sum_of_both_gradients(pair):
    task = _task(*pair, weight=0.25)
    grad_a, grad_b = (sobel_gradients(from_unit(image)) for image in task.inputs)
    torch.testing.assert_close(task.targets, 0.75 * grad_a + 0.25 * grad_b)
    torch.testing.assert_close(task.values, from_unit(0.75 * task.inputs[0] + 0.25 * task.inputs[1]).reshape(-1, 1))


def test_mask_selects_each_image_per_pixel(pair, tmp_path):
    mask = np.zeros((12, 12), np.uint8)
    mask[:, 6:] = 255
    task = _task(*pair, mask=_png(tmp_path / "mask.png", mask))
    grad_a, grad_b = (sobel_gradients(from_unit(image)).reshape(12, 12, 1, 2) for image in task.inputs)
    targets = task.targets.reshape(12, 12, 1, 2)
    torch.testing.assert_close(targets[:, :6], grad_a[:, :6])
    torch.testing.assert_close(targets[:, 6:], grad_b[:, 6:])


def test_grayscale_and_colour_of_different_sizes_are_made_consistent(tmp_path):
    colour = _png(tmp_path / "colour.png", (np.random.default_rng(2).random((20, 30, 3)) * 255).astype(np.uint8))
    task = _task("camera", colour, size=10)
    assert task.inputs[0].shape == task.inputs[1].shape == (3, 10, 10)
    assert task.targets.shape == (100, 3, 2)


def test_composite_keeps_the_mean_of_the_naive_blend(pair):
    task = _task(*pair)
    composite = task.render().reshape(-1, 1)
    assert abs(float(composite.mean() - task.values.mean())) < 1e-5


def test_cli_end_to_end(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = cli("fit", "composite", "camera", "astronaut", "--size", 16, "--steps", 3, *TINY_NET,
                               "--out", out)
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"gradient_mse", "gradient_relative_error"} <= set(metrics)
    with Image.open(out / "composite.png") as image:
        assert image.size == (16, 16) and image.mode == "RGB"
    for file in ("config.json", "checkpoint.safetensors", "naive_blend.png", "panel.png", "target_gradient.png"):
        assert (out / file).is_file()
    assert list(out.glob("events.out.tfevents.*"))


@pytest.mark.parametrize("args,message", [
    (("camera", "nothing.png"), "image not found"),
    (("camera", "astronaut", "--mask", "nothing.png"), "image not found"),
])
def test_cli_bad_inputs(cli, tmp_path, args, message):
    out = tmp_path / "run"
    code, _, stderr = cli("fit", "composite", *[tmp_path / a if a.endswith(".png") else a for a in args], *TINY_NET,
                          "--out", out)
    assert code == 2 and message in stderr and stderr.count("\n") == 1
    assert not out.exists()


def test_weight_out_of_range_is_a_usage_error(cli, tmp_path):
    code, _, stderr = cli("fit", "composite", "camera", "astronaut", "--weight", "1.5", "--out", tmp_path / "run")
    assert code == 2 and "expected a number in [0, 1], got 1.5" in stderr
    assert not (tmp_path / "run").exists()


def test_eval_script_writes_the_panel_and_table(tmp_path):
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "eval" / "composite.py"), run_name="eval_composite")
    out = tmp_path / "eval"
    assert script["main"](["--out", str(out), "--size", "12", "--steps", "2", "--hidden-features", "8",
                          "--hidden-layers", "1", "--no-progress"]) == 0
    with Image.open(out / "composite.png") as image:
        assert image.height == 12 and image.width > 4 * 12  # A, B, naive blend, composite side by side
    assert "| siren |" in (out / "composite.md").read_text()
    assert set(json.loads((out / "metrics.json").read_text())) == {"siren"}
