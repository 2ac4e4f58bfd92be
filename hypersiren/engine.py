"""The one training loop every zoo entry and prior shares.

``build_task(Task, config)`` checks the run directory and builds the task (reading and checking its inputs);
``train(task)`` runs: seed -> optimiser -> (resume) -> ``train_step`` per step (batch, loss, backward, clip,
Adam) with a progress bar, TensorBoard scalars and the task's summaries, periodic atomic checkpoints (and one on
SIGINT/SIGTERM), a NaN/Inf guard, then writes ``metrics.json`` and the task's rendered outputs.

The run directory (``hypersiren.run_dir``: one run per directory) gets ``config.json`` (the task's kind and
config: everything needed to rerun), ``metrics.json``, ``checkpoint.safetensors``, TensorBoard events and what
the task renders.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hypersiren.checkpoint import load_checkpoint, save_checkpoint
from hypersiren.config import Config, non_negative_float, non_negative_int, option, positive_float, positive_int
from hypersiren.errors import CheckpointError, InputError, TrainingDiverged
from hypersiren.io import check_output_dir, write_json
from hypersiren.run_dir import CHECKPOINT, check_run_dir, prepare_run_dir, summary_writer
from hypersiren.runtime import (Interrupt, all_agree, distributed, resolve_device, rng_state, seed_everything,
                                set_rng_state, tune_allocator)

if TYPE_CHECKING:
    from hypersiren.tasks.base import Task, TaskConfig


@dataclass(frozen=True, kw_only=True)
class EngineConfig(Config):
    """How the engine trains; every task's config holds one, with the task's own defaults (e.g. ``steps=500``)."""

    title = "training"

    steps: int = option(1000, "optimisation steps", check=positive_int)
    lr: float = option(1e-4, "Adam learning rate", check=positive_float)
    seed: int = option(0, "random seed; a CPU run repeats exactly", check=non_negative_int)
    summary_every: int = option(100, "TensorBoard pictures and eval metrics every N steps, 0 = only at the end",
                                check=non_negative_int)
    checkpoint_every: int = option(0, "checkpoint every N steps, 0 = at the end and on interruption",
                                   check=non_negative_int)
    clip_grad: float = option(0.0, "gradient-norm clipping, 0 = off", check=non_negative_float)
    on_nan: str = option("stop", "on a NaN/Inf loss: stop keeping the last checkpoint, or skip the step",
                         choices=("stop", "skip"))
    amp: bool = option(False, "bf16 autocast on CUDA")
    compile: bool = option(False, "torch.compile the network")
    resume: bool = option(False, "continue the run in --out from its checkpoint (from step 0 if it has none yet)",
                          exclusive="run directory")
    overwrite: bool = option(False, "start again in an --out holding an earlier run (deletes its checkpoint, metrics "
                                    "and TensorBoard events); without --resume or --overwrite such a directory is "
                                    "refused", exclusive="run directory")
    minutes: float = option(0.0, "wall-clock budget: stop and checkpoint after this many minutes, 0 = off",
                            check=non_negative_float)
    progress: bool = option(True, "hide the progress bar")

    def __post_init__(self):
        super().__post_init__()
        if self.resume and self.overwrite:
            raise InputError("--resume and --overwrite exclude each other: continue the run in the directory, or "
                             "start again")


def build_task(task_cls: type[Task], config: TaskConfig) -> Task:
    """The task ``config`` describes, on its device and seeded: its inputs are read and checked, and the run
    directory ``config.out`` is checked, before anything is written."""
    out = check_output_dir(config.out)
    check_run_dir(out, config.engine)
    device = resolve_device(config.device)
    seed_everything(config.engine.seed)
    return task_cls(config, device)


def make_optimizer(parameters: list, lr: float) -> torch.optim.Adam:
    """Adam; the fused kernel (one pass over each tensor instead of a dozen) where torch supports it on the device,
    which for large models (the 52.8M-parameter hypernetwork) halves the step time on CPU."""
    parameters = list(parameters)
    device = parameters[0].device.type if parameters else "cpu"
    if device in ("cpu", "cuda"):
        try:
            return torch.optim.Adam(parameters, lr=lr, fused=True)
        except (RuntimeError, TypeError):
            pass
    return torch.optim.Adam(parameters, lr=lr)


def train_step(task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
               clip_grad: float = 0.0, amp: bool = False) -> tuple[torch.Tensor, dict]:
    """One optimisation step: the task's batch for ``step``, its loss on ``model`` (``task.model`` or its
    compiled/DDP wrapper), backward, gradient clipping (0 = off) and the optimiser step. A NaN/Inf loss takes no
    step; it is returned like any loss (with the logged scalars) and the caller decides."""
    batch = task.batch(step)
    with torch.autocast(task.device.type, dtype=torch.bfloat16, enabled=amp):
        loss, logs = task.loss(model, batch)
    optimizer.zero_grad(set_to_none=True)
    if torch.isfinite(loss):
        loss.backward()
        if clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(task.parameters(), clip_grad)
        optimizer.step()
    return loss, logs


def train(task: Task, options: EngineConfig | None = None, out_dir: str | Path | None = None,
          config: dict | None = None) -> dict[str, float]:
    """Train ``task.model`` and write the run directory; returns the final metrics.

    options, out_dir, config: the engine config, run directory and stored configuration (``config.json`` and
    checkpoints), by default ``task.config.engine``, ``task.config.out`` and ``task.config.to_dict()``.
    Raises TrainingDiverged on a NaN/Inf loss with ``on_nan="stop"``; KeyboardInterrupt after checkpointing
    when interrupted by SIGINT/SIGTERM.

    Under ``torchrun`` (an initialised process group) the model is wrapped in DistributedDataParallel, each
    rank draws its own batches (seed + rank) and rank 0 alone writes the run directory; other ranks return {}.
    On resume every rank restores rank 0's RNG state and then ranks > 0 reseed with seed + rank + step.
    """
    options = options or task.config.engine
    config = task.config.to_dict() if config is None else dict(config)
    out_dir = out_dir if out_dir is not None else task.config.out
    rank, world = distributed()
    out_dir = prepare_run_dir(out_dir, options, rank)
    checkpoint_path = out_dir / CHECKPOINT
    tune_allocator()
    seed_everything(options.seed + rank)
    optimizer = make_optimizer(task.parameters(), options.lr)
    start = 0
    if options.resume and checkpoint_path.exists():
        state, _ = load_checkpoint(checkpoint_path, kind=task.kind)
        try:
            task.model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"cannot resume from {checkpoint_path}: it was written by another configuration ({err})") from None
        set_rng_state(state["rng"])
        start = int(state["step"])
        if rank:
            seed_everything(options.seed + rank + start)
    if rank == 0:
        write_json(out_dir / "config.json", {"kind": task.kind, **config, "engine": options.to_dict()})

    model = task.model
    if options.compile:
        model.compile()
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[task.device.index] if task.device.type == "cuda" else None)
    amp = options.amp and task.device.type == "cuda"
    # events are logged at step + 1: a resumed run hides what the interrupted one logged after its checkpoint
    writer = summary_writer(out_dir, rank, purge_step=start + 1 if options.resume else None)
    meta = {"kind": task.kind, "model": task.model_meta(), "config": config, "options": options.to_dict()}

    def checkpoint(step: int, final: bool = False) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in task.parameters()):  # e.g. one step with a huge lr
            raise TrainingDiverged(f"the weights became NaN or Inf by step {step}; the last good checkpoint (if any) "
                                   f"is kept at {checkpoint_path}")
        if rank == 0:
            state = {"model": task.model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                     "rng": rng_state()}
            if final:  # e.g. a density over the trained prior's latents, computed once
                state.update(task.final_state())
            save_checkpoint(checkpoint_path, state, meta)

    from tqdm.auto import tqdm

    step_time, timed_steps, last_loss = 0.0, 0, None
    started, out_of_time, done = time.perf_counter(), False, start
    bar = tqdm(range(start, options.steps), initial=start, total=options.steps, disable=not options.progress,
               desc=task.name, dynamic_ncols=True)
    try:
        with Interrupt() as interrupt:
            for step in bar:
                tick = time.perf_counter()
                loss, logs = train_step(task, model, optimizer, step, options.clip_grad, amp)
                if not torch.isfinite(loss):
                    if options.on_nan == "skip":
                        continue
                    raise TrainingDiverged(f"loss became {loss.item()} at step {step}; the last good checkpoint "
                                           f"(if any) is kept at {checkpoint_path}")
                if task.device.type == "cuda":
                    torch.cuda.synchronize(task.device)
                if step > start:  # the first step pays one-off costs (allocation, compilation)
                    step_time += time.perf_counter() - tick
                    timed_steps += 1
                done = step + 1
                scalars = {"loss": float(loss.detach()), **{k: float(v) for k, v in logs.items()}}
                for key, value in scalars.items():
                    writer.add_scalar(f"train/{key}", value, done)
                last_loss = scalars["loss"]
                bar.set_postfix(loss=f"{last_loss:.3g}", refresh=False)
                if rank == 0 and options.summary_every and done % options.summary_every == 0 and done < options.steps:
                    _evaluate(task, writer, done)
                if options.checkpoint_every and done % options.checkpoint_every == 0:
                    checkpoint(done)
                if interrupt.signum is not None:
                    checkpoint(done)
                    raise KeyboardInterrupt(f"interrupted at step {done}; checkpoint saved to {checkpoint_path}")
                if options.minutes and all_agree(time.perf_counter() - started > 60 * options.minutes, world):
                    out_of_time = True
                    break
        done = done if out_of_time else max(start, options.steps)
        checkpoint(done, final=True)
        if rank:
            return {}
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


def restore_task(task_cls: type[Task], run_dir: str | Path, device: torch.device | str = "cpu") -> Task:
    """Rebuild a trained task from its run directory: the configuration and weights stored in the checkpoint."""
    state, meta = load_checkpoint(Path(run_dir) / CHECKPOINT, kind=task_cls.kind)
    try:
        config = task_cls.Config.from_dict(meta["config"])
    except (InputError, KeyError) as err:
        raise CheckpointError(f"checkpoint in {run_dir} holds a configuration this hypersiren cannot read: {err}") from None
    task = task_cls(config, torch.device(device))
    try:
        task.model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"checkpoint in {run_dir} does not match its own configuration ({err})") from None
    task.model.eval()
    return task


def _evaluate(task: Task, writer, step: int) -> dict[str, float]:
    metrics = {k: float(v) for k, v in task.metrics().items()}
    for key, value in metrics.items():
        writer.add_scalar(f"eval/{key}", value, step)
    task.summaries(writer, step)
    writer.flush()
    return metrics
