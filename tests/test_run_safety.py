"""A run never loses a user's work and never hangs: one process per run directory, only its own temporary files
removed, resuming only with the stored options, a full disk reported in one line keeping the last checkpoint, and
``--on-nan skip`` runs that still stop on signals, ``--minutes`` and ``--steps``."""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time

import pytest
import torch

import hypersiren.io
from hypersiren.checkpoint import load_checkpoint
from hypersiren.engine import MAX_SKIPPED_IN_A_ROW, train
from hypersiren.errors import TrainingDiverged
from hypersiren.run_dir import changed_options
from hypersiren.tasks.base import TaskConfig
from tests.conftest import TINY_NET
from tests.test_engine import ToyFit, options

FIT = ["fit", "image", "camera", "--size", "8", "--summary-every", "0", "--device", "cpu", *TINY_NET]


def one_line_error(code: int, err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hypersiren: error:"), err
    assert all(word in lines[0] for word in words), err


def contents(run) -> dict:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


# --- one run per directory -------------------------------------------------------------------------------------


def test_a_second_run_in_a_busy_directory_is_refused_and_the_lock_dies_with_its_process(cli, tmp_path):
    """Two runs given the same --out at once: the second refuses in one line and writes nothing; once the first
    process is killed (kill -9: no clean-up) the directory is free again."""
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "hypersiren.cli", *FIT, "--steps", "1000000", "--out", str(run)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (run / "config.json").exists():  # written once the first run holds the directory
            assert first.poll() is None and time.time() < deadline, "the first run did not start"
            time.sleep(0.2)
        before = contents(run)
        for extra in ([], ["--resume"], ["--overwrite"]):
            code, out, err = cli(*FIT, "--steps", "2", "--lr", "1e-3", *extra, "--out", run)
            one_line_error(code, err, "in use by another hypersiren run", f"process {first.pid}")
        after = contents(run)
        new = set(after) - set(before)  # only the first run's own event log may have appeared since
        assert all(name.startswith("events.out.tfevents.") and f".{first.pid}." in name for name in new), new
        for name, written in before.items():  # the first run only appended (its event log) since
            assert after[name].startswith(written), f"{name} of the first run was rewritten"
        assert after["config.json"] == before["config.json"]
    finally:
        first.kill()
        first.wait()
    assert cli(*FIT, "--steps", "2", "--overwrite", "--out", run)[0] == 0


def test_only_hypersiren_temporary_files_are_removed(cli, tmp_path):
    run = tmp_path / "run"
    assert cli(*FIT, "--steps", "2", "--out", run)[0] == 0
    mine = run / ".draft.tmp"  # the user's own file
    mine.write_text("keep me")
    stale = run / ".hypersiren-checkpoint.safetensors.x1y2z3.tmp"  # a write of a killed hypersiren
    stale.write_bytes(b"half a checkpoint")
    assert cli(*FIT, "--steps", "3", "--resume", "--out", run)[0] == 0
    assert mine.read_text() == "keep me" and not stale.exists()


# --- resuming with the stored options -------------------------------------------------------------------------


@pytest.mark.parametrize("changed, named", [(["--lr", "1e-3"], "--lr 0.0001 -> 0.001"),
                                            (["--hidden-features", "8"], "--hidden-features 16 -> 8"),
                                            (["--seed", "1"], "--seed 0 -> 1"),
                                            (["--size", "9"], "--size 8 -> 9")])
def test_resume_with_other_training_options_is_refused(cli, tmp_path, changed, named):
    run = tmp_path / "run"
    assert cli(*FIT, "--steps", "2", "--out", run)[0] == 0
    before = contents(run)
    code, _, err = cli(*FIT, "--steps", "3", *changed, "--resume", "--out", run)
    one_line_error(code, err, "--resume", named, "--steps", "--render-size")  # names what may change, too
    assert contents(run) == before  # config.json is not rewritten


def test_resume_may_change_the_length_logging_and_outputs_of_a_run(cli, tmp_path):
    run = tmp_path / "run"
    assert cli(*FIT, "--steps", "2", "--out", run)[0] == 0
    assert cli(*FIT, "--steps", "4", "--summary-every", "2", "--checkpoint-every", "1", "--minutes", "30",
               "--render-size", "12", "--on-nan", "skip", "--resume", "--out", run)[0] == 0
    config = json.loads((run / "config.json").read_text())
    assert config["engine"]["steps"] == 4 and config["render_size"] == 12
    assert load_checkpoint(run / "checkpoint.safetensors")[0]["step"] == 4


def test_changed_options_compares_nested_configs_and_the_chosen_method():
    from hypersiren.priors.maml import MAML
    from hypersiren.tasks.face_prior import FacePrior

    stored = FacePrior.Config(engine={"steps": 5}).to_dict()
    other = FacePrior.Config(prior=MAML.Config(), resolution=16, engine={"steps": 9, "lr": 1e-3})
    changes = changed_options(stored, other.to_dict(), other)
    assert "method \"basis\" -> \"maml\"" in changes and "--resolution 32 -> 16" in changes
    assert "--lr 0.0003 -> 0.001" in changes and not any("--steps" in c for c in changes)


# --- a full disk ------------------------------------------------------------------------------------------------


def full_disk_after(monkeypatch, name: str, allowed: int = 0) -> None:
    """Writes to temporary files for ``name`` (after ``allowed`` of them succeed) store half their data, then fail
    as on a full disk; every write goes through ``hypersiren.io``'s atomic files."""
    count = [0]

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, attr):
            return getattr(self.f, attr)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def open_(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if f".hypersiren-{name}." in str(path):
            count[0] += 1
            if count[0] > allowed:
                return Full(f)
        return f

    monkeypatch.setattr(hypersiren.io, "open", open_, raising=False)


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(cli, tmp_path, monkeypatch):
    run = tmp_path / "run"
    full_disk_after(monkeypatch, "checkpoint.safetensors", allowed=1)  # the checkpoint at step 2 is written
    code, out, err = cli(*FIT, "--steps", "6", "--checkpoint-every", "2", "--out", run)
    one_line_error(code, err, "no space left", "checkpoint.safetensors", "--resume")
    assert load_checkpoint(run / "checkpoint.safetensors")[0]["step"] == 2  # intact, and the last good one
    assert not list(run.glob(".hypersiren-*")) and not (run / "metrics.json").exists()
    monkeypatch.undo()
    assert cli(*FIT, "--steps", "6", "--checkpoint-every", "2", "--resume", "--out", run)[0] == 0


def test_a_full_disk_while_writing_outputs_leaves_no_half_file(cli, tmp_path, monkeypatch):
    run = tmp_path / "run"
    full_disk_after(monkeypatch, "fit.png")
    code, _, err = cli(*FIT, "--steps", "2", "--out", run)
    one_line_error(code, err, "no space left", "fit.png")
    assert not (run / "fit.png").exists() and not list(run.glob(".hypersiren-*"))
    assert load_checkpoint(run / "checkpoint.safetensors")[0]["step"] == 2
    monkeypatch.undo()
    assert cli(*FIT, "--steps", "2", "--resume", "--out", run)[0] == 0 and (run / "fit.png").is_file()


def test_a_full_disk_under_tensorboard_is_one_line(cli, tmp_path, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(SummaryWriter, "add_scalar", full)
    code, _, err = cli(*FIT, "--steps", "2", "--out", tmp_path / "run")
    one_line_error(code, err, "no space left", str(tmp_path / "run"))


def test_a_real_file_size_limit_is_reported_in_one_line(tmp_path):
    """The operating system's own error (RLIMIT_FSIZE: EFBIG), in a process that cannot write files over 16 KB."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))

    run = tmp_path / "run"
    argv = [*FIT, "--steps", "2", "--hidden-features", "64", "--out", str(run)]  # a ~100 KB checkpoint
    done = subprocess.run([sys.executable, "-m", "hypersiren.cli", *argv], preexec_fn=limit, capture_output=True,
                          text=True, timeout=300)
    one_line_error(done.returncode, done.stderr, "no space left", "checkpoint.safetensors", "File too large")
    assert not (run / "checkpoint.safetensors").exists() and not list(run.glob(".hypersiren-*"))


# --- --on-nan skip still stops ----------------------------------------------------------------------------------


class NaNFit(ToyFit):
    """Every loss is NaN: with --on-nan skip every step is skipped."""

    def loss(self, model, batch):
        loss, logs = super().loss(model, batch)
        return loss * float("nan"), logs


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_run_skipping_every_step_stops_on_a_signal(tmp_path, sig):
    def interrupt(step):
        if step == 2:
            os.kill(os.getpid(), sig)

    with pytest.raises(KeyboardInterrupt, match=r"interrupted at step 3 \(3 steps skipped"):
        train(NaNFit(TaskConfig(), hook=interrupt), options(on_nan="skip", steps=1000), tmp_path / "run")
    state, _ = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert state["step"] == 3 and all(torch.isfinite(t).all() for t in state["model"].values())


def test_a_run_skipping_every_step_stops_on_minutes_and_steps(tmp_path, capsys):
    metrics = train(NaNFit(TaskConfig()), options(on_nan="skip", steps=1000, minutes=1e-9), tmp_path / "minutes")
    assert metrics["steps"] == 1 and metrics["skipped_steps"] == 1
    metrics = train(NaNFit(TaskConfig()), options(on_nan="skip", steps=5), tmp_path / "steps")
    assert metrics["steps"] == 5 and metrics["skipped_steps"] == 5 and "final_loss" not in metrics
    assert "skipped 5 of the 5 steps" in capsys.readouterr().err


def test_too_many_skipped_steps_in_a_row_stop_the_run(tmp_path):
    with pytest.raises(TrainingDiverged, match=f"NaN or Inf at {MAX_SKIPPED_IN_A_ROW} steps in a row"):
        train(NaNFit(TaskConfig()), options(on_nan="skip", steps=MAX_SKIPPED_IN_A_ROW + 5), tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_sigterm_stops_a_skipping_cli_run_with_status_130(cli, tmp_path, monkeypatch):
    from hypersiren.tasks.signal_fit import SignalFit

    real, calls = SignalFit.loss, [0]

    def nan_loss(self, model, batch):
        calls[0] += 1
        if calls[0] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        loss, logs = real(self, model, batch)
        return loss * float("nan"), logs

    monkeypatch.setattr(SignalFit, "loss", nan_loss)
    code, _, err = cli(*FIT, "--steps", "100000", "--on-nan", "skip", "--out", tmp_path / "run")
    assert code == 130 and "interrupted at step 2 (2 steps skipped" in err, err
    assert load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")[0]["step"] == 2
