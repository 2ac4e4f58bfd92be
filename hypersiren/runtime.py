"""Process-level settings: seeding, device choice, allocator tuning, signals, distributed ranks."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import os
import random
import signal
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hypersiren.errors import InputError

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_allocator_tuned = False


def tune_allocator() -> bool:
    """Keep freed activation buffers in the process instead of returning them to the OS on every step.

    glibc serves allocations above the mmap threshold (a few MB) with fresh mmap calls and unmaps them on
    free, so every training step page-faults its large activation buffers in again. Raising the mmap and
    trim thresholds makes the heap keep them. Does nothing off glibc or when the user set
    ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` themselves. Returns True if the settings were applied.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if not sys.platform.startswith("linux") or any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 and mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
    _allocator_tuned = ok
    return ok


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a CPU run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG state a training step may touch, in a checkpoint-storable form."""
    state = {"torch": torch.get_rng_state(), "numpy": list(np.random.get_state()[1].tolist()),
             "numpy_pos": int(np.random.get_state()[2]), "python": repr(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import ast

    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate(ast.literal_eval(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA if available, else CPU; otherwise ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked to
    exist on this machine. Other names torch parses (meta, xpu, cpu:1, ...) are refused: hypersiren trains on none."""
    from hypersiren.checks import DEVICE

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, str) or not DEVICE.fullmatch(name):
        raise InputError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device {name!r} requested but CUDA is not available; use --device cpu")
        if device.index is not None and device.index >= count:
            raise InputError(f"device {name!r} requested but this machine has {count} CUDA device(s); expected "
                             f"cuda:0 to cuda:{count - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {name!r} requested but MPS (Apple GPUs) is not available; use --device cpu")
    return device


class Interrupt:
    """Turns SIGINT/SIGTERM into a flag (``signum``) a loop checks between steps, so it can checkpoint cleanly."""

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


@contextlib.contextmanager
def torchrun_group(device: str) -> Iterator[tuple[int, str]]:
    """Under torchrun (WORLD_SIZE > 1): this process in the process group (NCCL on CUDA, else gloo) for the block,
    on its own GPU (LOCAL_RANK) when ``device`` is auto or cuda, and printing nothing unless it is rank 0; the group
    is left at the end. Yields (rank, device to train on): (0, ``device``) without torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield 0, device
        return
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if cuda:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    elif device == "auto":
        device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank()
    try:
        with contextlib.redirect_stdout(io.StringIO()) if rank else contextlib.nullcontext():
            yield rank, device  # rank 0 reports; the others train silently
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def distributed() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed process group (torchrun), else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_average(tensor: Tensor) -> Tensor:
    """``tensor`` replaced in place by its mean over the ranks of an initialised torch.distributed group (left as it
    is without one); returned."""
    _, world = distributed()
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(tensor)
        tensor /= world
    return tensor


def all_agree(flag: bool, world: int) -> bool:
    """Rank 0's decision, shared with every rank (so all ranks stop at the same step)."""
    if world == 1:
        return flag
    import torch.distributed as dist

    tensor = torch.tensor([float(flag)])
    dist.broadcast(tensor, 0)
    return bool(tensor.item())
