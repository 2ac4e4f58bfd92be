"""Face images for priors: CelebA in its official or Kaggle layout, any folder of images, or scikit-image's
bundled LFW faces; their splits, and the faces of a split as a ``torch.utils.data.Dataset`` read from the
memory-mapped preprocessed cache (``hypersiren.data.face_cache``).

Faces are (N, 3, R, R): uint8 in the data set, float32 in [0, 1] ("unit") from ``load_faces``
(``hypersiren.data.image.from_unit`` gives network values). Every image is stored as 8 bits after resizing, so
a cached and a freshly decoded load give the same values.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hypersiren.data.face_cache import SKIPPED_NAMED, MappedImages, cached_faces, quantize  # noqa: F401
from hypersiren.errors import InputError
from hypersiren.limits import check_memory

SPLITS = ("train", "val", "test", "all")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
LAYOUT_HELP = ("expected (a) official CelebA: ROOT/img_align_celeba/*.jpg + ROOT/list_eval_partition.txt, "
               "(b) Kaggle CelebA: ROOT/img_align_celeba/img_align_celeba/*.jpg + ROOT/list_eval_partition.csv, "
               "or (c) a folder of face images (.jpg/.png, searched recursively)")
PARTITION_IDS = {"train": 0, "val": 1, "test": 2}
FACE_BYTES = 9  # memory per value of faces loaded in memory: the uint8 faces, the float32 faces and a float32 copy
LFW_FACES = 100  # scikit-image's LFW subset: its first 100 images are faces


@dataclass(frozen=True)
class FaceFolder:
    """What was found under a data root: the layout, the images (relative to ``image_dir``, sorted) and, for
    CelebA layouts, the official partition (file name -> 0 train, 1 val, 2 test)."""

    layout: str  # "celeba", "celeba-kaggle" or "folder"
    image_dir: Path
    files: tuple[str, ...]
    partition: dict[str, int] | None


def _list_images(directory: Path, recursive: bool) -> list[str]:
    """Image files under ``directory`` as sorted relative POSIX paths (hidden files and folders skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        rel = Path(dirpath).relative_to(directory)
        found += [(rel / f).as_posix() for f in filenames
                  if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES)]
    return sorted(found)


def _read_partition(path: Path) -> dict[str, int]:
    """``list_eval_partition.txt`` ("000001.jpg 0" lines) or ``.csv`` (header ``image_id,partition``)."""
    partition = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read partition file {path}: {err}") from None
    lines = text.splitlines()
    rows = csv.reader(lines) if path.suffix == ".csv" else (line.split() for line in lines)
    for number, row in enumerate(rows, start=1):
        if not row or (number == 1 and path.suffix == ".csv" and not row[-1].strip().isdigit()):
            continue  # blank line or CSV header
        if len(row) != 2 or row[1].strip() not in ("0", "1", "2"):
            raise InputError(f"{path}:{number}: expected 'FILE PARTITION' with partition 0 (train), 1 (val) "
                             f"or 2 (test), got {' '.join(row)!r}")
        partition[row[0].strip()] = int(row[1])
    if not partition:
        raise InputError(f"partition file {path} lists no images")
    return partition


def find_faces(root: str | Path) -> FaceFolder:
    """Recognise the layout of ``root`` (see LAYOUT_HELP); raises InputError if it holds no images."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"face data root {root} {'is not a directory' if root.exists() else 'does not exist'}; "
                         f"{LAYOUT_HELP}")
    candidates = [(layout, image_dir, root / f"list_eval_partition.{suffix}")
                  for layout, image_dir in (("celeba-kaggle", root / "img_align_celeba" / "img_align_celeba"),
                                            ("celeba", root / "img_align_celeba"))
                  for suffix in ("csv", "txt")]
    for layout, image_dir, partition_file in candidates:
        if image_dir.is_dir() and partition_file.is_file():
            files = _list_images(image_dir, recursive=False)
            if files:
                return FaceFolder(layout, image_dir, tuple(files), _read_partition(partition_file))
    files = _list_images(root, recursive=True)
    if not files:
        raise InputError(f"no images found under {root}; {LAYOUT_HELP}")
    return FaceFolder("folder", root, tuple(files), None)


def holdout_split(count: int, split: str, val_fraction: float, seed: int) -> Tensor:
    """Indices (sorted) of ``split`` among ``count`` items for data without an official partition: a seeded
    permutation's first round(count * val_fraction) items are "val" (also returned for "test"), the rest "train".
    Both parts keep at least one item when val_fraction > 0 and count >= 2."""
    if not 0 <= val_fraction < 1:
        raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if split == "all":
        return torch.arange(count)
    num_val = round(count * val_fraction)
    if val_fraction > 0 and count >= 2:
        num_val = min(max(num_val, 1), count - 1)
    if split in ("val", "test") and num_val == 0:
        raise InputError(f"split {split!r} is empty: val_fraction={val_fraction} of {count} images holds out none; "
                         "use a positive val_fraction or split 'all'")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    chosen = order[:num_val] if split in ("val", "test") else order[num_val:]
    return chosen.sort().values


def _lfw_faces(resolution: int) -> Tensor:
    """scikit-image's bundled LFW subset: its first 100 images are faces (25 x 25 gray) -> (100, 3, R, R) uint8."""
    from skimage import data

    from hypersiren.data.image import resize

    faces = torch.from_numpy(data.lfw_subset()[:LFW_FACES]).float()
    return quantize(resize(faces[:, None], resolution, resolution)).expand(-1, 3, -1, -1).contiguous()


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def split_files(folder: FaceFolder, split: str, val_fraction: float = 0.1, seed: int = 0) -> Tensor:
    """(len(folder.files),) bool: which files belong to ``split`` (official partition if the folder has one,
    else ``holdout_split``). Raises InputError for an unknown or empty split."""
    _check_split(split)
    chosen = torch.zeros(len(folder.files), dtype=torch.bool)
    if folder.partition is not None and split != "all":
        wanted = PARTITION_IDS[split]
        chosen = torch.tensor([folder.partition.get(name) == wanted for name in folder.files])
        if not chosen.any():
            raise InputError(f"split {split!r} has no images in {folder.image_dir}: the partition file lists "
                             f"none of its {len(folder.files)} images as {split}; {LAYOUT_HELP}")
    else:
        chosen[holdout_split(len(folder.files), split, val_fraction, seed)] = True
    return chosen


class FaceImages(Dataset):
    """The faces of one split: ``faces[i]`` is (3, R, R) uint8, ``faces[indices]`` (an int array, a LongTensor or a
    slice) is (B, 3, R, R) uint8, read from ``images`` (memory-mapped from the face cache, or a tensor in memory)
    at ``rows``. A DataLoader fetches a whole batch with one read (``__getitems__``)."""

    def __init__(self, images: MappedImages | Tensor, rows: np.ndarray):
        self.images, self.rows = images, np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> Tensor:
        return self.images[self.rows[index.numpy() if isinstance(index, Tensor) else index]]

    def __getitems__(self, indices) -> Tensor:
        return self[np.asarray(indices)]

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    def first(self, count: int) -> "FaceImages":
        """The first ``count`` faces (all of them if there are fewer)."""
        return FaceImages(self.images, self.rows[:count])

    def load(self) -> Tensor:
        """Every face in memory: (N, 3, R, R) uint8."""
        return self[:]


def _check_arguments(split: str, resolution: int) -> None:
    _check_split(split)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise InputError(f"resolution must be an integer >= 2 (32, 64 or 128 for the paper's settings), got {resolution!r}")


def _check_in_memory(count: int, resolution: int) -> None:
    """InputError if ``count`` faces at ``resolution`` held in memory (FACE_BYTES per value) exceed the budget."""
    check_memory({f"{count:,} faces at resolution {resolution}": count * 3 * resolution**2 * FACE_BYTES})


def open_faces(root: str | Path | FaceFolder | None, split: str = "train", resolution: int = 32, *,
               val_fraction: float = 0.1, seed: int = 0, cache_dir: str | Path | None = None,
               progress: bool = True) -> FaceImages:
    """The faces of ``split`` as a data set of uint8 images, in file order (sorted names), memory-mapped from the
    preprocessed cache (built on first use; see ``load_faces`` for the arguments; ``root`` may also be what
    ``find_faces`` found). The bundled LFW faces are held in memory, checked against the memory budget first."""
    _check_arguments(split, resolution)
    if root is None:
        _check_in_memory(LFW_FACES, resolution)
        images = _lfw_faces(resolution)
        return FaceImages(images, holdout_split(len(images), split, val_fraction, seed).numpy())
    folder = root if isinstance(root, FaceFolder) else find_faces(root)
    in_split = split_files(folder, split, val_fraction, seed)
    images, indices = cached_faces(folder, resolution, cache_dir, progress)
    rows = in_split[indices].nonzero().flatten().numpy()
    if not len(rows):
        raise InputError(f"none of the images of split {split!r} in {folder.image_dir} could be read")
    return FaceImages(images, rows)


def load_faces(root: str | Path | None, split: str = "train", resolution: int = 32, *, val_fraction: float = 0.1,
               seed: int = 0, cache_dir: str | Path | None = None, progress: bool = True,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """Faces (N, 3, R, R) in [0, 1], in file order (sorted names), in memory (``open_faces`` reads large sets
    without loading them).

    root: None -> scikit-image's bundled LFW faces (100 gray faces, repeated to 3 channels); a CelebA root in
    the official or Kaggle layout (official partition: train/val/test); or any folder of images, where "val"
    is a deterministic ``val_fraction`` hold-out chosen by ``seed`` ("test" = "val", "train" = the rest).
    split: "train", "val", "test" or "all" (every image). resolution: side R in pixels (32, 64, 128, ...).
    cache_dir: where preprocessed folders are cached (default ``face_cache.default_cache_dir()``).
    dtype: float32 (values in [0, 1]) or uint8 (0..255, a quarter of the memory for large sets).
    Raises InputError naming the expected layouts for a missing root, no images or an empty split.
    """
    _check_arguments(split, resolution)
    if dtype not in (torch.float32, torch.uint8):
        raise InputError(f"dtype must be torch.float32 or torch.uint8, got {dtype}")
    if root is not None:  # every face of the folder in memory, checked before anything is decoded
        root = find_faces(root)
        _check_in_memory(len(root.files), resolution)
    faces = open_faces(root, split, resolution, val_fraction=val_fraction, seed=seed, cache_dir=cache_dir,
                       progress=progress).load()
    return faces if dtype == torch.uint8 else faces.float() / 255
