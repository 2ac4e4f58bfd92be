"""Checkpoints: tensors in safetensors plus a JSON description, written atomically, loaded without pickle.

One format for every model kind. A checkpoint holds a nested ``state`` (dicts, lists, tuples, tensors and
JSON scalars: model weights, optimiser state, RNG state, step) and a JSON ``meta`` dict with at least
``kind`` (what built it, e.g. ``fit/image`` or ``prior/hypernet``) and ``model`` (the config that rebuilds the
network). A SHA-256 over the tensor bytes and the JSON header detects truncated or bit-flipped files.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hypersiren.errors import CheckpointError
from hypersiren.io import atomic_write

FORMAT = "hypersiren-checkpoint/2"  # /2: the checksum covers meta and structure too
_READABLE = {"hypersiren-checkpoint/1": False, FORMAT: True}  # format -> whether its checksum covers the header


def _pack(obj: Any, tensors: dict[str, Tensor], key: str) -> Any:
    if isinstance(obj, Tensor):
        # a private copy: safetensors refuses tensors sharing memory (tied weights, views of one buffer)
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) for k in obj):
            raise TypeError(f"checkpoint dict keys must be str or int at {key!r}")
        return {"__dict__": [[k, _pack(v, tensors, f"{key}/{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_pack(v, tensors, f"{key}/{i}") for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {key!r} in a checkpoint")


def _unpack(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_unpack(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {k: _unpack(v, tensors) for k, v in obj["__dict__"]}
    return obj


def _digest(tensors: dict[str, Tensor], *texts: str) -> str:
    """SHA-256 over the tensors (names, dtypes, shapes, bytes), then over ``texts`` (the JSON header fields)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(name.encode())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    for text in texts:
        h.update(len(text).to_bytes(8, "little") + text.encode())
    return h.hexdigest()


def save_checkpoint(path: str | Path, state: dict, meta: dict) -> None:
    """Write ``state`` and ``meta`` to ``path`` atomically (temporary file, fsync, rename)."""
    from safetensors.torch import save

    tensors: dict[str, Tensor] = {}
    structure = _pack(state, tensors, "state")
    texts = json.dumps(meta), json.dumps(structure)
    header = {"format": FORMAT, "meta": texts[0], "structure": texts[1], "sha256": _digest(tensors, *texts)}
    payload = save(tensors, metadata=header)
    with atomic_write(path) as f:
        f.write(payload)


def load_checkpoint(path: str | Path, kind: str | None = None) -> tuple[dict, dict]:
    """Read a checkpoint written by ``save_checkpoint``: returns ``(state, meta)``; never runs code from the file.

    kind: if given, the checkpoint's ``meta["kind"]`` must start with it (e.g. ``"prior"``).
    Raises CheckpointError for a missing, truncated, corrupted or foreign file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])["__metadata__"]
        if header.get("format") not in _READABLE:
            raise ValueError("missing hypersiren format tag")
        texts = (header["meta"], header["structure"]) if _READABLE[header["format"]] else ()
        if _digest(tensors, *texts) != header.get("sha256"):
            raise CheckpointError(f"checkpoint {path} is corrupted: its checksum does not match (truncated or altered)")
        meta = json.loads(header["meta"])
        if not isinstance(meta, dict):
            raise ValueError("meta is not a JSON object")
        state = _unpack(json.loads(header["structure"]), tensors)
    except (SafetensorError, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not a valid hypersiren checkpoint (safetensors with hypersiren metadata): {err}") from None
    if kind is not None and not str(meta.get("kind", "")).startswith(kind):
        raise CheckpointError(f"checkpoint {path} holds a {meta.get('kind')!r} model; expected a {kind!r} checkpoint")
    return state, meta
