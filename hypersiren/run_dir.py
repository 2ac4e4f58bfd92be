"""Run directories: one run per directory, held by one process at a time, and the TensorBoard writer that logs
into one.

A run directory holds ``config.json``, ``metrics.json``, ``checkpoint.safetensors``, TensorBoard event files,
what the task renders and ``.hypersiren.lock``. A directory holding an earlier run's checkpoint, metrics or events
is refused unless the engine config says ``resume`` (continue it, with the options of its ``config.json`` except
those marked ``resumable``) or ``overwrite`` (start again: those files are deleted). While a run trains it holds
an exclusive ``flock`` on the lock file (released when the process ends, even by ``kill -9``); a second run in the
same directory is refused.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from hypersiren.config import flag_of
from hypersiren.errors import InputError
from hypersiren.io import TEMPORARY_PREFIX, prepare_output_dir
from hypersiren.runtime import distributed

CHECKPOINT = "checkpoint.safetensors"
CONFIG = "config.json"
LOCK = ".hypersiren.lock"
PROJECTOR_CONFIG = "projector_config.pbtxt"  # SummaryWriter.add_embedding's index of the Projector's embeddings


def earlier_run(out_dir: Path) -> list[Path]:
    """Files in ``out_dir`` that an earlier run wrote and a new run would mix with: checkpoint, metrics, events and
    the Projector's embeddings (``projector_config.pbtxt``, which names their folders)."""
    if not out_dir.is_dir():
        return []
    return ([p for p in (out_dir / CHECKPOINT, out_dir / "metrics.json", out_dir / PROJECTOR_CONFIG) if p.exists()]
            + sorted(out_dir.glob("events.out.tfevents.*")))


def check_run_dir(out_dir: str | Path, options, config: Mapping | None = None, schema: Any = None) -> None:
    """Refuse (InputError), before anything is written, a run directory that another process is training in, or
    that holds another run, unless ``options.resume`` or ``options.overwrite`` (an ``EngineConfig``) says what to do
    with it. With ``resume``, ``config`` (what this run's ``config.json`` will hold) must match the stored one
    except for the fields ``schema`` (the config object it came from) marks ``resumable``. Under torchrun only
    rank 0 looks at the lock (it alone holds it)."""
    out_dir = Path(out_dir)
    if (out_dir / LOCK).is_file() and distributed()[0] == 0:
        with contextlib.closing(_Lock(out_dir, create=False)) as probe:
            probe.acquire(shared=True)
    _check_contents(out_dir, options, config, schema)


def _check_contents(out_dir: Path, options, config: Mapping | None, schema: Any) -> None:
    earlier = [] if options.resume or options.overwrite else earlier_run(out_dir)
    if earlier:
        raise InputError(f"run directory {out_dir} already holds an earlier run ({earlier[0].name}); pass --resume to "
                         f"continue it, --overwrite to start again there, or choose another --out")
    if options.resume and config is not None and (out_dir / CONFIG).is_file():
        changes = changed_options(_stored_config(out_dir), config, schema)
        if changes:
            allowed = ", ".join(resumable_flags(schema)) or "none"
            raise InputError(f"--resume: {out_dir} was trained with other options ({'; '.join(changes)}); resume with "
                             f"the options in its {CONFIG}, or start again with --overwrite or another --out (options "
                             f"that may change on resume: {allowed})")


@contextlib.contextmanager
def run_directory(out_dir: str | Path, options, config: Mapping | None = None, schema: Any = None) -> Iterator[Path]:
    """Check, create and hold the run directory for the block: rank 0 (the only one under torchrun) takes its
    lock, checks it again (``check_run_dir``), removes temporary files a killed hypersiren write left and, with
    ``overwrite``, the earlier run. Yields its path."""
    check_run_dir(out_dir, options, config, schema)
    if distributed()[0]:
        yield Path(out_dir)
        return
    out_dir = prepare_output_dir(out_dir)
    with contextlib.closing(_Lock(out_dir, create=True)) as lock:
        lock.acquire(shared=False)
        _check_contents(out_dir, options, config, schema)  # again, now that no other run can change it
        for stale in out_dir.glob(f"{TEMPORARY_PREFIX}*.tmp"):  # an atomic write of a process killed mid-write
            stale.unlink(missing_ok=True)
        if options.overwrite:
            if (out_dir / PROJECTOR_CONFIG).is_file():
                from hypersiren.summaries import prune_embeddings

                prune_embeddings(out_dir)  # the embeddings' folders, then their config
            for path in earlier_run(out_dir):
                path.unlink(missing_ok=True)
        elif options.resume and not (out_dir / CHECKPOINT).exists():
            print(f"note: --resume: no checkpoint in {out_dir} yet; starting from step 0", file=sys.stderr)
        yield out_dir


class _Lock:
    """``flock`` on the run directory's lock file; ``acquire`` refuses in one line if another process holds it."""

    def __init__(self, out_dir: Path, create: bool):
        self.path = out_dir / LOCK
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT if create else os.O_RDONLY, 0o666)

    def acquire(self, shared: bool) -> None:
        try:
            fcntl.flock(self.fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
            raise InputError(f"run directory {self.path.parent} is in use by another hypersiren run"
                             f"{f' (process {holder})' if holder.isdigit() else ''}; wait for it to finish, or choose "
                             "another --out") from None
        if not shared:
            with contextlib.suppress(OSError):  # the holder's process id, for the message above
                os.ftruncate(self.fd, 0)
                os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def close(self) -> None:
        os.close(self.fd)  # releases the lock


def _stored_config(out_dir: Path) -> dict:
    try:
        stored = json.loads((out_dir / CONFIG).read_text())
    except (OSError, ValueError) as err:
        stored = err
    if not isinstance(stored, dict):
        raise InputError(f"--resume: cannot read {out_dir / CONFIG} ({stored}); expected the config.json of the run "
                         "to continue (or start again with --overwrite)")
    return stored


def changed_options(stored: Mapping, config: Mapping, schema: Any = None) -> list[str]:
    """``"--lr 0.0001 -> 0.001"`` for each option in both ``stored`` and ``config`` (nested dicts compared key by
    key) whose value differs, except fields that ``schema`` (the config object ``config`` came from) marks
    ``resumable``."""
    changes = []
    for key, value in config.items():
        if key not in stored:
            continue
        field = _field(schema, key)
        if field is not None and field.metadata.get("resumable"):
            continue
        if isinstance(value, Mapping) and isinstance(stored[key], Mapping):
            changes += changed_options(stored[key], value, getattr(schema, key, None))
        elif value != stored[key]:
            changes.append(f"{key if field is None else _flag(field)} {json.dumps(stored[key])} -> {json.dumps(value)}")
    return changes


def resumable_flags(schema: Any) -> list[str]:
    """The flags of every field marked ``resumable`` in the config object ``schema`` and the configs it holds."""
    if not is_dataclass(schema):
        return []
    return [flag for f in fields(schema) if f.name not in ("resume", "overwrite") for flag in
            ([_flag(f)] if f.metadata.get("resumable") else resumable_flags(getattr(schema, f.name)))]


def _field(schema: Any, name: str):
    return next((f for f in fields(schema) if f.name == name), None) if is_dataclass(schema) else None


def _flag(f) -> str:
    """How the command line names a field (as ``hypersiren.cli.arguments`` does): ``input``, ``--lr``,
    ``--no-progress`` for a flag that turns a default-True option off."""
    if f.metadata.get("positional"):
        return f.name
    return "--no-" + f.name.replace("_", "-") if f.metadata.get("flag") is None and f.default is True else flag_of(f)


def summary_writer(out_dir: Path, rank: int = 0, purge_step: int | None = None):
    """TensorBoard writer of rank 0 (other ranks get one that does nothing); ``purge_step`` hides events an
    interrupted run logged at or after that step, and removes the Projector embeddings it logged from then on (the
    writer goes on with those logged before)."""
    if rank != 0:
        return _NoWriter()
    from torch.utils.tensorboard import SummaryWriter  # imported lazily: tensorboard is heavy

    writer = SummaryWriter(log_dir=str(out_dir), purge_step=purge_step)
    if purge_step is not None and (Path(out_dir) / PROJECTOR_CONFIG).is_file():
        from hypersiren.summaries import prune_embeddings

        kept = prune_embeddings(out_dir, before=purge_step)
        if kept is not None and kept.embeddings:
            writer._projector_config = kept  # add_embedding extends and rewrites this config (torch's own attribute)
    return writer


class _NoWriter:
    """The SummaryWriter of DDP ranks other than 0: every call does nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None
