"""The shared training loop: seeded repeatability, resume == uninterrupted run, interruption, NaN guard."""
from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from torch import nn

from hypersiren.checkpoint import load_checkpoint
from hypersiren.engine import CHECKPOINT, EngineConfig, train
from hypersiren.errors import CheckpointError, TrainingDiverged
from hypersiren.nn import Siren
from hypersiren.tasks.base import Task, TaskConfig


class ToyFit(Task):
    """Fit sin(3 x) on random minibatches (exercises the RNG the engine must save and restore)."""

    name = "toy"
    kind = "fit/toy"
    description = "toy regression"

    def __init__(self, config, device=torch.device("cpu"), hook=None):
        super().__init__(config, device)
        self.model = Siren(1, 1, hidden_features=8, hidden_layers=1)
        self.hook = hook

    def batch(self, step):
        x = torch.rand(16, 1) * 2 - 1
        return x, torch.sin(3 * x)

    def loss(self, model, batch):
        x, y = batch
        if self.hook:
            self.hook(self._step_count)
        self._step_count += 1
        mse = torch.mean((model(x) - y) ** 2)
        return mse, {"mse": mse.detach()}

    _step_count = 0

    def metrics(self):
        with torch.no_grad():
            x = torch.linspace(-1, 1, 64)[:, None]
            return {"mse": float(torch.mean((self.model(x) - torch.sin(3 * x)) ** 2))}


def options(**kw) -> EngineConfig:
    return EngineConfig(**{"steps": 6, "lr": 1e-3, "seed": 3, "summary_every": 0, "progress": False, **kw})


def fresh_task(hook=None) -> ToyFit:
    torch.manual_seed(11)
    return ToyFit(TaskConfig(), hook=hook)


def params(task: Task) -> list[torch.Tensor]:
    return [p.detach().clone() for p in task.model.parameters()]


def assert_equal_params(a, b):
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_run_directory_contents(tmp_path):
    metrics = train(fresh_task(), options(), tmp_path / "run", {"task": "toy"})
    run = tmp_path / "run"
    stored = json.loads((run / "metrics.json").read_text())
    assert stored["steps"] == 6 and stored["params"] == sum(p.numel() for p in Siren(1, 1, 8, 1).parameters())
    assert stored["sec_per_step"] > 0 and "final_loss" in stored and stored["mse"] == metrics["mse"]
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "toy" and config["engine"]["steps"] == 6 and config["engine"]["seed"] == 3
    assert list(run.glob("events.out.tfevents.*"))
    state, meta = load_checkpoint(run / CHECKPOINT, kind="fit/toy")
    assert state["step"] == 6 and meta["config"] == {"task": "toy"} and meta["model"]["hidden_features"] == 8


def test_seeded_runs_repeat_exactly(tmp_path):
    a, b = fresh_task(), fresh_task()
    train(a, options(), tmp_path / "a")
    train(b, options(), tmp_path / "b")
    assert_equal_params(params(a), params(b))
    c = fresh_task()
    train(c, options(seed=4), tmp_path / "c")  # another seed draws other batches
    assert not all(torch.equal(x, y) for x, y in zip(params(a), params(c)))


def test_resume_equals_uninterrupted_run(tmp_path):
    full = fresh_task()
    train(full, options(), tmp_path / "full")
    train(fresh_task(), options(steps=2), tmp_path / "part")
    resumed = fresh_task()
    torch.manual_seed(999)  # resuming must not depend on the RNG state before train()
    metrics = train(resumed, options(resume=True), tmp_path / "part")
    assert metrics["steps"] == 6
    assert_equal_params(params(full), params(resumed))
    assert resumed._step_count == 4  # only the missing steps ran


def test_sigint_checkpoints_and_resume_completes_identically(tmp_path):
    full = fresh_task()
    train(full, options(), tmp_path / "full")

    def interrupt(step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="interrupted at step 3"):
        train(fresh_task(hook=interrupt), options(), tmp_path / "run")
    assert signal.getsignal(signal.SIGINT) is previous  # handlers restored
    state, _ = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert state["step"] == 3
    resumed = fresh_task()
    train(resumed, options(resume=True), tmp_path / "run")
    assert_equal_params(params(full), params(resumed))


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path):
    class Diverging(ToyFit):
        def loss(self, model, batch):
            loss, logs = super().loss(model, batch)
            return (loss * float("nan") if self._step_count > 3 else loss), logs

    torch.manual_seed(0)
    with pytest.raises(TrainingDiverged, match="step 3"):
        train(Diverging(TaskConfig()), options(checkpoint_every=1), tmp_path / "run")
    state, _ = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert state["step"] == 3
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert not (tmp_path / "run" / "metrics.json").exists()

    torch.manual_seed(0)
    skipping = Diverging(TaskConfig())
    metrics = train(skipping, options(on_nan="skip"), tmp_path / "skip")
    assert metrics["steps"] == 6 and all(torch.isfinite(p).all() for p in skipping.model.parameters())


def test_resume_with_another_architecture_is_a_checkpoint_error(tmp_path):
    train(fresh_task(), options(steps=1), tmp_path / "run")
    other = ToyFit(TaskConfig())
    other.model = nn.Sequential(nn.Linear(1, 4))
    with pytest.raises(CheckpointError, match="another configuration"):
        train(other, options(resume=True), tmp_path / "run")
