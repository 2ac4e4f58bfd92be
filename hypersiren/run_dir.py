"""Run directories: one run per directory, and the TensorBoard writer that logs into one.

A run directory holds ``config.json``, ``metrics.json``, ``checkpoint.safetensors``, TensorBoard event files and
what the task renders. A directory holding an earlier run's checkpoint, metrics or events is refused unless the
engine config says ``resume`` (continue it) or ``overwrite`` (start again: those files are deleted).
"""
from __future__ import annotations

import sys
from pathlib import Path

from hypersiren.errors import InputError
from hypersiren.io import prepare_output_dir

CHECKPOINT = "checkpoint.safetensors"


def earlier_run(out_dir: Path) -> list[Path]:
    """Files in ``out_dir`` that an earlier run wrote and a new run would mix with: checkpoint, metrics, events."""
    if not out_dir.is_dir():
        return []
    return [p for p in (out_dir / CHECKPOINT, out_dir / "metrics.json") if p.exists()] + sorted(out_dir.glob("events.out.tfevents.*"))


def check_run_dir(out_dir: str | Path, options) -> None:
    """Refuse, before anything is written, to start a run in a directory holding another run (InputError),
    unless ``options.resume`` or ``options.overwrite`` (an ``EngineConfig``) says what to do with it."""
    earlier = [] if options.resume or options.overwrite else earlier_run(Path(out_dir))
    if earlier:
        raise InputError(f"run directory {out_dir} already holds an earlier run ({earlier[0].name}); pass --resume to "
                         f"continue it, --overwrite to start again there, or choose another --out")


def prepare_run_dir(out_dir: str | Path, options, rank: int = 0) -> Path:
    """Check and create the run directory; on rank 0 remove half-written files of a killed process and, with
    ``overwrite``, the earlier run. Returns its path."""
    check_run_dir(out_dir, options)
    out_dir = prepare_output_dir(out_dir)
    if rank == 0:
        for stale in out_dir.glob(".*.tmp"):  # an atomic write of a process killed mid-write
            stale.unlink(missing_ok=True)
        if options.overwrite:
            for path in earlier_run(out_dir):
                path.unlink(missing_ok=True)
        elif options.resume and not (out_dir / CHECKPOINT).exists():
            print(f"note: --resume: no checkpoint in {out_dir} yet; starting from step 0", file=sys.stderr)
    return out_dir


def summary_writer(out_dir: Path, rank: int = 0, purge_step: int | None = None):
    """TensorBoard writer of rank 0 (other ranks get one that does nothing); ``purge_step`` hides events an
    interrupted run logged at or after that step."""
    if rank != 0:
        return _NoWriter()
    from torch.utils.tensorboard import SummaryWriter  # imported lazily: tensorboard is heavy

    return SummaryWriter(log_dir=str(out_dir), purge_step=purge_step)


class _NoWriter:
    """The SummaryWriter of DDP ranks other than 0: every call does nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None
