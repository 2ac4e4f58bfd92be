"""Checkpoints: tensors in safetensors plus a JSON description, written atomically, loaded without pickle.

One format for every model kind. A checkpoint holds a nested ``state`` (dicts, lists, tuples, tensors and
JSON scalars: model weights, optimiser state, RNG state, step) and a JSON ``meta`` dict with at least
``kind`` (what built it, e.g. ``fit/image`` or ``prior/hypernet``) and ``model`` (the config that rebuilds the
network). A SHA-256 over the tensor bytes and the JSON header detects truncated or bit-flipped files.

A checkpoint is untrusted input: its file must fit the memory budget (``hypersiren.limits``), its JSON texts are
capped in size (``MAX_META_CHARS``, ``MAX_STRUCTURE_CHARS``) and nesting (``MAX_JSON_DEPTH``), and
``restore_module`` compares the tensors' shapes with those its configuration implies, on torch's meta device,
before a module is built. The configuration itself is checked by ``Config.from_dict`` (types, ranges, keys).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from hypersiren.errors import CheckpointError
from hypersiren.io import atomic_write
from hypersiren.limits import check_memory
from hypersiren.nn.measure import skeleton

FORMAT = "hypersiren-checkpoint/2"  # /2: the checksum covers meta and structure too
_READABLE = {"hypersiren-checkpoint/1": False, FORMAT: True}  # format -> whether its checksum covers the header
MAX_META_CHARS = 1 << 20  # the JSON description (kind, configs): a few kB in practice
MAX_STRUCTURE_CHARS = 1 << 24  # the JSON layout of the state: ~100 characters per tensor
MAX_JSON_DEPTH = 32  # nesting of either JSON text: configs and optimiser states nest a few levels


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
    Raises CheckpointError for a missing, truncated, corrupted, oversized or foreign file, and InputError for a
    file larger than the memory budget.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    check_memory({f"reading checkpoint {path} ({path.stat().st_size} bytes)": 2 * path.stat().st_size})
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
        meta = _parse_json(header["meta"], "meta", MAX_META_CHARS)
        if not isinstance(meta, dict):
            raise ValueError("meta is not a JSON object")
        state = _unpack(_parse_json(header["structure"], "structure", MAX_STRUCTURE_CHARS), tensors)
    except (SafetensorError, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not a valid hypersiren checkpoint (safetensors with hypersiren metadata): {err}") from None
    if kind is not None and not str(meta.get("kind", "")).startswith(kind):
        raise CheckpointError(f"checkpoint {path} holds a {_short(meta.get('kind'))} model; expected a {kind!r} "
                              "checkpoint")
    return state, meta


def _parse_json(text: str, name: str, max_chars: int) -> Any:
    """``text`` parsed, refused (ValueError) beyond ``max_chars`` characters or ``MAX_JSON_DEPTH`` levels."""
    if len(text) > max_chars:
        raise ValueError(f"its {name} JSON has {len(text):,} characters; expected at most {max_chars:,}")
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"its {name} JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    pending, depth = [(value, 1)], 0
    while pending:
        item, level = pending.pop()
        depth = max(depth, level)
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"its {name} JSON nests deeper than {MAX_JSON_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        pending.extend((child, level + 1) for child in children)
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def restore_module(build: Callable[[], nn.Module], weights: Any, where: str) -> nn.Module:
    """``build()`` with ``weights`` (a state dict) loaded. ``build`` runs first on torch's meta device, which
    allocates nothing, and every tensor's name and shape are compared with what the configuration implies: a
    configuration asking for a huge model, weights of another one, or NaN/Inf weights are refused (CheckpointError
    naming the tensor) before any memory is allocated. ``where``: the checkpoint, for messages."""
    if not isinstance(weights, Mapping) or not all(isinstance(v, Tensor) for v in weights.values()):
        raise CheckpointError(f"{where} holds no model weights (a dict of tensors)")
    expected = {name: tuple(t.shape) for name, t in skeleton(build).state_dict().items()}
    found = {name: tuple(t.shape) for name, t in weights.items()}
    for name in sorted(expected.keys() | found.keys()):
        if expected.get(name) != found.get(name):
            raise CheckpointError(f"{where} does not match its own configuration: tensor {_short(name)} has shape "
                                  f"{found.get(name, 'none (missing)')}, the configuration implies "
                                  f"{expected.get(name, 'none (unexpected)')}")
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{where}: tensor {_short(name)} holds NaN or Inf values; expected finite weights")
    module = build()
    module.load_state_dict(weights)
    return module
