"""The face data pipeline at scale: the memory-mapped uint8 cache (written image by image, plain safetensors) and
the DataLoader whose batches depend only on (seed, rank, step), with or without worker processes."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from hypersiren.data import face_cache
from hypersiren.data.face_cache import MappedImages
from hypersiren.data.face_loader import FaceStream, StepBatches, shard
from hypersiren.data.faces import find_faces, open_faces
from hypersiren.errors import InputError


@pytest.fixture
def folder(tmp_path):
    """14 random 30 x 24 PNGs and one unreadable file."""
    root = tmp_path / "faces"
    root.mkdir()
    for i in range(14):
        pixels = np.random.default_rng(i).integers(0, 256, (30, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{i:02d}.png")
    (root / "07b.jpg").write_bytes(b"not a jpeg")
    return root


def test_cache_is_memory_mapped_safetensors_equal_to_decoding(folder, tmp_path):
    from safetensors.torch import load_file

    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\) of 15.*07b.jpg"):
        faces = open_faces(folder, "all", 8, cache_dir=tmp_path / "cache", progress=False)
    assert isinstance(faces.images, MappedImages) and len(faces) == 14 and faces.resolution == 8
    files = find_faces(folder).files
    decoded = torch.stack([face_cache._decode(folder / name, 8) for name in files if name != "07b.jpg"])
    assert torch.equal(faces.load(), decoded)  # what training reads is what decoding gives
    assert torch.equal(faces[torch.tensor([3, 0])], decoded[[3, 0]]) and torch.equal(faces[5], decoded[5])

    (path,) = (tmp_path / "cache").glob("faces-8px-*.safetensors")
    stored = load_file(path)  # safetensors itself reads the file
    assert stored["images"].dtype == torch.uint8 and torch.equal(stored["images"], decoded)
    assert stored["indices"].tolist() == [i for i, name in enumerate(files) if name != "07b.jpg"]
    assert path.stat().st_size < decoded.numel() + 4096  # uint8, no float copy
    assert len(pickle.dumps(faces)) < 2000  # a worker process reopens the map rather than receiving the data


def test_step_batches_depend_only_on_seed_rank_and_step():
    a, b = StepBatches(50, 6, seed=1), StepBatches(50, 6, seed=1)
    b.start = 4
    first = [batch for _, batch in zip(range(7), a)]
    assert all(np.array_equal(x, y) for x, y in zip(first[4:], b))  # starting at step 4 = the run's steps 4...
    assert not np.array_equal(StepBatches(50, 6, seed=2).at(0), first[0])
    assert not np.array_equal(StepBatches(50, 6, seed=1, rank=1, world=2).at(0), first[0])
    with pytest.raises(InputError, match="batch size"):
        StepBatches(50, 0)


def test_shards_partition_the_faces():
    parts = [shard(11, seed=3, rank=r, world=3) for r in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(11))
    assert [len(p) for p in parts] == [4, 4, 3]
    assert np.array_equal(shard(11, 3), np.arange(11))
    with pytest.raises(InputError, match="2 training faces cannot be shared among 3 ranks"):
        shard(2, 0, 0, 3)


def test_stream_is_the_same_with_workers_and_after_a_jump(folder, tmp_path):
    with pytest.warns(UserWarning, match="skipped 1"):
        faces = open_faces(folder, "train", 8, cache_dir=tmp_path / "cache", progress=False)
    inline = FaceStream(faces, 5, seed=0, device="cpu")
    expected = [inline(step) for step in range(6)]
    for step, batch in enumerate(expected):
        assert batch.dtype == torch.float32 and torch.equal(batch, faces[inline.sampler.at(step)].float() / 255)
    workers = FaceStream(faces, 5, seed=0, device="cpu", workers=2)
    try:
        assert all(torch.equal(workers(step), batch) for step, batch in enumerate(expected))
        assert torch.equal(workers(3), expected[3]) and torch.equal(workers(4), expected[4])  # a resumed run
    finally:
        workers.close()
    torch.manual_seed(0)
    flipped = FaceStream(faces, 64, seed=0, device="cpu", flip=True)(0)
    plain = faces[StepBatches(len(faces), 64).at(0)].float() / 255
    mirrored = (flipped == plain.flip(-1)).flatten(1).all(1)
    assert mirrored.any() and ((flipped == plain).flatten(1).all(1) | mirrored).all()
