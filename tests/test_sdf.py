"""``fit sdf``: the loss and metrics on an analytic sphere, the SDF slices, end-to-end runs, bad inputs."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from hypersiren.cli import main
from hypersiren.data.pointcloud import FILL, read_triangles
from hypersiren.tasks.sdf import SLICE_SIZE, FitSdf
from tests.test_pointcloud import octahedron, write_ascii_ply

TINY = ["--steps", "3", "--batch-points", "64", "--hidden-features", "16", "--hidden-layers", "1",
        "--mesh-resolution", "12", "--eval-resolution", "10", "--eval-points", "200", "--summary-every", "2",
        "--render-size", "32",
        "--no-progress"]


class SphereSdf(nn.Module):
    """The exact signed distance to a sphere of ``radius`` around the origin."""

    def __init__(self, radius):
        super().__init__()
        self.radius = radius

    def forward(self, x):
        return x.norm(dim=-1, keepdim=True) - self.radius


def sphere_points(count=400, center=(1.0, -2.0, 0.5), radius=2.0, seed=0):
    """Points on a sphere including the six extremes (so the bounding box is exact), with outward normals."""
    rng = np.random.default_rng(seed)
    directions = np.vstack([np.eye(3), -np.eye(3), rng.normal(size=(count - 6, 3))])
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return np.asarray(center) + radius * directions, directions


def write_sphere_xyz(path, **kw):
    points, normals = sphere_points(**kw)
    np.savetxt(path, np.hstack([points, normals]))
    return path


def write_torus_ply(path, major=2.0, minor=0.7, n=24, m=12):
    """A torus mesh around the y axis, faces outward."""
    u, v = np.meshgrid(np.arange(n) * 2 * np.pi / n, np.arange(m) * 2 * np.pi / m, indexing="ij")
    ring = major + minor * np.cos(v)
    vertices = np.stack([ring * np.cos(u), minor * np.sin(v), ring * np.sin(u)], -1).reshape(-1, 3)
    index = lambda i, j: (i % n) * m + (j % m)  # noqa: E731
    faces = []
    for i in range(n):
        for j in range(m):
            faces += [[index(i, j), index(i, j + 1), index(i + 1, j)], [index(i + 1, j), index(i, j + 1), index(i + 1, j + 1)]]
    return write_ascii_ply(path, vertices, np.array(faces))


def task_for(path, **overrides):
    return FitSdf(FitSdf.Config(input=path, **overrides), torch.device("cpu"))


def test_loss_terms_vanish_on_the_exact_sphere_sdf(tmp_path):
    task = task_for(write_sphere_xyz(tmp_path / "s.xyz"), batch_points=256)
    np.testing.assert_allclose(task.points.norm(dim=-1), FILL, atol=1e-6)  # radius 2 maps to FILL
    torch.manual_seed(0)
    loss, terms = task.loss(SphereSdf(FILL), task.batch(0))
    assert terms["sdf"] < 1e-6 and terms["normal"] < 1e-6 and terms["eikonal"] < 1e-5
    assert 0 < terms["off_surface"] < 0.05  # exp(-100 |f|) is small away from the surface
    assert float(loss.detach()) == pytest.approx(100 * float(terms["off_surface"]), abs=1e-3)
    _, wrong = task.loss(SphereSdf(FILL / 2), task.batch(1))
    assert wrong["sdf"] == pytest.approx(FILL / 2 / 2, rel=1e-4)  # |f| = r/2 on half the batch
    _, inverted = task.loss(lambda x: -SphereSdf(FILL)(x), task.batch(2))
    assert inverted["normal"] == pytest.approx(1.0, rel=1e-4)  # 1 - cos = 2 on half the batch


def test_metrics_of_the_exact_sphere_sdf(tmp_path):
    task = task_for(write_sphere_xyz(tmp_path / "s.xyz", count=3000), eval_resolution=32)
    task.model = SphereSdf(FILL)
    metrics = task.metrics()
    assert metrics["surface_abs_sdf"] < 1e-6 and metrics["surface_normal_cos"] > 1 - 1e-6
    assert metrics["chamfer"] < 0.035  # about the spacing of 3000 random points on the sphere
    assert metrics["normal_consistency"] > 0.98
    task.model = SphereSdf(FILL - 0.2)
    smaller = task.metrics()
    assert smaller["surface_abs_sdf"] == pytest.approx(0.2, abs=1e-5) and smaller["chamfer"] > 0.18


def test_slices_draw_the_zero_level_set_in_black(tmp_path):
    task = task_for(write_sphere_xyz(tmp_path / "s.xyz"))
    task.model = SphereSdf(0.5)
    image = task.slices()
    assert image.shape == (3, SLICE_SIZE, 3 * SLICE_SIZE + 4)
    middle = image[:, SLICE_SIZE // 2, :SLICE_SIZE]  # the row through the centre of the x = 0 slice
    column = torch.linspace(-1, 1, SLICE_SIZE)
    black = middle.sum(dim=0) == 0
    assert black.any() and torch.all((column[black].abs() - 0.5).abs() < 3 * 2 / SLICE_SIZE)
    assert image[2, SLICE_SIZE // 2, SLICE_SIZE // 2] > image[0, SLICE_SIZE // 2, SLICE_SIZE // 2]  # inside is blue


def test_no_surface_writes_slices_and_warns(tmp_path, capsys):
    task = task_for(write_sphere_xyz(tmp_path / "s.xyz"), mesh_resolution=8, eval_resolution=8)
    task.model = SphereSdf(-1.0)  # positive everywhere
    metrics = task.metrics()
    assert "chamfer" not in metrics
    paths = task.write_outputs(tmp_path)
    assert [p.name for p in paths] == ["sdf_slices.png"]
    assert "no zero crossing" in capsys.readouterr().err


@pytest.mark.parametrize("shape", ["xyz", "ply", "obj"])
def test_fit_sdf_runs_end_to_end(tmp_path, shape):
    if shape == "xyz":
        source = write_sphere_xyz(tmp_path / "sphere.xyz")
    elif shape == "ply":
        source = write_torus_ply(tmp_path / "torus.ply")
    else:
        vertices, faces = octahedron()
        source = tmp_path / "octa.obj"
        source.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in vertices)
                          + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces))
    out = tmp_path / "run"
    assert main(["fit", "sdf", str(source), "--out", str(out), *TINY]) == 0
    for name in ("config.json", "metrics.json", "checkpoint.safetensors", "sdf_slices.png", "mesh.ply", "mesh.png"):
        assert (out / name).is_file()  # a freshly initialised SIREN crosses zero, so there is a mesh
    metrics = json.loads((out / "metrics.json").read_text())
    expected = {"surface_abs_sdf", "surface_normal_cos", "chamfer", "normal_consistency", "steps", "final_loss"}
    assert expected <= set(metrics) and metrics["steps"] == 3
    assert all(math.isfinite(v) for v in metrics.values())
    vertices, faces = read_triangles(out / "mesh.ply")
    assert np.isfinite(vertices).all() and len(faces) > 0
    assert json.loads((out / "config.json").read_text())["input"] == str(source)


def test_fit_sdf_is_repeatable_on_cpu(tmp_path):
    source = write_sphere_xyz(tmp_path / "sphere.xyz")
    losses = []
    for run in ("a", "b"):
        assert main(["fit", "sdf", str(source), "--out", str(tmp_path / run), *TINY]) == 0
        losses.append(json.loads((tmp_path / run / "metrics.json").read_text())["final_loss"])
    assert losses[0] == losses[1]


@pytest.mark.parametrize("content, extra, message", [
    (None, [], "not found"),
    ("0 0 0\n1 1 1\n", [], "without normals"),
    ("0 0 nan 0 0 1\n1 1 1 0 0 1\n", [], "NaN"),
    ("0 0 0 0 0 1\n1 1 1 0 0 1\n", ["--mesh-resolution", "1"], "at least 2"),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, capsys, content, extra, message):
    source = tmp_path / "points.xyz"
    if content is not None:
        source.write_text(content)
    out = tmp_path / "run"
    assert main(["fit", "sdf", str(source), "--out", str(out), *TINY, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hypersiren: error:") and message in err and "\n" not in err
    assert not out.exists()


def test_resume_at_the_last_step_remeshes_at_a_new_resolution(tmp_path):
    source = write_sphere_xyz(tmp_path / "sphere.xyz")
    out = tmp_path / "run"
    assert main(["fit", "sdf", str(source), "--out", str(out), *TINY]) == 0
    first = len(read_triangles(out / "mesh.ply")[0])
    assert main(["fit", "sdf", str(source), "--out", str(out), *TINY, "--resume", "--mesh-resolution", "20"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["mesh_resolution"] == 20 and json.loads((out / "metrics.json").read_text())["steps"] == 3
    vertices, _ = read_triangles(out / "mesh.ply")
    assert len(vertices) > first  # the finer grid resolves more of the same surface


def test_bunny_eval_script_runs_on_a_tiny_torus(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("sdf_bunny", Path(__file__).parents[1] / "eval" / "sdf_bunny.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    source = write_torus_ply(tmp_path / "torus.ply")
    out = tmp_path / "eval"
    assert script.main([str(source), "--out", str(out), "--steps", "2", "--batch-points", "32", "--mesh-resolution",
                        "12", "--size", "24", "--", "--hidden-features", "16", "--hidden-layers", "1", "--eval-resolution",
                        "10", "--eval-points", "200", "--render-size", "32", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["input_mesh_chamfer"] < metrics["mesh_chamfer"]  # an untrained network is far from the torus
    assert (out / "sdf_bunny.png").is_file() and (out / "sdf_bunny.md").is_file()
