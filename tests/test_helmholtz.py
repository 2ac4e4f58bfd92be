"""``fit helmholtz``: metric against the exact field, the loss on exact solutions, end to end, bad input."""
import json

import numpy as np
import pytest
import torch

from hypersiren.engine import restore_task
from hypersiren.pde import PML, hankel_solution
from hypersiren.tasks.helmholtz import Helmholtz
from tests.conftest import TINY_NET
from tests.test_pde import StretchedPlaneWave

TINY = ["--batch-points", "64", "--source-points", "16", "--render-size", "24", *TINY_NET]
TINY_CONFIG = dict(batch_points=64, source_points=16, render_size=24, hidden_features=16, hidden_layers=1,
                   engine={"progress": False})


def make_task(**options):
    return Helmholtz(Helmholtz.Config(**TINY_CONFIG | options), torch.device("cpu"))


class ExactField(torch.nn.Module):
    """The exact PML field as a (Re, Im) module (numpy inside: values only, no derivatives)."""

    def __init__(self, task):
        super().__init__()
        self.task = task

    def forward(self, coords):
        u = hankel_solution(coords.double(), self.task.k, self.task.sigma, self.task.pml)
        return torch.from_numpy(np.stack([u.real, u.imag], -1)).float()


class Zero(torch.nn.Module):
    def forward(self, coords):
        return torch.zeros(*coords.shape[:-1], 2)


def test_metric_is_zero_for_the_exact_field_and_one_for_zero():
    task = make_task()
    task.model = ExactField(task)
    assert task.field().shape == (256, 256)
    mask = task.eval_mask.reshape(256, 256)
    assert not mask[128, 128] and not mask[0, 0] and mask[96, 128]  # source disc and PML are left out
    assert task.relative_error() < 1e-6
    task.model = Zero()
    assert task.relative_error() == pytest.approx(1.0)


def test_loss_vanishes_on_a_solution_of_the_pml_equation():
    task = make_task(wavenumber=20, pml_width=0.4, pml_strength=3)
    model = StretchedPlaneWave(PML(0.4, 3.0), 0.7).float()
    far = torch.rand(256, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    far = far[far.norm(dim=-1) > 10 * task.sigma]  # where the source term is negligible
    loss, logs = task.loss(model, far)
    assert float(loss.detach()) < 1e-7 and float(logs["residual_uniform"]) < 1e-7
    assert float(task.loss(StretchedPlaneWave(PML(0.4, 1.0), 0.7).float(), far)[0].detach()) > 1e-3  # wrong PML fails


def test_batch_samples_the_square_and_the_source_disc():
    task = make_task(batch_points=100, source_points=50, source_sigma=0.02)
    points = task.batch(0)
    assert points.shape == (150, 2)
    assert points.abs().max() <= 1
    assert points[100:].norm(dim=-1).max() <= 5 * 0.02 + 1e-6


def test_importance_weights_give_the_mean_over_the_square():
    torch.manual_seed(0)
    task = make_task(batch_points=20000, source_points=20000, source_sigma=0.02)
    points = task.batch(0)
    weights = task.importance_weights(points)
    assert float((weights * (points**2).sum(-1)).mean()) == pytest.approx(2 / 3, rel=0.02)
    in_disc = (points.norm(dim=-1) < 0.05).float()  # half the source disc's radius
    assert float((weights * in_disc).mean()) == pytest.approx(np.pi * 0.05**2 / 4, rel=0.05)


def test_fit_helmholtz_end_to_end(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = cli("fit", "helmholtz", *TINY, "--steps", "3", "--summary-every", "2", "--out", out)
    assert code == 0 and "rel_l2" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and np.isfinite(metrics["rel_l2"]) and np.isfinite(metrics["residual_rms"])
    config = json.loads((out / "config.json").read_text())
    assert config["velocity"] == "homogeneous" and config["wavenumber"] == 20
    assert (out / "field.png").stat().st_size > 0 and list(out.glob("events.out.tfevents*"))
    task = restore_task(Helmholtz, out)
    assert float(task.metrics()["rel_l2"]) == pytest.approx(metrics["rel_l2"], rel=1e-5)


@pytest.mark.parametrize("velocity", ["square", "circle"])
def test_inclusion_models_run_without_exact_metric(cli, tmp_path, velocity):
    out = tmp_path / velocity
    code, _, _ = cli("fit", "helmholtz", *TINY, "--velocity", velocity, "--steps", "2", "--out", out)
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "rel_l2" not in metrics and np.isfinite(metrics["residual_rms"])


@pytest.mark.parametrize("args,message", [
    (["--velocity", "marmousi"], "invalid choice: 'marmousi'"),
    (["--pml-width", "0.9"], "--pml-width must be in (0, 0.8]"),
    (["--pml-width", "-0.1"], "expected a positive number"),
    (["--source-sigma", "0.1"], "--source-sigma must be in (0, 0.02]"),
    (["--wavenumber", "inf"], "expected a positive number up to 10000, got inf"),
    (["--pml-strength", "0"], "expected a positive number"),
])
def test_bad_options_are_one_line_errors(cli, tmp_path, args, message):
    out = tmp_path / "run"
    code, _, err = cli("fit", "helmholtz", *TINY, *args, "--steps", "1", "--out", out)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_unknown_velocity_model_in_config_is_input_error():
    from hypersiren.errors import InputError

    with pytest.raises(InputError, match="unknown velocity model 'layered'"):
        Helmholtz(Helmholtz.Config(**TINY_CONFIG, velocity="layered"), torch.device("cpu"))


def load_eval_script(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "eval" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"eval_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eval_entry_point_trains_and_draws_the_figure(tmp_path, capsys):
    out = tmp_path / "eval"
    script = load_eval_script("helmholtz")
    assert script.main(["--out", str(out), *TINY, "--steps", "2"]) == 0
    assert (out / "helmholtz_figure.png").stat().st_size > 0 and "rel_l2" in capsys.readouterr().out
    assert script.main(["--out", str(tmp_path / "missing"), "--skip-training"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
