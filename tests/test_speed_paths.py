"""The speed paths equal the plain maths: w0 folded into the weights, the in-place sine of inference, and the
allocator tuning (which must really remove the page faults and must leave user settings alone)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from hypersiren import runtime
from hypersiren.nn import Siren


def reference(model: Siren, coords: torch.Tensor, params=None, shifts=None) -> torch.Tensor:
    """The paper's formulation, written out: sin(w0 (W x + b + shift)) per sine layer, then W x + b."""
    params = params or {}
    x = coords
    for i, layer in enumerate(model.layers):
        weight = params.get(f"layers.{i}.weight", layer.weight)
        bias = params.get(f"layers.{i}.bias", layer.bias)
        per_sample = weight.dim() == 3
        pre = (x @ weight.transpose(-1, -2) if per_sample else x @ weight.T) + (bias.unsqueeze(-2) if per_sample else bias)
        if i == len(model.layers) - 1:
            return pre
        if shifts is not None:
            pre = pre + shifts[:, i].unsqueeze(-2)
        x = torch.sin(model.omegas[i] * pre)
    raise AssertionError("unreachable")


@pytest.fixture
def model() -> Siren:
    torch.manual_seed(0)
    return Siren(2, 3, hidden_features=16, hidden_layers=2, first_omega=30.0, hidden_omega=20.0).double()


def per_sample_params(model: Siren, batch: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {name: (p.detach() + 0.01 * torch.randn(batch, *p.shape, dtype=p.dtype)).requires_grad_(True)
            for name, p in model.named_parameters()}


def test_forward_and_parameter_gradients_equal_the_paper_formulation(model):
    coords = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    ours = model(coords)
    ref = reference(model, coords)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(ours.square().sum(), list(model.parameters()))
    ref_grads = torch.autograd.grad(ref.square().sum(), list(model.parameters()))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_per_sample_params_and_shifts_equal_the_paper_formulation_with_gradients(model):
    coords = torch.rand(2, 7, 2, dtype=torch.float64) * 2 - 1
    params = per_sample_params(model, 2)
    shifts = (0.1 * torch.randn(2, model.num_sine_layers, 16, dtype=torch.float64)).requires_grad_(True)
    # Siren adds the shift to the bias, inside the w0 scaling: sin(w0 (W x + b + shift)).
    ours = model(coords, params=params, shifts=shifts)
    ref = reference(model, coords, params=params, shifts=shifts)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    inputs = [*params.values(), shifts]
    for g, r in zip(torch.autograd.grad(ours.sum(), inputs), torch.autograd.grad(ref.sum(), inputs)):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_double_backward_through_the_sine_equals_the_paper_formulation(model):
    """A derivative loss: the coordinate gradient (create_graph) differentiated again by the parameters."""
    coords = (torch.rand(30, 2, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    params = list(model.parameters())

    def second_order(net):
        y = net(coords)
        (dy,) = torch.autograd.grad(y.sum(), coords, create_graph=True)
        return torch.autograd.grad(dy.square().sum(), params, materialize_grads=True)  # output bias: zero

    for g, r in zip(second_order(model), second_order(lambda c: reference(model, c))):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_second_order_through_per_sample_params_equals_the_paper_formulation(model):
    """MAML-style: an inner gradient step on per-sample params (create_graph), then the outer gradient."""
    coords = torch.rand(2, 9, 2, dtype=torch.float64) * 2 - 1
    target = torch.rand(2, 9, 3, dtype=torch.float64)
    params = per_sample_params(model, 2)

    def outer(net):
        inner = (net(coords, params) - target).square().mean()
        grads = torch.autograd.grad(inner, list(params.values()), create_graph=True)
        fast = {k: p - 0.1 * g for (k, p), g in zip(params.items(), grads)}
        return torch.autograd.grad((net(coords, fast) - target).square().mean(), list(params.values()))

    ours = outer(model)
    ref = outer(lambda c, p: reference(model, c, params=p))
    for g, r in zip(ours, ref):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_inference_in_place_sine_equals_the_training_path(model):
    coords = torch.rand(40, 2, dtype=torch.float64) * 2 - 1
    params = per_sample_params(model, 2)
    shifts = 0.1 * torch.randn(2, model.num_sine_layers, 16, dtype=torch.float64)
    batched = coords[:20].reshape(2, 10, 2)
    with torch.no_grad():
        plain = model(coords)
        sample = model(batched, params=params, shifts=shifts)
    with torch.inference_mode():
        inference = model(coords)
    assert not plain.requires_grad
    torch.testing.assert_close(plain, model(coords).detach(), rtol=0, atol=0)
    torch.testing.assert_close(inference, plain, rtol=0, atol=0)
    torch.testing.assert_close(sample, model(batched, params=params, shifts=shifts).detach(), rtol=0, atol=0)
    # frozen parameters with coordinates that need a gradient still take the differentiable path
    model.requires_grad_(False)
    x = coords.clone().requires_grad_(True)
    (dx,) = torch.autograd.grad(model(x).sum(), x)
    (dx_ref,) = torch.autograd.grad(reference(model, x).sum(), x)
    torch.testing.assert_close(dx, dx_ref, rtol=1e-10, atol=1e-12)


def test_tune_allocator_leaves_user_settings_alone(monkeypatch):
    monkeypatch.setattr(runtime, "_allocator_tuned", False)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert runtime.tune_allocator() is False
    assert runtime._allocator_tuned is False


FAULTS_SCRIPT = """
import resource, torch
from hypersiren.nn import Siren
from hypersiren.runtime import tune_allocator

torch.manual_seed(0)
model = Siren(2, 1, hidden_features=256, hidden_layers=0)  # activations of 65536 x 256: 64 MB buffers
optimizer = torch.optim.Adam(model.parameters())
coords, target = torch.rand(65536, 2), torch.rand(65536, 1)

def fewest_faults_per_step(warmup, steps):
    # the fewest minor page faults of one step among `steps` steps after `warmup` steps
    counts = []
    for i in range(warmup + steps):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        loss = (model(coords) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= warmup:
            counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return min(counts)

untuned = fewest_faults_per_step(1, 1)
applied = tune_allocator()  # late on purpose: it must work after torch has allocated
# the heap grows over the first steps (a few 64 MB buffers faulted in once), then steps reuse it
print(applied, untuned, fewest_faults_per_step(2, 3))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator tuning is Linux-only")
def test_tune_allocator_removes_the_page_faults_of_large_buffers():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | {"OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT], env=env, capture_output=True, text=True, check=True)
    applied, untuned, tuned = out.stdout.split()
    if applied != "True":
        pytest.skip("mallopt unavailable (not glibc)")
    # glibc maps every 64 MB activation buffer afresh each step: one fault per 4 KiB page (~80k per step here);
    # tuned, a step reuses the heap (0 faults in steady state)
    assert float(untuned) > 1000
    assert float(tuned) < float(untuned) / 20


def test_fit_speed_benchmark_table(tmp_path):
    """The fit benchmark's smoke run (its worker processes, the table and the JSON) with our row, the matmul bound
    and the sine floor."""
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fit_speed.py"
    out = tmp_path / "fit_speed.json"
    run = subprocess.run([sys.executable, str(script), "--quick", "--size", "32", "--only", "hypersiren", "matmul bound",
                          "matmul + sine floor", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"hypersiren", "matmul bound", "matmul + sine floor"}
    assert "| matmul + sine floor |" in run.stdout and "hypersiren / matmul bound:" in run.stdout
    assert results["hypersiren"]["psnr"]  # the trainer reports its fit
    assert all(r["sec_per_step_median"] > 0 for r in results.values())


def test_prior_benchmarks_tables(tmp_path, capsys):
    """The face-prior benchmarks' smoke runs: the training step table (the paper's hypernetwork beside the default
    basis prior) and the completion latency table, with their JSON."""
    import json
    import runpy
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "benchmarks"
    steps = runpy.run_path(str(scripts / "prior_speed.py"), run_name="prior_speed")
    rows = ["paper: full hypernet, all pixels", "basis prior (hypersiren's default), all pixels"]
    assert steps["main"](["--quick", "--minutes", "0", "--configs", *rows, "--out", str(tmp_path / "steps")]) == 0
    speed = json.loads((tmp_path / "steps" / "results.json").read_text())["step_time"]
    assert set(speed) == set(rows) and all(row["sec_per_step"] > 0 for row in speed.values())
    assert speed[rows[1]]["params"] < speed[rows[0]]["params"]

    latency = runpy.run_path(str(scripts / "complete_speed.py"), run_name="complete_speed")
    assert latency["main"](["--quick", "--out", str(tmp_path / "latency")]) == 0
    results = json.loads((tmp_path / "latency" / "results.json").read_text())["latency"]
    assert set(results) == {"basis (hypersiren's default)", "paper: full hypernet", "light hypernet"}
    assert all(set(rows) == {"32", "64"} and all(r["ms"] > 0 for r in rows.values()) for rows in results.values())
    assert "| basis (hypersiren's default) |" in capsys.readouterr().out
