"""Face loaders on generated fixtures of every layout: crop, splits, corrupt files, cache reuse, errors."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from hypersiren.data import face_cache
from hypersiren.data.face_cache import default_cache_dir, square_crop
from hypersiren.data.faces import find_faces, holdout_split, load_faces
from hypersiren.errors import InputError

GREEN = (0, 200, 0)


def celeba_like(path, shade):
    """A 178 x 218 (W x H) aligned-CelebA-sized JPEG: 20 red rows on top, 20 blue at the bottom (outside the
    centre 178 x 178 square), the square in between green with a brightness that identifies the image."""
    array = np.zeros((218, 178, 3), dtype=np.uint8)
    array[:] = (0, shade, 0)
    array[:20] = (255, 0, 0)
    array[-20:] = (0, 0, 255)
    Image.fromarray(array).save(path, quality=95)


def corrupt_jpeg(path):
    celeba_like(path, 100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # truncated


def official_layout(root, count=6, partition=(0, 0, 0, 1, 2, 2)):
    (root / "img_align_celeba").mkdir(parents=True)
    lines = []
    for i in range(count):
        name = f"{i + 1:06d}.jpg"
        celeba_like(root / "img_align_celeba" / name, 40 + 30 * i)
        lines.append(f"{name} {partition[i]}")
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def kaggle_layout(root, count=5, partition=(0, 1, 2, 0, 0)):
    (root / "img_align_celeba" / "img_align_celeba").mkdir(parents=True)
    rows = ["image_id,partition"]
    for i in range(count):
        name = f"{i + 1:06d}.jpg"
        celeba_like(root / "img_align_celeba" / "img_align_celeba" / name, 40 + 30 * i)
        rows.append(f"{name},{partition[i]}")
    (root / "list_eval_partition.csv").write_text("\n".join(rows) + "\n")
    return root


def shade_of(face):
    """The identifying green level (0..255) of a loaded fixture face."""
    return round(float(face[1].mean()) * 255)


def load(root, split, cache, **kw):
    return load_faces(root, split, resolution=8, cache_dir=cache, progress=False, **kw)


def test_official_layout_partition_and_crop(tmp_path):
    root = official_layout(tmp_path / "celeba")
    folder = find_faces(root)
    assert folder.layout == "celeba" and len(folder.files) == 6
    train = load(root, "train", tmp_path / "cache")
    assert train.shape == (3, 3, 8, 8) and train.dtype == torch.float32
    # the centre 178 x 178 square is all green: no red top rows or blue bottom rows survive the crop
    assert train[:, 0].max() < 0.05 and train[:, 2].max() < 0.05
    assert [shade_of(f) for f in train] == pytest.approx([40, 70, 100], abs=3)
    assert [shade_of(f) for f in load(root, "val", tmp_path / "cache")] == pytest.approx([130], abs=3)
    assert [shade_of(f) for f in load(root, "test", tmp_path / "cache")] == pytest.approx([160, 190], abs=3)
    assert len(load(root, "all", tmp_path / "cache")) == 6


def test_kaggle_layout(tmp_path):
    root = kaggle_layout(tmp_path / "kaggle")
    assert find_faces(root).layout == "celeba-kaggle"
    assert [shade_of(f) for f in load(root, "train", tmp_path / "c")] == pytest.approx([40, 130, 160], abs=3)
    assert [shade_of(f) for f in load(root, "val", tmp_path / "c")] == pytest.approx([70], abs=3)
    assert len(load(root, "test", tmp_path / "c")) == 1


def test_folder_layout_holdout_square_images_and_corrupt_file(tmp_path):
    root = tmp_path / "faces"
    (root / "sub").mkdir(parents=True)
    for i in range(7):
        Image.fromarray(np.full((20, 20, 3), 10 + 30 * i, dtype=np.uint8)).save(root / f"{i}.png")
    celeba_like(root / "sub" / "tall.jpg", 200)
    corrupt_jpeg(root / "broken.jpg")
    (root / "notes.txt").write_text("not an image")
    assert len(find_faces(root).files) == 9  # 7 png + tall.jpg + broken.jpg; notes.txt ignored
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\) of 9 .*broken\.jpg"):
        everything = load(root, "all", tmp_path / "c")
    assert len(everything) == 8
    square = everything[:7]  # sorted names: 0.png .. 6.png, then sub/tall.jpg
    assert torch.allclose(square, (torch.arange(7) * 30 + 10).float().div(255).reshape(-1, 1, 1, 1).expand(-1, 3, 8, 8),
                          atol=1 / 255)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = load(root, "train", tmp_path / "c", val_fraction=0.25, seed=3)
        val = load(root, "val", tmp_path / "c", val_fraction=0.25, seed=3)
        test = load(root, "test", tmp_path / "c", val_fraction=0.25, seed=3)
    assert torch.equal(val, test)
    # 9 files, round(9 * 0.25) = 2 held out; the corrupt file is dropped from whichever side it fell in
    assert len(train) + len(val) == 8 and len(val) in (1, 2)
    rows = lambda x: {tuple(f.flatten().tolist()) for f in x}
    assert rows(train) | rows(val) == rows(everything) and not rows(train) & rows(val)


def test_holdout_split_is_exact_deterministic_and_partitions():
    train, val = holdout_split(800, "train", 0.125, 0), holdout_split(800, "val", 0.125, 0)
    assert len(train) == 700 and len(val) == 100
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(800))
    assert torch.equal(val, holdout_split(800, "val", 0.125, 0))
    assert torch.equal(val, holdout_split(800, "test", 0.125, 0))
    assert not torch.equal(val, holdout_split(800, "val", 0.125, 1))
    assert len(holdout_split(5, "val", 0.01, 0)) == 1 and len(holdout_split(5, "train", 0.99, 0)) == 1
    assert torch.equal(holdout_split(4, "all", 0.5, 0), torch.arange(4))
    with pytest.raises(InputError, match="split 'val' is empty"):
        holdout_split(10, "val", 0.0, 0)
    with pytest.raises(InputError, match=r"val_fraction must be in \[0, 1\)"):
        holdout_split(10, "train", 1.0, 0)


def test_cache_is_reused_without_decoding(tmp_path, monkeypatch):
    root = official_layout(tmp_path / "celeba")
    cache = tmp_path / "cache"
    first = load(root, "all", cache)
    files = list(cache.glob("faces-8px-*.safetensors"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(face_cache, "_decode", no_decoding)
    assert torch.equal(load(root, "all", cache), first)
    assert torch.equal(load(root, "train", cache), first[:3])  # one cache serves every split
    assert files[0].stat().st_mtime_ns == mtime
    monkeypatch.undo()
    celeba_like(root / "img_align_celeba" / "000007.jpg", 220)  # folder changed: new fingerprint, new cache
    assert len(load(root, "all", cache)) == 7
    assert len(list(cache.glob("faces-8px-*.safetensors"))) == 2
    assert len(load_faces(root, "all", resolution=4, cache_dir=cache, progress=False)) == 7
    assert len(list(cache.glob("faces-4px-*.safetensors"))) == 1


def test_corrupt_cache_is_rebuilt(tmp_path):
    root = official_layout(tmp_path / "celeba")
    first = load(root, "all", tmp_path / "cache")
    (path,) = (tmp_path / "cache").glob("*.safetensors")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.warns(UserWarning, match="ignoring unusable face cache"):
        assert torch.equal(load(root, "all", tmp_path / "cache"), first)


def test_unwritable_cache_warns_and_still_loads(tmp_path):
    root = official_layout(tmp_path / "celeba")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="continuing without it"):
        assert len(load(root, "all", blocker / "cache")) == 6


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HYPERSIREN_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "faces"
    monkeypatch.delenv("HYPERSIREN_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "hypersiren", "faces")


def test_missing_root_empty_folder_and_missing_split_errors(tmp_path):
    with pytest.raises(InputError, match=r"does not exist; expected \(a\) official CelebA.*\(b\) Kaggle.*\(c\)"):
        load(tmp_path / "nowhere", "train", tmp_path / "c")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images found under .*expected"):
        load(tmp_path / "empty", "train", tmp_path / "c")
    root = official_layout(tmp_path / "celeba", count=3, partition=(0, 0, 1))
    with pytest.raises(InputError, match="split 'test' has no images"):
        load(root, "test", tmp_path / "c")
    with pytest.raises(InputError, match="unknown split 'eval'; expected one of train, val, test, all"):
        load(root, "eval", tmp_path / "c")
    with pytest.raises(InputError, match="resolution must be an integer"):
        load_faces(root, "train", resolution=0, cache_dir=tmp_path / "c")


def test_malformed_partition_file(tmp_path):
    root = official_layout(tmp_path / "celeba", count=2, partition=(0, 1))
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg seven\n")
    with pytest.raises(InputError, match=r"list_eval_partition.txt:2: expected 'FILE PARTITION'"):
        load(root, "train", tmp_path / "c")


def test_all_images_corrupt(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    corrupt_jpeg(root / "a.jpg")
    (root / "b.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="skipped 2"), pytest.raises(InputError, match="none of the 2 images"):
        load(root, "all", tmp_path / "c")
    assert not list((tmp_path / "c").glob("*"))  # nothing cached


def test_lfw_subset_faces():
    from skimage import data

    faces = load_faces(None, "all", resolution=25, dtype=torch.uint8)
    assert faces.shape == (100, 3, 25, 25) and faces.dtype == torch.uint8
    assert torch.equal(faces[:, 0], faces[:, 2])  # gray repeated to RGB
    expected = torch.from_numpy(data.lfw_subset()[:100]).mul(255).round()
    assert (faces[:, 0].float() - expected).abs().max() <= 1  # faces only, no non-face patches
    assert load_faces(None, "train", 32).shape == (90, 3, 32, 32)
    assert len(load_faces(None, "val", 32)) == 10 and len(load_faces(None, "val", 32, val_fraction=0.2)) == 20


def test_square_crop():
    image = torch.arange(2 * 5 * 3).reshape(2, 5, 3)
    assert torch.equal(square_crop(image), image[:, 1:4, :])
    assert torch.equal(square_crop(image.transpose(1, 2)), image.transpose(1, 2)[:, :, 1:4])


def test_prepare_script_builds_the_cache(tmp_path, capsys):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "datasets" / "prepare_celeba.py"
    main = runpy.run_path(str(script))["main"]
    root = official_layout(tmp_path / "celeba")
    assert main([str(root), "--resolution", "4", "8", "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "celeba layout, 6 image files" in out and "8px: train 3, val 1, test 2, all 6 readable faces" in out
    assert len(list((tmp_path / "c").glob("faces-*px-*.safetensors"))) == 2
    assert main([str(tmp_path / "missing")]) == 2
    assert "prepare_celeba: error: face data root" in capsys.readouterr().err
