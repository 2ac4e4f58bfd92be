"""``fit sdf``: a signed distance function from an oriented point cloud (paper section 4.2), exported as a mesh.

The points are mapped into the cube [-0.9, 0.9]^3 (``pointcloud.Frame``); the network's value is the signed
distance in that frame, positive outside. Each step draws ``--batch-points`` surface points and as many uniform
points in [-1, 1]^3. Loss, each term averaged over the whole batch as in the paper's code (surface terms are 0
at the uniform points):
    w_sdf |f| (surface) + w_normal (1 - cos(grad f, n)) (surface) + w_eikonal ||grad f| - 1| (all points)
    + w_off exp(-alpha |f|) (uniform points).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hypersiren import diff
from hypersiren.data.grid import grid
from hypersiren.data.image import save_image
from hypersiren.data.pointcloud import Frame, read_point_cloud
from hypersiren.errors import InputError
from hypersiren.mesh import Mesh, NoSurfaceError, compare_surfaces, extract_mesh, sample_surface, sdf_volume, write_ply
from hypersiren.mesh_render import View, render_mesh
from hypersiren.render import DEFAULT_CHUNK
from hypersiren.tasks.base import (Task, add_model_arguments, model_from_config, non_negative_float, positive_float,
                                   positive_int)
from hypersiren.viz import colormap, normalize, side_by_side

SLICE_SIZE = 256  # pixels per side of each SDF slice picture
LEVEL_SPACING = 0.05  # distance between the iso-lines drawn on the slices (unit frame)
SLICES = ((2, 1), (0, 2), (0, 1))  # (horizontal, vertical) axes of the planes x = 0, y = 0, z = 0


class FitSdf(Task):
    name = "sdf"
    kind = "fit/sdf"
    description = ("signed distance function from a point cloud or mesh (.xyz, .ply, .obj, .stl, .off, .glb); "
                   "exports a mesh")
    defaults = {"steps": 2000, "lr": 1e-4, "summary_every": 500, "clip_grad": 1.0}  # lr, clipping: the paper's code

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("input", help="points: .xyz (x y z [nx ny nz] per line), or a .ply/.obj/.stl/.off/.glb mesh "
                                          "or point cloud (normals from the file, else its faces, else estimated)")
        parser.add_argument("--batch-points", type=positive_int, default=1400,
                            help="surface points per step; as many uniform off-surface points join them "
                                 "(default: 1400, the paper's)")
        loss = parser.add_argument_group("loss (defaults: the paper's)")
        loss.add_argument("--weight-sdf", type=non_negative_float, default=3e3, help="weight of |f| on the surface")
        loss.add_argument("--weight-normal", type=non_negative_float, default=1e2, help="weight of 1 - cos(grad f, normal)")
        loss.add_argument("--weight-eikonal", type=non_negative_float, default=5e1, help="weight of ||grad f| - 1|")
        loss.add_argument("--weight-off", type=non_negative_float, default=1e2, help="weight of exp(-alpha |f|) off the surface")
        loss.add_argument("--alpha", type=positive_float, default=1e2, help="alpha of the off-surface term (default: 100)")
        mesh = parser.add_argument_group("mesh and metrics")
        mesh.add_argument("--mesh-resolution", type=positive_int, default=256,
                          help="marching-cubes grid per side for mesh.ply; memory ~ R^3 * 4 bytes (512: 0.5 GB) (default: 256)")
        mesh.add_argument("--eval-resolution", type=positive_int, default=64,
                          help="marching-cubes grid per side for the Chamfer/normal metrics during training (default: 64)")
        mesh.add_argument("--eval-points", type=positive_int, default=20000,
                          help="input points (a fixed random subset) the metrics compare with (default: 20000)")
        mesh.add_argument("--render-size", type=positive_int, default=512,
                          help="pixels per side of mesh.png (TensorBoard's mesh picture: at most 256) (default: 512)")
        mesh.add_argument("--chunk", type=positive_int, default=DEFAULT_CHUNK,
                          help=f"grid points per network call when meshing (default: {DEFAULT_CHUNK})")
        add_model_arguments(parser)

    def __init__(self, config: dict[str, Any], device: torch.device):
        super().__init__(config, device)
        for key in ("mesh_resolution", "eval_resolution"):
            if config[key] < 2:
                raise InputError(f"--{key.replace('_', '-')} must be at least 2, got {config[key]}")
        cloud = read_point_cloud(config["input"])
        self.frame = Frame.fitting(cloud.points)
        self.points = torch.as_tensor(self.frame.to_unit(cloud.points), dtype=torch.float32, device=device)
        self.normals = torch.as_tensor(cloud.normals, dtype=torch.float32, device=device)
        rng = np.random.default_rng(0)
        subset = rng.permutation(len(cloud.points))[: config["eval_points"]]
        self.eval_index = torch.as_tensor(np.sort(subset), device=device)
        self.model, self._meta = model_from_config(config, 3, 1)
        self.model.to(device)
        self.eval_mesh: Mesh | None = None

    def model_meta(self) -> dict[str, Any]:
        return self._meta

    def batch(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """Surface points (k, 3), their normals (k, 3), uniform points in [-1, 1]^3 (k, 3)."""
        k = self.config["batch_points"]
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
            "off_surface": torch.exp(-c["alpha"] * values[k:].abs()).sum() / total,
        }
        loss = (c["weight_sdf"] * terms["sdf"] + c["weight_normal"] * terms["normal"]
                + c["weight_eikonal"] * terms["eikonal"] + c["weight_off"] * terms["off_surface"])
        return loss, {name: value.detach() for name, value in terms.items()}

    def sdf(self, coords: Tensor) -> Tensor:
        """The network's signed distance (n,) at unit-frame coordinates (n, 3), without gradients."""
        with torch.no_grad():
            return self.model(coords).float().reshape(-1)

    def mesh(self, resolution: int, progress: bool = False) -> Mesh:
        """The zero level set in the unit frame; NoSurfaceError if the network has no zero crossing."""
        self.model.eval()
        try:
            volume = sdf_volume(self.sdf, resolution, self.config["chunk"], self.device, progress)
        finally:
            self.model.train()
        return extract_mesh(volume)

    def surface_fit(self) -> tuple[float, float]:
        """Mean |f| and mean cos(grad f, normal) at the evaluation points."""
        abs_sdf, cos = [], []
        for index in self.eval_index.split(max(1, self.config["chunk"] // 4)):
            with torch.enable_grad():  # autograd networks need it; the SIREN path is forward-mode
                y, jacobian, _ = diff.value_and_derivatives(self.model, self.points[index], order=1)
            abs_sdf.append(y.detach().abs().reshape(-1))
            cos.append(F.cosine_similarity(jacobian[..., 0, :].detach(), self.normals[index], dim=-1))
        return float(torch.cat(abs_sdf).mean()), float(torch.cat(cos).mean())

    def metrics(self) -> dict[str, float]:
        abs_sdf, cos = self.surface_fit()
        metrics = {"surface_abs_sdf": abs_sdf, "surface_normal_cos": cos}
        try:
            self.eval_mesh = self.mesh(self.config["eval_resolution"])
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
        writer.add_image("sdf_slices", self.slices(), step)
        if self.eval_mesh is not None:
            writer.add_image("mesh", render_mesh(self.eval_mesh, View.framing(self.eval_mesh.vertices),
                                                 min(256, self.config["render_size"])), step)

    def write_outputs(self, out_dir: Path) -> list[Path]:
        paths = [out_dir / "sdf_slices.png"]
        save_image(self.slices(), paths[0])
        try:
            mesh = self.mesh(self.config["mesh_resolution"], progress=not self.config.get("no_progress", False))
        except NoSurfaceError as err:
            print(f"hypersiren: warning: {err}; wrote no mesh.ply", file=sys.stderr)
            return paths
        mesh = Mesh(self.frame.from_unit(mesh.vertices), mesh.faces)
        paths += [out_dir / "mesh.ply", out_dir / "mesh.png"]
        write_ply(paths[1], mesh)
        save_image(render_mesh(mesh, View.framing(mesh.vertices), self.config["render_size"]), paths[2])
        return paths


def _level_lines(field: Tensor, spacing: float | None) -> Tensor:
    """1 on pixels where ``field`` (H, W) crosses a multiple of ``spacing`` (None: only zero) towards the next
    pixel right or below, else 0."""
    level = torch.sign(field) if spacing is None else torch.floor(field / spacing)
    lines = torch.zeros_like(field)
    lines[:, :-1] = torch.maximum(lines[:, :-1], (level[:, 1:] != level[:, :-1]).float())
    lines[:-1, :] = torch.maximum(lines[:-1, :], (level[1:, :] != level[:-1, :]).float())
    return lines
