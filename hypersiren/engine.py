"""The one training loop every zoo entry and prior shares.

``train(task, options, out_dir)`` runs: seed -> optimiser -> (resume) -> loop(batch, loss, backward, clip,
step) with a progress bar, TensorBoard scalars and the task's summaries, periodic atomic checkpoints (and one on
SIGINT/SIGTERM), a NaN/Inf guard, then writes ``metrics.json`` and the task's rendered outputs.

Run directory: ``config.json`` (everything needed to rerun), ``metrics.json``, ``checkpoint.safetensors``,
TensorBoard event files, and what the task renders. One run per directory: a directory holding an earlier run's
checkpoint or TensorBoard events is refused unless ``resume`` (continue it) or ``overwrite`` (start again: its
checkpoint, metrics and events are deleted) is set.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from hypersiren.checkpoint import load_checkpoint, save_checkpoint
from hypersiren.errors import CheckpointError, InputError, TrainingDiverged
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
    overwrite: bool = False  # start again in a directory that holds an earlier run (deletes its checkpoint and events)
    progress: bool = True
    minutes: float = 0.0  # wall-clock budget: stop (and checkpoint) after this many minutes of training (0: off)


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


def _summary_writer(out_dir: Path, rank: int = 0, purge_step: int | None = None):
    """TensorBoard writer of rank 0; ``purge_step`` hides events an interrupted run logged at or after that step."""
    if rank != 0:
        return _NoWriter()
    from torch.utils.tensorboard import SummaryWriter  # imported lazily: tensorboard is heavy

    return SummaryWriter(log_dir=str(out_dir), purge_step=purge_step)


def _earlier_run(out_dir: Path) -> list[Path]:
    """Files in ``out_dir`` that an earlier run wrote and a new run would mix with: checkpoint, metrics, events."""
    if not out_dir.is_dir():
        return []
    return [p for p in (out_dir / CHECKPOINT, out_dir / "metrics.json") if p.exists()] + sorted(out_dir.glob("events.out.tfevents.*"))


def check_run_dir(out_dir: str | Path, options: TrainOptions) -> None:
    """Refuse, before anything is written, to start a run in a directory holding another run (InputError),
    unless ``options.resume`` or ``options.overwrite`` says what to do with it."""
    if options.resume and options.overwrite:
        raise InputError("--resume and --overwrite exclude each other: continue the run in the directory, or start again")
    if options.resume or options.overwrite:
        return
    earlier = _earlier_run(Path(out_dir))
    if earlier:
        raise InputError(f"run directory {out_dir} already holds an earlier run ({earlier[0].name}); pass --resume to "
                         f"continue it, --overwrite to start again there, or choose another --out")


class _NoWriter:
    """The SummaryWriter of DDP ranks other than 0: every call does nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _distributed() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed process group (torchrun), else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_agree(flag: bool, world: int) -> bool:
    """Rank 0's decision, shared with every rank (so all ranks stop at the same step)."""
    if world == 1:
        return flag
    import torch.distributed as dist

    tensor = torch.tensor([float(flag)])
    dist.broadcast(tensor, 0)
    return bool(tensor.item())


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


def _state(task: Task, optimizer: torch.optim.Optimizer, step: int) -> dict:
    return {"model": task.model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "rng": rng_state()}


def _meta(task: Task, options: TrainOptions, config: dict) -> dict:
    return {"kind": task.kind, "model": task.model_meta(), "config": config, "options": asdict(options)}


def train(task: Task, options: TrainOptions, out_dir: str | Path, config: dict | None = None) -> dict[str, float]:
    """Train ``task.model`` and write the run directory; returns the final metrics.

    config: the full run configuration (task and engine options) stored as ``config.json`` and in checkpoints.
    Raises TrainingDiverged on a NaN/Inf loss with ``on_nan="stop"``; KeyboardInterrupt after checkpointing
    when interrupted by SIGINT/SIGTERM.

    Under ``torchrun`` (an initialised process group) the model is wrapped in DistributedDataParallel, each
    rank draws its own batches (seed + rank) and rank 0 alone writes the run directory; other ranks return {}.
    On resume every rank restores rank 0's RNG state and then ranks > 0 reseed with seed + rank + step.
    """
    config = dict(config or {})
    rank, world = _distributed()
    check_run_dir(out_dir, options)
    out_dir = prepare_output_dir(out_dir)
    checkpoint_path = out_dir / CHECKPOINT
    if rank == 0:
        for stale in out_dir.glob(".*.tmp"):  # an atomic write of a process killed mid-write
            stale.unlink(missing_ok=True)
        if options.overwrite:
            for path in _earlier_run(out_dir):
                path.unlink(missing_ok=True)
        elif options.resume and not checkpoint_path.exists():
            print(f"note: --resume: no checkpoint in {out_dir} yet; starting from step 0", file=sys.stderr)
    tune_allocator()
    seed_everything(options.seed + rank)
    optimizer = make_optimizer(task.parameters(), options.lr)
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
        if rank:
            seed_everything(options.seed + rank + start)
    if rank == 0:
        write_json(out_dir / "config.json", {**config, "engine": asdict(options)})

    model = task.model
    if options.compile:
        model.compile()
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[task.device.index] if task.device.type == "cuda" else None)
    amp = options.amp and task.device.type == "cuda"
    # events are logged at step + 1: a resumed run hides what the interrupted one logged after its checkpoint
    writer = _summary_writer(out_dir, rank, purge_step=start + 1 if options.resume else None)
    meta = _meta(task, options, config)

    def checkpoint(step: int, final: bool = False) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in task.parameters()):  # e.g. one step with a huge lr
            raise TrainingDiverged(f"the weights became NaN or Inf by step {step}; the last good checkpoint (if any) "
                                   f"is kept at {checkpoint_path}")
        if rank == 0:
            state = _state(task, optimizer, step)
            if final:  # e.g. a density over the trained prior's latents, computed once
                state.update(task.final_state())
            save_checkpoint(checkpoint_path, state, meta)

    from tqdm.auto import tqdm

    step_time, timed_steps, last_loss = 0.0, 0, None
    started, out_of_time, done = time.perf_counter(), False, start
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
                if options.minutes and _all_agree(time.perf_counter() - started > 60 * options.minutes, world):
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
    task = task_cls(meta["config"], torch.device(device))
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
