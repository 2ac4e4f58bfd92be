"""``fit sdf``: a signed distance function from an oriented point cloud (paper section 4.2), exported as a mesh.

The points are mapped into the cube [-0.9, 0.9]^3 (``pointcloud.Frame``); the network's value is the signed
distance in that frame, positive outside. Each step draws ``--batch-points`` surface points and as many uniform
points in [-1, 1]^3. Loss, each term averaged over the whole batch as in the paper's code (surface terms are 0
at the uniform points):
    w_sdf |f| (surface) + w_normal (1 - cos(grad f, n)) (surface) + w_eikonal ||grad f| - 1| (all points)
    + w_off exp(-alpha |f|) (uniform points).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hypersiren import diff
from hypersiren.config import non_negative_float, option, positive_float, positive_int
from hypersiren.data.grid import grid
from hypersiren.data.image import save_image
from hypersiren.data.pointcloud import Frame, read_point_cloud
from hypersiren.engine import EngineConfig
from hypersiren.errors import InputError
from hypersiren.mesh import Mesh, NoSurfaceError, compare_surfaces, extract_mesh, sample_surface, sdf_volume, write_ply
from hypersiren.mesh_render import View, render_mesh
from hypersiren.nn import NetworkConfig, build_model
from hypersiren.nn.measure import step_bytes
from hypersiren.registry import TASKS
from hypersiren.render import DEFAULT_CHUNK
from hypersiren.tasks.base import Task, TaskConfig
from hypersiren.viz import colormap, normalize, side_by_side

SLICE_SIZE = 256  # pixels per side of each SDF slice picture
LEVEL_SPACING = 0.05  # distance between the iso-lines drawn on the slices (unit frame)
SLICES = ((2, 1), (0, 2), (0, 1))  # (horizontal, vertical) axes of the planes x = 0, y = 0, z = 0
GRID_POINT_BYTES = 16  # memory per point of a meshing grid: the float32 volume and marching cubes' float64 copy
PICTURE_PIXEL_BYTES = 1536  # memory per pixel of mesh.png: 12 surface samples of ~16 float64 values each


LOSS = "loss (defaults: the paper's)"
MESH = "mesh and metrics"


@TASKS.register
class FitSdf(Task):
    name = "sdf"
    kind = "fit/sdf"
    description = ("signed distance function from a point cloud or mesh (.xyz, .ply, .obj, .stl, .off, .glb); "
                   "exports a mesh")

    @dataclass(frozen=True, kw_only=True)
    class Config(NetworkConfig, TaskConfig):
        input: str = option(help="points: .xyz (x y z [nx ny nz] per line), or a .ply/.obj/.stl/.off/.glb mesh or point "
                                 "cloud (normals from the file, else its faces, else estimated)", positional=True)
        batch_points: int = option(1400, "surface points per step; as many uniform off-surface points join them "
                                         "(1400: the paper's)", check=positive_int)
        weight_sdf: float = option(3e3, "weight of |f| on the surface", check=non_negative_float, group=LOSS)
        weight_normal: float = option(1e2, "weight of 1 - cos(grad f, normal)", check=non_negative_float, group=LOSS)
        weight_eikonal: float = option(5e1, "weight of ||grad f| - 1|", check=non_negative_float, group=LOSS)
        weight_off: float = option(1e2, "weight of exp(-alpha |f|) off the surface", check=non_negative_float,
                                   group=LOSS)
        alpha: float = option(1e2, "alpha of the off-surface term", check=positive_float, group=LOSS)
        mesh_resolution: int = option(256, "marching-cubes grid per side for mesh.ply; memory ~ R^3 * 4 bytes (512: "
                                           "0.5 GB)", check=positive_int, group=MESH, resumable=True)
        eval_resolution: int = option(64, "marching-cubes grid per side for the Chamfer/normal metrics during "
                                          "training", check=positive_int, group=MESH, resumable=True)
        eval_points: int = option(20000, "input points (a fixed random subset) the metrics compare with",
                                  check=positive_int, group=MESH, resumable=True)
        render_size: int = option(512, "pixels per side of mesh.png (TensorBoard's mesh picture: at most 256)",
                                  check=positive_int, group=MESH, resumable=True)
        chunk: int = option(DEFAULT_CHUNK, "grid points per network call when meshing", check=positive_int, group=MESH,
                            resumable=True)
        engine: EngineConfig = EngineConfig(steps=2000, summary_every=500, clip_grad=1.0)  # lr, clipping: the paper's code

        def __post_init__(self):
            super().__post_init__()
            for key in ("mesh_resolution", "eval_resolution"):
                if getattr(self, key) < 2:
                    raise InputError(f"--{key.replace('_', '-')} must be at least 2, got {getattr(self, key)}")

    def __init__(self, config: Config, device: torch.device | str | None = None):
        super().__init__(config, device)
        device = self.device
        cloud = read_point_cloud(config.input)
        self.frame = Frame.fitting(cloud.points)
        self.points = torch.as_tensor(self.frame.to_unit(cloud.points), dtype=torch.float32, device=device)
        self.normals = torch.as_tensor(cloud.normals, dtype=torch.float32, device=device)
        rng = np.random.default_rng(0)
        subset = rng.permutation(len(cloud.points))[: config.eval_points]
        self.eval_index = torch.as_tensor(np.sort(subset), device=device)
        self._meta = config.network_meta(3, 1)
        self.model = build_model(**self._meta).to(device)
        self.eval_mesh: Mesh | None = None

    def model_meta(self) -> dict[str, Any]:
        return self._meta

    def memory_needs(self) -> dict[str, float]:
        c = self.config
        network = f"--hidden-features {c.hidden_features}, --hidden-layers {c.hidden_layers}"
        return {
            f"--mesh-resolution {c.mesh_resolution} (mesh.ply's grid)": c.mesh_resolution**3 * GRID_POINT_BYTES,
            f"--eval-resolution {c.eval_resolution} (the metrics' grid)": c.eval_resolution**3 * GRID_POINT_BYTES,
            f"--render-size {c.render_size} (mesh.png)": c.render_size**2 * PICTURE_PIXEL_BYTES,
            f"a training step on 2 x --batch-points {c.batch_points} points ({network})":
                step_bytes(2 * c.batch_points, c.hidden_features, c.hidden_layers, derivatives=3),
            f"--chunk {c.chunk} ({network})": step_bytes(c.chunk, c.hidden_features, c.hidden_layers),
        }

    def batch(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """Surface points (k, 3), their normals (k, 3), uniform points in [-1, 1]^3 (k, 3)."""
        k = self.config.batch_points
        index = torch.randint(len(self.points), (k,), device=self.device)
        return self.points[index], self.normals[index], torch.rand(k, 3, device=self.device) * 2 - 1

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        surface, normals, uniform = batch
        k, c = len(surface), self.config
        values, jacobian, _ = diff.value_and_derivatives(model, torch.cat([surface, uniform]), order=1)
        values, grad = values.float(), jacobian[..., 0, :].float()
        total = 2 * k  # every term is averaged over the whole batch (the paper's convention)
        terms = {
            "sdf": values[:k].abs().sum() / total,
            "normal": (1 - F.cosine_similarity(grad[:k], normals, dim=-1)).sum() / total,
            "eikonal": (grad.norm(dim=-1) - 1).abs().mean(),
            "off_surface": torch.exp(-c.alpha * values[k:].abs()).sum() / total,
        }
        loss = (c.weight_sdf * terms["sdf"] + c.weight_normal * terms["normal"]
                + c.weight_eikonal * terms["eikonal"] + c.weight_off * terms["off_surface"])
        return loss, {name: value.detach() for name, value in terms.items()}

    def sdf(self, coords: Tensor) -> Tensor:
        """The network's signed distance (n,) at unit-frame coordinates (n, 3), without gradients."""
        with torch.no_grad():
            return self.model(coords).float().reshape(-1)

    def mesh(self, resolution: int, progress: bool = False) -> Mesh:
        """The zero level set in the unit frame; NoSurfaceError if the network has no zero crossing."""
        self.model.eval()
        try:
            volume = sdf_volume(self.sdf, resolution, self.config.chunk, self.device, progress)
        finally:
            self.model.train()
        return extract_mesh(volume)

    def surface_fit(self) -> tuple[float, float]:
        """Mean |f| and mean cos(grad f, normal) at the evaluation points."""
        abs_sdf, cos = [], []
        for index in self.eval_index.split(max(1, self.config.chunk // 4)):
            with torch.enable_grad():  # autograd networks need it; the SIREN path is forward-mode
                y, jacobian, _ = diff.value_and_derivatives(self.model, self.points[index], order=1)
            abs_sdf.append(y.detach().abs().reshape(-1))
            cos.append(F.cosine_similarity(jacobian[..., 0, :].detach(), self.normals[index], dim=-1))
        return float(torch.cat(abs_sdf).mean()), float(torch.cat(cos).mean())

    def metrics(self) -> dict[str, float]:
        abs_sdf, cos = self.surface_fit()
        metrics = {"surface_abs_sdf": abs_sdf, "surface_normal_cos": cos}
        try:
            self.eval_mesh = self.mesh(self.config.eval_resolution)
        except NoSurfaceError:
            self.eval_mesh = None
            return metrics
        target = self.points[self.eval_index].cpu().double().numpy()
        target_normals = self.normals[self.eval_index].cpu().double().numpy()
        points, normals = sample_surface(self.eval_mesh, len(target), np.random.default_rng(0))
        return metrics | compare_surfaces(points, normals, target, target_normals)

    def slices(self) -> Tensor:
        """The SDF on the planes x = 0, y = 0, z = 0 (unit frame) side by side, (3, S, 3S + 4): blue inside, red
        outside, grey iso-lines every LEVEL_SPACING, the zero level set in black."""
        plane = grid(SLICE_SIZE, SLICE_SIZE, device=self.device)  # (row, col) in [-1, 1]
        pictures = []
        for horizontal, vertical in SLICES:
            coords = torch.zeros(len(plane), 3, device=self.device)
            coords[:, horizontal] = plane[:, 1]
            coords[:, vertical] = -plane[:, 0]  # top row is the largest vertical coordinate
            field = self.sdf(coords).reshape(SLICE_SIZE, SLICE_SIZE).cpu()
            picture = colormap(normalize(-field, symmetric=True), "RdBu")
            picture = picture * (1 - 0.35 * _level_lines(field, LEVEL_SPACING))
            pictures.append(picture * (1 - _level_lines(field, None)))
        return side_by_side(pictures)

    def summaries(self, writer, step: int) -> None:
        """The SDF's slices, and the metrics' marching-cubes mesh (``--eval-resolution``, unit frame) as a picture
        and in the Mesh dashboard (``zero_level_set``)."""
        writer.add_image("sdf_slices", self.slices(), step)
        if self.eval_mesh is not None:
            from hypersiren.summaries import add_mesh

            writer.add_image("mesh", render_mesh(self.eval_mesh, View.framing(self.eval_mesh.vertices),
                                                 min(256, self.config.render_size)), step)
            add_mesh(writer, "zero_level_set", self.eval_mesh.vertices, self.eval_mesh.faces, step)

    def write_outputs(self, out_dir: Path) -> list[Path]:
        paths = [out_dir / "sdf_slices.png"]
        save_image(self.slices(), paths[0])
        try:
            mesh = self.mesh(self.config.mesh_resolution, progress=self.config.engine.progress)
        except NoSurfaceError as err:
            print(f"hypersiren: warning: {err}; wrote no mesh.ply", file=sys.stderr)
            return paths
        mesh = Mesh(self.frame.from_unit(mesh.vertices), mesh.faces)
        paths += [out_dir / "mesh.ply", out_dir / "mesh.png"]
        write_ply(paths[1], mesh)
        save_image(render_mesh(mesh, View.framing(mesh.vertices), self.config.render_size), paths[2])
        return paths


def _level_lines(field: Tensor, spacing: float | None) -> Tensor:
    """1 on pixels where ``field`` (H, W) crosses a multiple of ``spacing`` (None: only zero) towards the next
    pixel right or below, else 0."""
    level = torch.sign(field) if spacing is None else torch.floor(field / spacing)
    lines = torch.zeros_like(field)
    lines[:, :-1] = torch.maximum(lines[:, :-1], (level[:, 1:] != level[:, :-1]).float())
    lines[:-1, :] = torch.maximum(lines[:-1, :], (level[1:, :] != level[:-1, :]).float())
    return lines
