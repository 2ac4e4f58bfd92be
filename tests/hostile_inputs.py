"""Hostile inputs for ``test_hardening.py``, generated and tiny: pictures of any size as bare headers, malformed
meshes, a float64 WAV beyond float32 and prior checkpoints with a valid checksum over a forged description."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

def png(width: int, height: int, color_type: int = 2) -> bytes:
    """A PNG header of any size with a few bytes of pixel data: PIL reads its size without decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


def bmp(width: int, height: int) -> bytes:
    return (b"BM" + struct.pack("<IHHI", 154, 0, 0, 54) +
            struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0) + bytes(100))


def jpeg(width: int, height: int) -> bytes:
    frame = struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return b"\xff\xd8\xff\xc0" + frame + b"\xff\xd9"


def gif(width: int, height: int) -> bytes:
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b"\x2c" +
            struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00\x3b")


PLY = "ply\nformat ascii 1.0\n"
XYZ = "property float x\nproperty float y\nproperty float z\n"
CORNERS = "0 0 0\n1 0 0\n0 1 0\n"
MESHES = {
    "list_x.ply": PLY + "element vertex 3\nproperty list uchar float x\nproperty float y\nproperty float z\n"
                        "end_header\n1 0 0 0\n1 1 0 0\n1 0 1 0\n",
    "float_indices.ply": PLY + "element vertex 3\n" + XYZ + "element face 1\nproperty list uchar float vertex_indices\n"
                               "end_header\n" + CORNERS + "3 0 1 2\n",
    "float_lengths.ply": PLY + "element vertex 3\n" + XYZ + "element face 1\nproperty list float int vertex_indices\n"
                               "end_header\n" + CORNERS + "3.5 0 1 2\n",
    "huge_vertex_count.ply": PLY + "element vertex 1000000000000\n" + XYZ + "end_header\n" + CORNERS,
    "huge_face_count.ply": PLY + "element vertex 3\n" + XYZ + "element face 100000000000\n"
                                 "property list uchar int vertex_indices\nend_header\n" + CORNERS + "3 0 1 2\n",
    "span_overflow.ply": PLY + "element vertex 3\nproperty double x\nproperty double y\nproperty double z\n"
                               "end_header\n1e308 0 0\n-1e308 0 0\n0 1 0\n",
    "nan_normal.ply": PLY + "element vertex 3\n" + XYZ + "property float nx\nproperty float ny\nproperty float nz\n"
                            "end_header\n0 0 0 0 0 1\n1 0 0 nan 0 1\n0 1 0 0 0 1\n",
    "zero_index.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 5 5 5\nf 0 2 3\n",
    "nan_index.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\nf nan 2 3\n",
    "float_index.off": "OFF\n4 1 0\n0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0.5 1 2\n",
    "huge_count.off": "OFF\n1000000000000 1 0\n" + CORNERS + "3 0 1 2\n",
    "nan_vertex.stl": "solid s\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 nan\nvertex 0 1 0\n"
                      "endloop\nendfacet\nendsolid s\n",
    "inf.xyz": "1e400 0 0 0 0 1\n1 1 1 0 0 1\n",
}


def _forged_checkpoints(d: Path, source: Path) -> None:
    """Prior checkpoints with a valid checksum over a hostile description (``{name}.safetensors`` in ``d``)."""
    import torch
    from safetensors.torch import save

    from hypersiren.checkpoint import FORMAT, _digest, _pack, load_checkpoint, save_checkpoint

    state, meta = load_checkpoint(source)
    changes = {"hidden_1e7": ("model", "hidden_features", 10**7), "hidden_20000": ("model", "hidden_features", 20000),
               "basis_60000": ("model", "basis_features", 60000), "resolution_1e6": ("config", "resolution", 10**6),
               "resolution_text": ("config", "resolution", "32"), "basis_nan": ("model", "basis_features", float("nan")),
               "steps_2e70": ("config", "engine", {"steps": 2**70}), "unknown_key": ("model", "teleport", 1),
               "method_list": ("model", "method", ["hypernet"])}
    for name, (part, key, value) in changes.items():
        save_checkpoint(d / f"{name}.safetensors", state, {**meta, part: {**meta[part], key: value}})
    save_checkpoint(d / "model_list.safetensors", state, {**meta, "model": [1, 2]})
    density = state["latent_density"]
    save_checkpoint(d / "density_dim.safetensors", {**state, "latent_density": {**density, "mean": density["mean"][:3]}},
                    meta)
    save_checkpoint(d / "density_nan.safetensors", {**state, "latent_density": {**density, "noise": float("nan")}}, meta)
    name, weight = next(iter(state["model"].items()))
    nan_weight = weight.clone().reshape(-1).index_fill(0, torch.tensor([0]), float("nan")).reshape(weight.shape)
    save_checkpoint(d / "nan_weight.safetensors", {**state, "model": {**state["model"], name: nan_weight}}, meta)
    for name, meta_text in {"deep_json": '{"kind": "prior/hypernet", "x": ' + "[" * 100000 + "]" * 100000 + "}",
                            "huge_json": json.dumps({**meta, "x": "x" * 3_000_000}),
                            "huge_integer": '{"kind": "prior/hypernet", "x": ' + "9" * 5000 + "}"}.items():
        tensors: dict = {}
        texts = meta_text, json.dumps(_pack(state, tensors, "state"))
        header = {"format": FORMAT, "meta": texts[0], "structure": texts[1], "sha256": _digest(tensors, *texts)}
        (d / f"{name}.safetensors").write_bytes(save(tensors, metadata=header))


def tiff(width: int, height: int) -> bytes:
    """A little-endian TIFF whose one strip of 8-bit gray is announced but not there."""
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, 1, 8),
            (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 16)]
    directory = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *tag) for tag in tags) + bytes(4)
    return b"II*\x00" + struct.pack("<I", 8) + directory + bytes(16)


def write_inputs(d: Path, prior: Path) -> None:
    """Every hostile input into ``d``: pictures, meshes, audio, a small video, and under ``d/checkpoints`` prior
    checkpoints forged from ``prior`` (a tiny prior's checkpoint)."""
    from PIL import Image
    from scipy.io import wavfile

    from conftest import write_square_video

    for name, data in {"bomb20k.png": png(20000, 20000), "bomb10k.png": png(10000, 10000), "wide.png": png(10**8, 1),
                       "bomb.bmp": bmp(50000, 50000), "bomb.jpg": jpeg(60000, 60000), "bomb.gif": gif(65535, 65535),
                       "bomb.tif": tiff(100000, 100000), "bomb16.png": png(12000, 12000, color_type=0)}.items():
        (d / name).write_bytes(data)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(d / "face.png")
    wavfile.write(d / "tone.wav", 8000, np.sin(np.arange(400) / 5).astype(np.float32))
    wavfile.write(d / "huge64.wav", 8000, np.full(16, 1e300))
    angles = np.linspace(0, 6, 30)
    (d / "ring.xyz").write_text("".join(f"{np.cos(a)} {np.sin(a)} {z} {np.cos(a)} {np.sin(a)} 0\n"
                                        for a in angles for z in (0, 0.5)))
    for name, text in MESHES.items():
        (d / name).write_text(text)
    write_square_video(d / "video.mp4")
    (d / "checkpoints").mkdir()
    _forged_checkpoints(d / "checkpoints", prior)


