"""The one training loop every zoo entry and prior shares.

``build_task(Task, config)`` checks the run directory and builds the task (reading and checking its inputs);
``train(task)`` runs: lock the run directory -> seed -> optimiser -> (resume) -> ``train_step`` per step (batch,
loss, backward, clip, Adam) with a progress bar, TensorBoard scalars and the task's summaries, periodic atomic
checkpoints (and one on SIGINT/SIGTERM), a NaN/Inf guard, then writes ``metrics.json`` and the task's rendered
outputs. A full disk stops it with one line (``NoSpaceError``), keeping the last checkpoint.

TensorBoard (``docs/tensorboard.md``): ``train/<name>`` scalars every step (the loss and the task's logged terms),
``eval/<name>`` scalars and the task's ``summaries`` at each evaluation (``hypersiren.summaries.scalar_tag`` adds
units: ``eval/psnr_dB``); at the end the task's ``final_summaries``, ``train/steps``, ``train/sec_per_step`` and
``model/params``, and the run's configuration for the HParams dashboard (``hypersiren.summaries.write_hparams``).

The run directory (``hypersiren.run_dir``: one run per directory, one process at a time) gets ``config.json``
(the task's kind and config: everything needed to rerun), ``metrics.json``, ``checkpoint.safetensors``
(``hypersiren.training_state``), TensorBoard events and what the task renders.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hypersiren.checkpoint import load_checkpoint
from hypersiren.config import Config, non_negative_float, non_negative_int, option, positive_float, positive_int
from hypersiren.errors import CheckpointError, InputError, TrainingDiverged
from hypersiren.io import check_output_dir, reporting_full_disk, write_json
from hypersiren.run_dir import CHECKPOINT, CONFIG, check_run_dir, run_directory, summary_writer
from hypersiren.runtime import Interrupt, all_agree, distributed, resolve_device, seed_everything, tune_allocator
from hypersiren.summaries import flat_hparams, resumable_names, scalar_tag, write_hparams
from hypersiren.training_state import TrainingState

if TYPE_CHECKING:
    from hypersiren.tasks.base import Task, TaskConfig

MAX_SKIPPED_IN_A_ROW = 100  # with --on-nan skip, this many NaN/Inf losses in a row stop the run


@dataclass(frozen=True, kw_only=True)
class EngineConfig(Config):
    """How the engine trains; every task's config holds one, with the task's own defaults (e.g. ``steps=500``)."""

    title = "training"

    steps: int = option(1000, "optimisation steps", check=positive_int, resumable=True)
    lr: float = option(1e-4, "Adam learning rate", check=positive_float)
    seed: int = option(0, "random seed; a CPU run repeats exactly", check=non_negative_int)
    summary_every: int = option(100, "TensorBoard pictures and eval metrics every N steps, 0 = only at the end",
                                check=non_negative_int, resumable=True)
    checkpoint_every: int = option(0, "checkpoint every N steps, 0 = at the end and on interruption",
                                   check=non_negative_int, resumable=True)
    clip_grad: float = option(0.0, "gradient-norm clipping, 0 = off", check=non_negative_float)
    on_nan: str = option("stop", "on a NaN/Inf loss: stop keeping the last checkpoint, or skip the step (100 "
                                 "skipped in a row stop the run)", choices=("stop", "skip"), resumable=True)
    amp: bool = option(False, "bf16 autocast on CUDA")
    compile: bool = option(False, "torch.compile the network", resumable=True)
    resume: bool = option(False, "continue the run in --out from its checkpoint (from step 0 if it has none yet) "
                                 "with the options in its config.json; only the run's length, logging and outputs "
                                 "may change", exclusive="run directory", resumable=True)
    overwrite: bool = option(False, "start again in an --out holding an earlier run (deletes its checkpoint, metrics "
                                    "and TensorBoard events); without --resume or --overwrite such a directory is "
                                    "refused", exclusive="run directory", resumable=True)
    minutes: float = option(0.0, "wall-clock budget: stop and checkpoint after this many minutes, 0 = off",
                            check=non_negative_float, resumable=True)
    cpu_minutes: float = option(0.0, "CPU-time budget: stop and checkpoint once this process has used this many "
                                     "minutes of CPU time (all its threads; unlike --minutes, unaffected by other "
                                     "programs sharing the machine), 0 = off", check=non_negative_float, resumable=True)
    progress: bool = option(True, "hide the progress bar", resumable=True)

    def __post_init__(self):
        super().__post_init__()
        if self.resume and self.overwrite:
            raise InputError("--resume and --overwrite exclude each other: continue the run in the directory, or "
                             "start again")


def _budget_spent(options: EngineConfig, started: float, cpu_started: float) -> bool:
    """Whether --minutes of wall-clock time or --cpu-minutes of this process's CPU time have passed since
    ``started`` (``time.perf_counter``) and ``cpu_started`` (``time.process_time``)."""
    wall = options.minutes and time.perf_counter() - started > 60 * options.minutes
    cpu = options.cpu_minutes and time.process_time() - cpu_started > 60 * options.cpu_minutes
    return bool(wall or cpu)


def build_task(task_cls: type[Task], config: TaskConfig) -> Task:
    """The task ``config`` describes, on its device and seeded: its inputs are read and checked, and the run
    directory ``config.out`` is checked, before anything is written."""
    out = check_output_dir(config.out)
    check_run_dir(out, config.engine, config.to_dict(), config)
    device = resolve_device(config.device)
    seed_everything(config.engine.seed)
    return task_cls(config, device)


def make_optimizer(parameters: list, lr: float) -> torch.optim.Adam:
    """Adam; the fused kernel (one pass over each tensor instead of a dozen) where torch supports it on the device,
    which for large models (the 52.8M-parameter hypernetwork) halves the step time on CPU. The fused kernel writes
    the weights without telling autograd, so each step marks them changed (their ``_version``), as an unfused step
    does: what is kept while the weights stay the same (a prior's basis on a grid, its calibration) sees the step."""
    parameters = list(parameters)
    device = parameters[0].device.type if parameters else "cpu"
    if device in ("cpu", "cuda"):
        try:
            optimizer = torch.optim.Adam(parameters, lr=lr, fused=True)
        except (RuntimeError, TypeError):
            pass
        else:
            optimizer.register_step_post_hook(_mark_weights_changed)
            return optimizer
    return torch.optim.Adam(parameters, lr=lr)


def _mark_weights_changed(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    from torch.autograd.graph import increment_version

    increment_version([p for group in optimizer.param_groups for p in group["params"]])


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
    Raises TrainingDiverged on a NaN/Inf loss with ``on_nan="stop"`` (with ``"skip"``: after MAX_SKIPPED_IN_A_ROW
    in a row); KeyboardInterrupt after checkpointing when interrupted by SIGINT/SIGTERM; NoSpaceError when the
    disk is full (the last checkpoint is kept); InputError when another run holds ``out_dir``.

    Under ``torchrun`` (an initialised process group) the model is wrapped in DistributedDataParallel, each
    rank draws its own batches (seed + rank) and rank 0 alone writes (and locks) the run directory; other ranks
    return {}. On resume every rank restores rank 0's RNG state and then ranks > 0 reseed with seed + rank + step.
    """
    options = options or task.config.engine
    config = task.config.to_dict() if config is None else dict(config)
    stored = {"kind": task.kind, **config, "engine": options.to_dict()}
    rank, world = distributed()
    with run_directory(task.config.out if out_dir is None else out_dir, options, stored, task.config) as out_dir, \
            reporting_full_disk(out_dir, "free some space, then continue from the last checkpoint with --resume"):
        tune_allocator()
        seed_everything(options.seed + rank)
        optimizer = make_optimizer(task.parameters(), options.lr)
        meta = {"kind": task.kind, "model": task.model_meta(), "config": config, "options": options.to_dict()}
        checkpoint = TrainingState(out_dir / CHECKPOINT, task, optimizer, meta, rank)
        start = checkpoint.resume(options.seed) if options.resume else 0
        if rank == 0:
            write_json(out_dir / CONFIG, stored)

        model = task.model
        if options.compile:
            model.compile()
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(model, device_ids=[task.device.index] if task.device.type == "cuda" else None)
        amp = options.amp and task.device.type == "cuda"
        # events are logged at step + 1: a resumed run hides what the interrupted one logged after its checkpoint
        writer = summary_writer(out_dir, rank, purge_step=start + 1 if options.resume else None)

        from tqdm.auto import tqdm

        step_time, timed_steps, last_loss, skipped, in_a_row = 0.0, 0, None, 0, 0
        started, cpu_started, out_of_time, done = time.perf_counter(), time.process_time(), False, start
        bar = tqdm(range(start, options.steps), initial=start, total=options.steps, disable=not options.progress,
                   desc=task.name, dynamic_ncols=True)
        try:
            with Interrupt() as interrupt:
                for step in bar:
                    tick = time.perf_counter()
                    loss, logs = train_step(task, model, optimizer, step, options.clip_grad, amp)
                    done = step + 1
                    if torch.isfinite(loss):
                        if task.device.type == "cuda":
                            torch.cuda.synchronize(task.device)
                        if step > start:  # the first step pays one-off costs (allocation, compilation)
                            step_time += time.perf_counter() - tick
                            timed_steps += 1
                        in_a_row, last_loss = 0, _log_step(writer, loss, logs, done)
                        bar.set_postfix(loss=f"{last_loss:.3g}", refresh=False)
                    else:  # no step was taken; the checks below still run
                        skipped, in_a_row = skipped + 1, in_a_row + 1
                        _check_skip(options.on_nan, loss, step, in_a_row, checkpoint.kept)
                    if rank == 0 and options.summary_every and done % options.summary_every == 0 and done < options.steps:
                        _evaluate(task, writer, done)
                    if options.checkpoint_every and done % options.checkpoint_every == 0:
                        checkpoint.save(done)
                    if interrupt.signum is not None:
                        checkpoint.save(done)
                        note = f" ({skipped} steps skipped: NaN/Inf loss)" if skipped else ""
                        raise KeyboardInterrupt(f"interrupted at step {done}{note}; checkpoint saved to "
                                                f"{checkpoint.path}")
                    if (options.minutes or options.cpu_minutes) and all_agree(
                            _budget_spent(options, started, cpu_started), world):
                        out_of_time = True
                        break
            done = done if out_of_time else max(start, options.steps)
            checkpoint.save(done, final=True)
            if rank:
                return {}
            if skipped:
                print(f"note: --on-nan skip: skipped {skipped} of the {done - start} steps run (NaN/Inf loss)",
                      file=sys.stderr)
            metrics = _evaluate(task, writer, done)
            task.final_summaries(writer, done)
            metrics.update(steps=done, sec_per_step=step_time / max(timed_steps, 1),
                           params=sum(p.numel() for p in task.model.parameters()))
            if options.on_nan == "skip":
                metrics["skipped_steps"] = skipped
            if last_loss is not None:
                metrics["final_loss"] = last_loss
            _log_run(writer, flat_hparams(stored, exclude=resumable_names(task.config)), metrics, done)
            write_json(out_dir / "metrics.json", metrics)
            task.write_outputs(out_dir)
        finally:
            bar.close()
            writer.close()
            task.close()
    return metrics


def _check_skip(on_nan: str, loss: torch.Tensor, step: int, in_a_row: int, kept: str) -> None:
    """TrainingDiverged for a NaN/Inf loss at ``step``, unless ``on_nan`` is "skip" and fewer than
    MAX_SKIPPED_IN_A_ROW steps in a row were skipped (``kept``: what the error keeps, in words)."""
    if on_nan == "stop":
        raise TrainingDiverged(f"loss became {loss.item()} at step {step}; {kept}")
    if in_a_row >= MAX_SKIPPED_IN_A_ROW:
        raise TrainingDiverged(f"the loss was NaN or Inf at {in_a_row} steps in a row (steps {step + 1 - in_a_row} to "
                               f"{step}) with --on-nan skip; stopping: {kept}")


def _log_step(writer, loss: torch.Tensor, logs: dict, step: int) -> float:
    """Log a step's loss and scalars to TensorBoard; returns the loss."""
    scalars = {"loss": float(loss.detach()), **{k: float(v) for k, v in logs.items()}}
    for key, value in scalars.items():
        writer.add_scalar(scalar_tag("train", key), value, step)
    return scalars["loss"]


def _log_run(writer, hparams: dict, metrics: dict, step: int) -> None:
    """The end of a run in TensorBoard: how far it got, its speed and size as scalars (``train/steps``,
    ``train/sec_per_step``, ``train/skipped_steps`` with --on-nan skip, ``model/params``) and its configuration
    ``hparams`` (``hypersiren.summaries.flat_hparams``) for the HParams dashboard, whose metric columns are the run's
    scalars at their last step (``eval/...``, these)."""
    writer.add_scalar("train/steps", metrics["steps"], step)
    writer.add_scalar("train/sec_per_step", metrics["sec_per_step"], step)
    if "skipped_steps" in metrics:
        writer.add_scalar("train/skipped_steps", metrics["skipped_steps"], step)
    writer.add_scalar("model/params", metrics["params"], step)
    write_hparams(writer, hparams, step)
    writer.flush()


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
        writer.add_scalar(scalar_tag("eval", key), value, step)
    task.summaries(writer, step)
    writer.flush()
    return metrics
