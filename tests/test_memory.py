"""Rendering and evaluation at any resolution stay within a memory bound: the network only ever sees a chunk of
points, coordinates are generated per chunk (never for the whole grid), and the peak memory of a large render
grows by the output plus a chunk's worth, not by a multiple of the grid."""
from __future__ import annotations

import json
import os
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hypersiren.data.grid import grid, grid_rows
from hypersiren.mesh import sdf_volume
from hypersiren.nn import Siren
from hypersiren.render import render_derivatives, render_grid


class CountingModel(torch.nn.Module):
    """Wraps a network and records how many points each call evaluates."""

    def __init__(self, model):
        super().__init__()
        self.model, self.sizes = model, []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.model(x)


@pytest.mark.parametrize("sizes", [(7,), (5, 3), (3, 1, 4), (1, 9)])
def test_grid_rows_are_rows_of_the_grid(sizes):
    full = grid(*sizes)
    for step in (1, 4, len(full)):
        rows = torch.cat([grid_rows(sizes, i, min(i + step, len(full))) for i in range(0, len(full), step)])
        assert torch.equal(rows, full)


@pytest.mark.parametrize("shape", [(50,), (23, 31), (6, 7, 9)])
def test_render_grid_evaluates_in_chunks(shape):
    torch.manual_seed(0)
    model = CountingModel(Siren(len(shape), 2, 8, 1))
    out = render_grid(model, shape, chunk=64)
    total = math.prod(shape)
    assert model.sizes == [64] * (total // 64) + ([total % 64] if total % 64 else [])
    assert out.shape == (*shape, 2)
    torch.testing.assert_close(out, model.model(grid(*shape)).detach().reshape(*shape, 2))


def test_render_derivatives_evaluates_in_chunks():
    torch.manual_seed(0)
    model = CountingModel(Siren(2, 1, 8, 1))
    values, grads, laplacians = render_derivatives(model, (20, 13), chunk=50)
    assert max(model.sizes) == 50 and sum(model.sizes) == 20 * 13
    x = grid(20, 13).requires_grad_(True)
    from hypersiren import diff

    y = model.model(x)
    g = diff.jacobian(y, x)
    torch.testing.assert_close(grads, g.detach().reshape(20, 13, 1, 2))
    torch.testing.assert_close(laplacians, diff.divergence(g[..., 0, :], x).detach().reshape(20, 13, 1))
    assert values.shape == (20, 13, 1) and not values.requires_grad


def test_render_derivatives_of_a_siren_takes_the_forward_path_and_equals_autograd():
    from hypersiren import diff

    torch.manual_seed(0)
    model = Siren(2, 3, 16, 2)
    values, grads, laplacians = render_derivatives(model, (9, 7), chunk=20)
    x = grid(9, 7).requires_grad_(True)
    y = model(x)
    torch.testing.assert_close(values, y.detach().reshape(9, 7, 3))
    torch.testing.assert_close(grads, diff.jacobian(y, x).detach().reshape(9, 7, 3, 2), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(laplacians, diff.laplacian(y, x).detach().reshape(9, 7, 3), rtol=1e-4, atol=1e-3)


def test_sdf_volume_evaluates_in_chunks():
    sizes = []

    def sphere(x):
        sizes.append(len(x))
        return x.norm(dim=-1, keepdim=True) - 0.5

    volume = sdf_volume(sphere, 17, chunk=1000)
    assert max(sizes) == 1000 and sum(sizes) == 17**3
    assert volume.shape == (17, 17, 17)
    torch.testing.assert_close(torch.from_numpy(volume).reshape(-1, 1), sphere(grid(17, 17, 17)))


PEAK = r'''
import json
import torch
torch.set_num_threads(1)
from hypersiren.mesh import sdf_volume
from hypersiren.nn import Siren
from hypersiren.render import render_grid

def status_mb(key):  # VmRSS: resident now; VmHWM: highest resident since the last reset
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

def rss_mb():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current resident size
    return status_mb("VmRSS")

def peak_mb():
    return status_mb("VmHWM")

torch.manual_seed(0)
model = Siren(2, 1, 8, 1).eval()
render_grid(model, (64, 64), chunk=4096)  # warm up: kernels, allocator
growth = {}
base = rss_mb()
image = render_grid(model, (2048, 2048), chunk=16384)
growth["render"] = peak_mb() - base
del image
sdf = Siren(3, 1, 8, 1).eval()
with torch.no_grad():
    sdf_volume(lambda x: sdf(x), 8, chunk=512)
    base = rss_mb()
    volume = sdf_volume(lambda x: sdf(x), 160, chunk=16384)
growth["sdf"] = peak_mb() - base
print(json.dumps(growth))
'''


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads peak resident memory from /proc")
def test_peak_memory_of_large_renders_is_output_plus_a_chunk():
    """A 2048 x 2048 render (16 MiB of output; the grid's coordinates alone would be 32 MiB) and a 160^3 SDF
    volume (16 MiB; coordinates 47 MiB) in a fresh process: resident memory grows by the output plus a bounded
    chunk (a few MiB of coordinates and activations), with 16 MiB of slack for the allocator."""
    done = subprocess.run([sys.executable, "-c", PEAK], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    growth = json.loads(done.stdout.strip().splitlines()[-1])
    output_mb = 2048 * 2048 * 4 / 2**20
    assert growth["render"] < output_mb + 16, growth
    assert growth["sdf"] < 160**3 * 4 / 2**20 + 16, growth
