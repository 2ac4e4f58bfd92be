"""The one training loop every zoo entry and prior shares.

``train(task, options, out_dir)`` runs: seed -> optimiser -> (resume) -> loop(batch, loss, backward, clip,
step) with a progress bar, TensorBoard scalars and the task's summaries, periodic atomic checkpoints (and one on
SIGINT/SIGTERM), a NaN/Inf guard, then writes ``metrics.json`` and the task's rendered outputs.

Run directory: ``config.json`` (everything needed to rerun), ``metrics.json``, ``checkpoint.safetensors``,
TensorBoard event files, and what the task renders.
"""
from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from hypersiren.checkpoint import load_checkpoint, save_checkpoint
from hypersiren.errors import CheckpointError, TrainingDiverged
from hypersiren.io import prepare_output_dir, write_json
from hypersiren.runtime import rng_state, seed_everything, set_rng_state, tune_allocator
from hypersiren.tasks.base import Task

CHECKPOINT = "checkpoint.safetensors"


@dataclass
class TrainOptions:
    """Engine options shared by every task (the CLI exposes each one)."""

    steps: int = 1000
    lr: float = 1e-4
    seed: int = 0
    summary_every: int = 100  # TensorBoard pictures and evaluation metrics every N steps (0: only at the end)
    checkpoint_every: int = 0  # checkpoint every N steps (0: only at the end and on interruption)
    clip_grad: float = 0.0  # gradient-norm clipping (0: off)
    on_nan: str = "stop"  # "stop": raise, keeping the last good checkpoint; "skip": skip the step
    amp: bool = False  # bf16 autocast (CUDA only)
    compile: bool = False  # torch.compile the model
    resume: bool = False
    progress: bool = True


class _Interrupt:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step, so it can checkpoint cleanly."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        with contextlib.suppress(ValueError):  # signals only work in the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _summary_writer(out_dir: Path):
    from torch.utils.tensorboard import SummaryWriter  # imported lazily: tensorboard is heavy

    return SummaryWriter(log_dir=str(out_dir))


def _state(task: Task, optimizer: torch.optim.Optimizer, step: int) -> dict:
    return {"model": task.model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "rng": rng_state()}


def _meta(task: Task, options: TrainOptions, config: dict) -> dict:
    return {"kind": task.kind, "model": task.model_meta(), "config": config, "options": asdict(options)}


def train(task: Task, options: TrainOptions, out_dir: str | Path, config: dict | None = None) -> dict[str, float]:
    """Train ``task.model`` and write the run directory; returns the final metrics.

    config: the full run configuration (task and engine options) stored as ``config.json`` and in checkpoints.
    Raises TrainingDiverged on a NaN/Inf loss with ``on_nan="stop"``; KeyboardInterrupt after checkpointing
    when interrupted by SIGINT/SIGTERM.
    """
    config = dict(config or {})
    out_dir = prepare_output_dir(out_dir)
    checkpoint_path = out_dir / CHECKPOINT
    tune_allocator()
    seed_everything(options.seed)
    optimizer = torch.optim.Adam(task.parameters(), lr=options.lr)
    start = 0
    if options.resume and checkpoint_path.exists():
        state, meta = load_checkpoint(checkpoint_path, kind=task.kind)
        try:
            task.model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"cannot resume from {checkpoint_path}: it was written by another configuration ({err})") from None
        set_rng_state(state["rng"])
        start = int(state["step"])
    write_json(out_dir / "config.json", {**config, "engine": asdict(options)})

    model = task.model
    if options.compile:
        model.compile()
    amp = options.amp and task.device.type == "cuda"
    writer = _summary_writer(out_dir)
    meta = _meta(task, options, config)

    def checkpoint(step: int) -> None:
        save_checkpoint(checkpoint_path, _state(task, optimizer, step), meta)

    from tqdm.auto import tqdm

    step_time, timed_steps, last_loss = 0.0, 0, None
    bar = tqdm(range(start, options.steps), initial=start, total=options.steps, disable=not options.progress,
               desc=task.name, dynamic_ncols=True)
    try:
        with _Interrupt() as interrupt:
            for step in bar:
                tick = time.perf_counter()
                batch = task.batch(step)
                with torch.autocast(task.device.type, dtype=torch.bfloat16, enabled=amp):
                    loss, logs = task.loss(model, batch)
                if not torch.isfinite(loss):
                    if options.on_nan == "skip":
                        optimizer.zero_grad(set_to_none=True)
                        continue
                    raise TrainingDiverged(f"loss became {loss.item()} at step {step}; the last good checkpoint "
                                           f"(if any) is kept at {checkpoint_path}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if options.clip_grad > 0:
                    torch.nn.utils.clip_grad_norm_(task.parameters(), options.clip_grad)
                optimizer.step()
                if task.device.type == "cuda":
                    torch.cuda.synchronize(task.device)
                if step > start:  # the first step pays one-off costs (allocation, compilation)
                    step_time += time.perf_counter() - tick
                    timed_steps += 1
                done = step + 1
                scalars = {"loss": float(loss), **{k: float(v) for k, v in logs.items()}}
                for key, value in scalars.items():
                    writer.add_scalar(f"train/{key}", value, done)
                last_loss = scalars["loss"]
                bar.set_postfix(loss=f"{last_loss:.3g}", refresh=False)
                if options.summary_every and done % options.summary_every == 0 and done < options.steps:
                    _evaluate(task, writer, done)
                if options.checkpoint_every and done % options.checkpoint_every == 0:
                    checkpoint(done)
                if interrupt.signum is not None:
                    checkpoint(done)
                    raise KeyboardInterrupt(f"interrupted at step {done}; checkpoint saved to {checkpoint_path}")
        done = max(start, options.steps)
        checkpoint(done)
        metrics = _evaluate(task, writer, done)
        metrics.update(steps=done, sec_per_step=step_time / max(timed_steps, 1),
                       params=sum(p.numel() for p in task.model.parameters()))
        if last_loss is not None:
            metrics["final_loss"] = last_loss
        write_json(out_dir / "metrics.json", metrics)
        task.write_outputs(out_dir)
    finally:
        bar.close()
        writer.close()
    return metrics


def _evaluate(task: Task, writer, step: int) -> dict[str, float]:
    metrics = {k: float(v) for k, v in task.metrics().items()}
    for key, value in metrics.items():
        writer.add_scalar(f"eval/{key}", value, step)
    task.summaries(writer, step)
    writer.flush()
    return metrics
