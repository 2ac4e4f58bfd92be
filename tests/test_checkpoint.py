"""Checkpoints: exact round trips of nested state, corruption detection, and no code execution on load."""
from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from hypersiren.checkpoint import load_checkpoint, save_checkpoint
from hypersiren.errors import CheckpointError
from hypersiren.nn import Siren
from hypersiren.runtime import rng_state, set_rng_state


def assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def test_nested_state_round_trips_exactly(tmp_path):
    base = torch.randn(4, 5)
    state = {
        "float": torch.randn(3, 2), "double": torch.randn(2, dtype=torch.float64),
        "bf16": torch.randn(3).to(torch.bfloat16), "int": torch.arange(5), "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(3.5), "empty": torch.zeros(0, 3),
        "view": base[1], "transposed": base.T, "base": base,  # shared storage and non-contiguous layouts
        "tuple": (0.9, 0.999), "list": [1, "a", None, True, 2.5], "nested": {0: {"x": [torch.ones(2)]}, "k": ()},
        "step": 7,
    }
    meta = {"kind": "test/nested", "model": {"hidden": 8}, "note": "ünïcode"}
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, state, meta)
    loaded, loaded_meta = load_checkpoint(path)
    assert_same(loaded, state)
    assert loaded_meta == meta
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left


def test_model_and_optimizer_state_resume_identically(tmp_path):
    torch.manual_seed(0)
    model = Siren(2, 1, 8, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.99))
    x, y = torch.rand(16, 2), torch.rand(16, 1)

    def step(m, o):
        o.zero_grad()
        torch.mean((m(x) - y) ** 2).backward()
        o.step()

    for _ in range(3):
        step(model, opt)
    save_checkpoint(tmp_path / "c", {"model": model.state_dict(), "optimizer": opt.state_dict()}, {"kind": "t"})
    state, _ = load_checkpoint(tmp_path / "c")
    clone = Siren(2, 1, 8, 1)
    clone.load_state_dict(state["model"])
    clone_opt = torch.optim.Adam(clone.parameters(), lr=1.0)
    clone_opt.load_state_dict(state["optimizer"])
    assert clone_opt.param_groups[0]["betas"] == (0.8, 0.99) and clone_opt.param_groups[0]["lr"] == 1e-3
    for _ in range(2):
        step(model, opt)
        step(clone, clone_opt)
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)


def test_rng_state_round_trip(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    save_checkpoint(tmp_path / "c", {"rng": rng_state()}, {"kind": "t"})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    state, _ = load_checkpoint(tmp_path / "c")
    set_rng_state(state["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": torch.arange(1000, dtype=torch.float32)}, {"kind": "fit/image"})
    return path


def test_bit_flip_in_tensor_data_is_detected(saved):
    data = bytearray(saved.read_bytes())
    data[-100] ^= 0x01
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(saved)


@pytest.mark.parametrize("keep", [0, 4, 20, 200, -1])
def test_truncated_file_is_rejected(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(CheckpointError):
        load_checkpoint(saved)


def test_foreign_files_are_rejected(tmp_path):
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.ones(2)}, plain)  # valid safetensors without hypersiren metadata
    with pytest.raises(CheckpointError, match="not a valid hypersiren checkpoint"):
        load_checkpoint(plain)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(text)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path)


class _Exploit:
    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_loading_a_pickle_never_executes_it(tmp_path):
    marker = tmp_path / "pwned"
    _Exploit.marker = marker
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"model": _Exploit()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    torch_file = tmp_path / "evil.pt"
    torch.save({"x": _Exploit()}, torch_file)  # a torch.save checkpoint is a zip of pickles
    with pytest.raises(CheckpointError):
        load_checkpoint(torch_file)
    assert not marker.exists()


def test_kind_is_checked(saved):
    _, meta = load_checkpoint(saved, kind="fit")
    assert meta["kind"] == "fit/image"
    with pytest.raises(CheckpointError, match="expected a 'prior' checkpoint"):
        load_checkpoint(saved, kind="prior")


def test_failed_save_leaves_the_previous_checkpoint(saved):
    before = saved.read_bytes()
    with pytest.raises(TypeError):
        save_checkpoint(saved, {"bad": object()}, {"kind": "t"})
    assert saved.read_bytes() == before
    assert len(list(saved.parent.iterdir())) == 1
