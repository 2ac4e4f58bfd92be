"""``fit wave``: curriculum, loss terms on exact solutions, the metric, end to end, bad input."""
import json
import math

import numpy as np
import pytest
import torch

from hypersiren.engine import restore_task
from hypersiren.pde import gaussian_pulse
from hypersiren.tasks.wave import Wave
from tests.conftest import TINY_NET
from tests.test_pde import StandingWave

TINY = ["--batch-points", "64", "--initial-points", "16", "--boundary-points", "16", "--reference-size", "33",
        "--frames", "3", *TINY_NET]


def make_task(steps: int | None = None, **options):
    config = dict(batch_points=64, initial_points=16, boundary_points=16, reference_size=33, frames=3,
                  hidden_features=16, hidden_layers=1, engine={"progress": False} | ({"steps": steps} if steps else {}))
    return Wave(Wave.Config(**config | options), torch.device("cpu"))


def test_time_window_grows_over_the_curriculum():
    task = make_task(steps=100, duration=2, curriculum=0.5)
    assert task.time_window(0) == pytest.approx(0.04)
    assert task.time_window(24) == pytest.approx(1.0)
    assert task.time_window(49) == task.time_window(99) == 2.0
    assert make_task(curriculum=0).time_window(0) == 1.0
    batch = task.batch(24)
    assert batch["interior"][:, 0].max() <= 1.0 and batch["initial"][:, 0].abs().max() == 0
    edges = batch["boundary"][:, 1:].abs().max(dim=-1).values
    assert torch.all(edges == 1)


def test_loss_terms_vanish_on_exact_solutions():
    task = make_task(speed=0.7)
    standing = StandingWave(math.pi, 1.5 * math.pi, 0.7)  # zero on the edges, at rest at t = 0
    batch = task.batch(1000)
    _, logs = task.loss(standing, batch)
    assert float(logs["residual"]) < 1e-10 and float(logs["boundary"]) < 1e-10
    assert float(logs["initial"]) > 1e-3  # it is not the pulse

    class Pulse(torch.nn.Module):  # the pulse frozen in time: right initial condition, wrong dynamics
        def forward(self, txy):
            return gaussian_pulse(txy[..., 1:], task.width)[..., None]

    _, logs = task.loss(Pulse(), batch)
    assert float(logs["initial"]) < 1e-12 and float(logs["residual"]) > 1e-4


def test_metric_against_the_reference():
    task = make_task(frames=3)

    class Reference(torch.nn.Module):  # looks the reference up on its own grid
        def forward(self, txy):
            frame = round(float(txy[0, 0]) / task.duration * (len(task.times) - 1))
            return task.reference[frame].reshape(-1, 1)

    task.model = Reference()
    metrics = task.metrics()
    assert metrics["rel_l2"] < 1e-6 and set(metrics) == {"rel_l2", "rel_l2_t0", "rel_l2_t0.5", "rel_l2_t1"}
    torch.testing.assert_close(task.reference[0], gaussian_pulse(task.space, 0.1).reshape(33, 33) *
                               (task.space.abs().max(-1).values < 1).reshape(33, 33))


def test_fit_wave_end_to_end(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = cli("fit", "wave", *TINY, "--steps", "3", "--summary-every", "2", "--out", out)
    assert code == 0 and "rel_l2" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and all(np.isfinite(metrics[k]) for k in ("rel_l2", "rel_l2_t0", "rel_l2_t1"))
    assert json.loads((out / "config.json").read_text())["curriculum"] == 0.5
    assert (out / "frames.png").stat().st_size > 0 and list(out.glob("events.out.tfevents*"))
    task = restore_task(Wave, out)
    assert task.metrics()["rel_l2"] == pytest.approx(metrics["rel_l2"], rel=1e-5)


@pytest.mark.parametrize("args,message", [
    (["--pulse-width", "0.5"], "--pulse-width must be in (0, 0.25]"),
    (["--curriculum", "1.5"], "--curriculum must be a fraction in [0, 1]"),
    (["--frames", "1"], "--frames must be at least 2"),
    (["--reference-size", "8"], "--reference-size must be at least 17"),
    (["--speed", "nan"], "expected a positive number"),
    (["--duration", "inf"], "expected a positive number, got inf"),
])
def test_bad_options_are_one_line_errors(cli, tmp_path, args, message):
    out = tmp_path / "run"
    code, _, err = cli("fit", "wave", *TINY, *args, "--steps", "1", "--out", out)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_eval_entry_point_trains_and_draws_the_figure(tmp_path, capsys):
    from tests.test_helmholtz import load_eval_script

    out = tmp_path / "eval"
    assert load_eval_script("wave").main(["--out", str(out), *TINY, "--steps", "2"]) == 0
    assert (out / "wave_figure.png").stat().st_size > 0 and "rel_l2_t0.5" in capsys.readouterr().out
