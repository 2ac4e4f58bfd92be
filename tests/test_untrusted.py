"""Untrusted checkpoints: every command and API taking a checkpoint refuses pickles without running them and
detects truncated, bit-flipped and foreign files with a one-line error (exit status 2) and no output file."""
from __future__ import annotations

import json
import pickle

import pytest
import torch

from hypersiren.checkpoint import load_checkpoint, save_checkpoint
from hypersiren.errors import CheckpointError


class _Payload:
    """Unpickling this runs code that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def _flip(data: bytes, at: int, bit: int = 0x10) -> bytes:
    flipped = bytearray(data)
    flipped[at] ^= bit
    return bytes(flipped)


@pytest.fixture
def crafted(tmp_path, tiny_prior_checkpoint):
    """name -> path of a hostile or damaged checkpoint; the marker a pickle payload would create."""
    marker = tmp_path / "marker"
    good = tiny_prior_checkpoint.read_bytes()
    header_end = 8 + int.from_bytes(good[:8], "little")
    digit = good.index(b"resolution") + 10
    while not good[digit : digit + 1].isdigit():
        digit += 1  # a digit of the stored resolution: 16 -> 17 still parses as JSON
    files = {
        "pickle": pickle.dumps({"model": _Payload(marker)}),
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "truncated header": good[: header_end - 10],
        "tensor bit flip": _flip(good, len(good) - 5),
        "header bit flip": _flip(good, digit, 0x01),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.safetensors"
        paths[name].write_bytes(data)
    paths["torch.save zip"] = tmp_path / "zip.pt"
    torch.save({"model": _Payload(marker)}, paths["torch.save zip"])
    paths["directory"] = tmp_path / "a_directory"
    paths["directory"].mkdir()
    paths["missing"] = tmp_path / "missing.safetensors"
    return paths, marker


def test_the_payload_would_run_if_unpickled(tmp_path):
    """Control: the crafted pickle really creates its marker when unpickled (so the tests below can fail)."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_load_checkpoint_refuses_every_crafted_file(crafted):
    paths, marker = crafted
    for name, path in paths.items():
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value), name
    assert not marker.exists()


def test_damage_is_reported_as_corruption(crafted):
    paths, _ = crafted
    for name in ("tensor bit flip", "header bit flip"):
        with pytest.raises(CheckpointError, match="corrupted"):
            load_checkpoint(paths[name])


def test_every_header_bit_flip_is_detected(tmp_path):
    """A flip in any byte of a small checkpoint (tensor data, tensor table, meta or structure JSON) is refused."""
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"model": {"w": torch.arange(6.0).reshape(3, 2)}, "step": 5}, {"kind": "fit/x", "model": {"h": 16}})
    data = path.read_bytes()
    damaged = tmp_path / "d.safetensors"
    for at in range(len(data)):
        damaged.write_bytes(_flip(data, at))
        with pytest.raises(CheckpointError):
            load_checkpoint(damaged)


def test_format_1_checkpoints_still_load(tmp_path):
    """Checkpoints of format /1 (checksum over tensors only) written before the header joined the checksum."""
    from safetensors.torch import save

    from hypersiren.checkpoint import _digest

    tensors = {"state/w": torch.ones(2, 3)}
    header = {"format": "hypersiren-checkpoint/1", "meta": json.dumps({"kind": "fit/x"}),
              "structure": json.dumps({"__dict__": [["w", {"__tensor__": "state/w"}]]}), "sha256": _digest(tensors)}
    path = tmp_path / "old.safetensors"
    path.write_bytes(save(tensors, metadata=header))
    state, meta = load_checkpoint(path, kind="fit")
    assert torch.equal(state["w"], torch.ones(2, 3)) and meta == {"kind": "fit/x"}


COMMANDS = {
    "complete": ["complete", "--image", "camera", "--half", "--out", "{out}.png"],
    "complete --samples": ["complete", "--image", "camera", "--half", "--samples", "2", "--out", "{out}.png"],
    "eval prior": ["eval", "prior", "--max-images", "2", "--no-progress", "--out", "{out}"],
    "sample": ["sample", "--num", "2", "--out", "{out}.png"],
    "interpolate": ["interpolate", "camera", "astronaut", "--out", "{out}.png"],
}


@pytest.mark.parametrize("command", COMMANDS, ids=list(COMMANDS))
def test_commands_refuse_crafted_checkpoints(cli, crafted, tmp_path, command):
    paths, marker = crafted
    for name, path in paths.items():
        out = tmp_path / "out"
        argv = [a.format(out=out) for a in COMMANDS[command]]
        code, stdout, err = cli(*argv, "--checkpoint", path)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("hypersiren: error:"), (name, err)
        assert str(path) in lines[0] and stdout == "", (name, err)
        assert not list(tmp_path.glob("out*")), name  # no picture, no evaluation directory
    assert not marker.exists()


def test_fit_resume_refuses_a_crafted_checkpoint_and_keeps_it(cli, crafted, tmp_path):
    paths, marker = crafted
    run = tmp_path / "run"
    argv = ["fit", "image", "camera", "--size", "8", "--steps", "2", "--summary-every", "0", "--hidden-features", "8",
            "--hidden-layers", "1", "--no-progress", "--out", run]
    assert cli(*argv)[0] == 0
    for name, path in paths.items():
        if name in ("directory", "missing"):
            continue
        (run / "metrics.json").unlink(missing_ok=True)
        (run / "checkpoint.safetensors").write_bytes(path.read_bytes())
        code, _, err = cli(*argv, "--steps", "3", "--resume")
        assert code == 2 and len(err.strip().splitlines()) == 1 and "checkpoint" in err, (name, err)
        assert (run / "checkpoint.safetensors").read_bytes() == path.read_bytes()  # left as it was
        assert not (run / "metrics.json").exists()
    assert not marker.exists()


def test_prior_api_refuses_crafted_checkpoints(crafted):
    from hypersiren.engine import restore_task
    from hypersiren.prior import HyperSiren
    from hypersiren.tasks.image import FitImage

    paths, marker = crafted
    for name, path in paths.items():
        with pytest.raises(CheckpointError):
            HyperSiren.load(path)
        if path.is_file():
            run = path.parent / f"run-{path.stem}"
            run.mkdir()
            (run / "checkpoint.safetensors").write_bytes(path.read_bytes())
            with pytest.raises(CheckpointError):
                restore_task(FitImage, run)
    assert not marker.exists()
