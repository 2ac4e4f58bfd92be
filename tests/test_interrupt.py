"""Interrupted training loses at most the work since the last checkpoint: a training process is killed with
SIGKILL mid-step and at every stage of a checkpoint write; ``--resume`` then always finds a complete checkpoint and
ends with exactly the weights of an uninterrupted run (CPU).

The kills happen in one helper process that imports torch once and forks a child per scenario; the child patches
the library from outside (no test hooks in library code) and SIGKILLs itself at the chosen point.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hypersiren.checkpoint import load_checkpoint
from tests.conftest import TINY_NET

# 6 steps with a checkpoint every 2: checkpoint writes at steps 2, 4, 6 and the final one at 6.
ARGS = ["fit", "image", "camera", "--size", "16", "--batch-points", "50", "--steps", "6", "--checkpoint-every", "2",
        "--summary-every", "0", "--device", "cpu", "--lr", "1e-3", *TINY_NET]

KILLER = r'''
import contextlib, json, os, signal, sys
import torch
torch.set_num_threads(1)
import hypersiren.checkpoint, hypersiren.tasks.signal_fit
from hypersiren.cli import main


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def arm(mode, n):
    """Patch the library so this process SIGKILLs itself at the n-th event of ``mode``."""
    count = [0]

    def hit():
        count[0] += 1
        return count[0] == n

    if mode == "step":  # inside the n-th loss evaluation (mid-step)
        loss = hypersiren.tasks.signal_fit.SignalFit.loss
        def killing_loss(self, model, batch):
            if hit():
                die()
            return loss(self, model, batch)
        hypersiren.tasks.signal_fit.SignalFit.loss = killing_loss
    elif mode == "torn":  # half of the n-th checkpoint written to its temporary file
        real = hypersiren.checkpoint.atomic_write
        @contextlib.contextmanager
        def torn(path, mode="wb"):
            with real(path, mode) as f:
                if not hit():
                    yield f
                    return
                class Half:
                    def write(self, data):
                        f.write(data[: len(data) // 2])
                        f.flush()
                        os.fsync(f.fileno())
                        die()
                yield Half()
        hypersiren.checkpoint.atomic_write = torn
    else:  # "before-rename" / "after-rename" of the n-th complete checkpoint
        replace = os.replace
        def killing_replace(src, dst, **kw):
            kill = str(dst).endswith("checkpoint.safetensors") and hit()
            if kill and mode == "before-rename":
                die()
            replace(src, dst, **kw)
            if kill:
                die()
        os.replace = killing_replace


plan = json.loads(sys.argv[1])
warm = plan[0][2][:-1] + [plan[0][2][-1] + "-warm-up"]  # one run here first: the children inherit every lazy import
with contextlib.redirect_stdout(open(os.devnull, "w")), contextlib.redirect_stderr(open(os.devnull, "w")):
    main(warm + ["--steps", "1"])
results = []
for mode, n, argv in plan:
    pid = os.fork()
    if pid == 0:
        try:
            sys.stdout = sys.stderr = open(os.devnull, "w")
            arm(mode, n)
            main(argv)
        finally:
            os._exit(3)  # never reached when the kill happened
    _, status = os.waitpid(pid, 0)
    results.append(os.WTERMSIG(status) if os.WIFSIGNALED(status) else -os.WEXITSTATUS(status))
print(json.dumps(results))
'''

# (kill point, n-th event, step of the checkpoint left behind or None)
SCENARIOS = [
    ("step", 4, 2),  # mid-step 4: the checkpoint of step 2 remains
    ("torn", 1, None),  # the first checkpoint torn: none yet, resume starts from step 0
    ("torn", 2, 2),  # the checkpoint of step 4 torn: step 2's remains
    ("before-rename", 2, 2),  # step 4's fully written but not renamed: step 2's remains
    ("after-rename", 2, 4),  # killed right after step 4's rename
    ("after-rename", 4, 6),  # killed after the final checkpoint, before metrics and pictures
]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoint.safetensors")[0]["model"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_anywhere_then_resume_matches_an_uninterrupted_run(cli, tmp_path):
    reference = tmp_path / "reference"
    assert cli(*ARGS, "--out", reference)[0] == 0
    expected = _weights(reference)

    runs = [tmp_path / f"{mode}-{n}" for mode, n, _ in SCENARIOS]
    plan = [[mode, n, [str(a) for a in ARGS] + ["--out", str(run)]] for (mode, n, _), run in zip(SCENARIOS, runs)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", KILLER, json.dumps(plan)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [signal.SIGKILL] * len(SCENARIOS)

    for (mode, n, step), run in zip(SCENARIOS, runs):
        checkpoint = run / "checkpoint.safetensors"
        if step is None:
            assert not checkpoint.exists()
        else:
            state, _ = load_checkpoint(checkpoint)  # complete and valid, whatever the kill point
            assert state["step"] == step, (mode, n)
        assert not (run / "metrics.json").exists()
        if mode == "torn":
            assert list(run.glob(".*.tmp"))  # the torn temporary file the kill left behind...

        code, _, err = cli(*ARGS, "--resume", "--out", run)
        assert code == 0, (mode, n, err)
        assert ("starting from step 0" in err) == (step is None)
        assert not list(run.glob(".*.tmp"))  # ...is removed on resume
        assert json.loads((run / "metrics.json").read_text())["steps"] == 6
        resumed = _weights(run)
        assert set(resumed) == set(expected)
        for name, tensor in expected.items():
            assert torch.equal(resumed[name], tensor), (mode, n, name)


def test_resumed_run_logs_each_step_once(cli, tmp_path):
    """TensorBoard events an interrupted run logged after its last checkpoint are purged on resume."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert cli(*ARGS, "--steps", "4", "--checkpoint-every", "0", "--out", run)[0] == 0
    # pretend the run went on to step 4 but its last checkpoint is the one of step 2
    assert cli(*ARGS, "--steps", "2", "--checkpoint-every", "0", "--overwrite", "--out", tmp_path / "two")[0] == 0
    (run / "checkpoint.safetensors").write_bytes((tmp_path / "two" / "checkpoint.safetensors").read_bytes())
    assert cli(*ARGS, "--resume", "--out", run)[0] == 0
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]


def test_a_run_directory_holds_one_run(cli, tmp_path):
    """Reusing a run directory needs --resume (continue) or --overwrite (start again, old events removed)."""
    run = tmp_path / "run"
    assert cli(*ARGS, "--steps", "2", "--out", run)[0] == 0
    before = sorted(p.name for p in run.iterdir())
    code, out, err = cli(*ARGS, "--out", run)
    assert code == 2 and "already holds an earlier run" in err and "--resume" in err and "--overwrite" in err
    assert sorted(p.name for p in run.iterdir()) == before  # nothing touched
    code, _, err = cli(*ARGS, "--resume", "--overwrite", "--out", run)
    assert code == 2 and "not allowed with" in err
    old_events = set(run.glob("events.out.tfevents.*"))
    assert cli(*ARGS, "--steps", "3", "--overwrite", "--out", run)[0] == 0
    assert not old_events & set(run.glob("events.out.tfevents.*"))
    assert load_checkpoint(run / "checkpoint.safetensors")[0]["step"] == 3


def test_resume_without_a_checkpoint_says_so(cli, tmp_path):
    code, _, err = cli(*ARGS, "--steps", "2", "--resume", "--out", tmp_path / "new")
    assert code == 0 and "note: --resume: no checkpoint" in err and "starting from step 0" in err
