"""eval/figure1.py: ground-truth derivative filters in network units, and the whole figure on a tiny fit."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from hypersiren.data.grid import grid

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def figure1():
    spec = importlib.util.spec_from_file_location("figure1", ROOT / "eval" / "figure1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) of grid(height, width) as (H, W) float64 arrays."""
    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    np.testing.assert_allclose(np.stack([y, x], -1).reshape(-1, 2), grid(height, width).numpy(), atol=1e-6)
    return y, x


def image_derivatives(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient magnitude and Laplacian of (H, W) values on grid(H, W), by the filters figure 1 uses for the ground
    truth (those of poisson-grad/poisson-lapl with nearest-pixel borders)."""
    import torch

    from hypersiren.tasks.poisson import discrete_laplacian, sobel_gradients

    field = torch.from_numpy(values)[None]
    gradient = sobel_gradients(field, mode="nearest")[:, 0].norm(dim=-1).reshape(values.shape)
    return gradient.numpy(), discrete_laplacian(field, mode="nearest")[:, 0].reshape(values.shape).numpy()


def test_sobel_gradient_is_in_units_of_the_coordinates():
    y, x = coords(20, 30)  # different spacings along the two axes
    gradient, laplacian = image_derivatives(0.3 * x - 0.4 * y)
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(gradient[inner], 0.5, rtol=1e-9)
    np.testing.assert_allclose(laplacian[inner], 0.0, atol=1e-9)


def test_laplace_stencil_is_exact_on_quadratics():
    y, x = coords(17, 25)
    gradient, laplacian = image_derivatives(x**2 + 2 * y**2)  # Laplacian 2 + 4
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(laplacian[inner], 6.0, rtol=1e-9)
    # Sobel of a quadratic: the central difference is exact and the cross-smoothing keeps a linear slope
    np.testing.assert_allclose(gradient[inner], np.hypot(2 * x, 4 * y)[inner], rtol=1e-9, atol=1e-9)


def test_figure1_end_to_end(figure1, tmp_path, capsys):
    out = tmp_path / "fig"
    assert figure1.main(["--out", str(out), "--size", "12", "--steps", "2", "--models", "siren", "relu",
                        "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"siren", "relu"}
    table = (out / "figure1.md").read_text()
    for name in ("siren", "relu"):
        assert f"| {name} | {metrics[name]['psnr']:.2f} |" in table
        assert (out / name / "checkpoint.safetensors").exists()
    from PIL import Image

    with Image.open(out / "figure1.png") as image:
        # one row per model plus the ground truth's, three panels each
        assert image.size[1] / image.size[0] == pytest.approx(3 / 3, rel=0.05)
        assert len(np.unique(np.asarray(image.convert("L")))) > 10
    assert "figure1.png" in capsys.readouterr().out


def test_figure1_bad_image_writes_nothing(figure1, tmp_path, capsys):
    out = tmp_path / "fig"
    assert figure1.main(["--out", str(out), "--image", str(tmp_path / "missing.png"), "--no-progress"]) == 2
    assert "image not found" in capsys.readouterr().err
    assert not out.exists()
