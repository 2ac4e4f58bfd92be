"""Face images for priors: CelebA in its official or Kaggle layout, any folder of images, or scikit-image's
bundled LFW faces; centre square crop, resize, a one-time preprocessed cache, and a random-batch sampler.

Faces are (N, 3, R, R) float32 in [0, 1] ("unit"; ``hypersiren.data.image.from_unit`` gives network values).
Every image is stored as 8 bits after resizing, so a cached and a freshly decoded load give the same values.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from hypersiren.errors import InputError
from hypersiren.limits import check_memory

SPLITS = ("train", "val", "test", "all")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
CROP_RULE = "upright (EXIF), centre square of side min(h, w), antialiased bilinear resize, 8-bit"
CACHE_FORMAT = "hypersiren-faces/1"
LAYOUT_HELP = ("expected (a) official CelebA: ROOT/img_align_celeba/*.jpg + ROOT/list_eval_partition.txt, "
               "(b) Kaggle CelebA: ROOT/img_align_celeba/img_align_celeba/*.jpg + ROOT/list_eval_partition.csv, "
               "or (c) a folder of face images (.jpg/.png, searched recursively)")
PARTITION_IDS = {"train": 0, "val": 1, "test": 2}
SKIPPED_NAMED = 5
FACE_BYTES = 9  # memory per value of the loaded faces: the uint8 cache, the float32 faces and a float32 copy
LFW_FACES = 100  # scikit-image's LFW subset: its first 100 images are faces


@dataclass(frozen=True)
class FaceFolder:
    """What was found under a data root: the layout, the images (relative to ``image_dir``, sorted) and, for
    CelebA layouts, the official partition (file name -> 0 train, 1 val, 2 test)."""

    layout: str  # "celeba", "celeba-kaggle" or "folder"
    image_dir: Path
    files: tuple[str, ...]
    partition: dict[str, int] | None


def default_cache_dir() -> Path:
    """``$HYPERSIREN_CACHE/faces`` if the variable is set, else ``~/.cache/hypersiren/faces``."""
    base = os.environ.get("HYPERSIREN_CACHE")
    return Path(base).expanduser() / "faces" if base else Path.home() / ".cache" / "hypersiren" / "faces"


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


def _fingerprint(folder: FaceFolder, resolution: int) -> str:
    """Hash of everything the preprocessed images depend on: the folder, each file's name, size and mtime,
    the resolution and the crop rule."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_FORMAT, str(folder.image_dir.resolve()), resolution, CROP_RULE]).encode())
    for name in folder.files:
        stat = (folder.image_dir / name).stat()
        h.update(f"\0{name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def square_crop(image: Tensor) -> Tensor:
    """The centred square of side min(H, W) of a (C, H, W) image (178 x 178 of CelebA's 178 x 218)."""
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[..., top : top + side, left : left + side]


def _quantize(images: Tensor) -> Tensor:
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def _decode(path: Path, resolution: int) -> Tensor | str:
    """(3, R, R) uint8 face from an image file (turned upright as its EXIF orientation says), or the reason it
    cannot be read (corrupt, truncated, over the pixel limit, or not a regular file: a FIFO is never opened)."""
    from hypersiren.data.image import picture_tensor, resize
    from hypersiren.formats.image import read_image

    try:
        image = picture_tensor(read_image(path), "RGB", path)
    except InputError as err:
        return str(err)
    return _quantize(resize(square_crop(image), resolution, resolution))


def _decode_folder(folder: FaceFolder, resolution: int, progress: bool) -> tuple[Tensor, Tensor, list[str]]:
    """Decode every file: (images (M, 3, R, R) uint8, indices (M,) into folder.files, skipped 'name: reason')."""
    from tqdm.auto import tqdm

    workers = max(1, min(8, os.cpu_count() or 1))
    paths = [folder.image_dir / name for name in folder.files]
    images = torch.empty(len(paths), 3, resolution, resolution, dtype=torch.uint8)
    readable = torch.zeros(len(paths), dtype=torch.bool)
    skipped = []
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(_decode, paths, [resolution] * len(paths))
        for index, result in enumerate(tqdm(results, total=len(paths), desc=f"decoding faces at {resolution}px",
                                            unit="img", disable=not progress)):
            if isinstance(result, str):
                skipped.append(f"{folder.files[index]}: {result}")
            else:
                images[index], readable[index] = result, True
    indices = readable.nonzero().flatten()
    return (images if readable.all() else images[indices]), indices, skipped


def _load_cache(path: Path, fingerprint: str) -> tuple[Tensor, Tensor, list[str]] | None:
    """The cached (images, indices, skipped) if ``path`` holds the cache of ``fingerprint``, else None."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["hypersiren"])
            if meta.get("fingerprint") != fingerprint or meta.get("format") != CACHE_FORMAT:
                return None
            images, indices = f.get_tensor("images"), f.get_tensor("indices")
        if images.dtype != torch.uint8 or images.shape[1:] != (3, meta["resolution"], meta["resolution"]) \
                or indices.shape != (len(images),):
            raise ValueError("unexpected tensor shapes")
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"ignoring unusable face cache {path} ({err}); decoding the images again", stacklevel=4)
        return None
    return images, indices, list(meta["skipped"])


def _write_cache(path: Path, fingerprint: str, images: Tensor, indices: Tensor, skipped: list[str],
                 folder: FaceFolder, resolution: int) -> None:
    """Write the cache atomically (``hypersiren.io.atomic_path``); warn if that is impossible."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from hypersiren.io import atomic_path

    meta = {"format": CACHE_FORMAT, "fingerprint": fingerprint, "root": str(folder.image_dir), "layout": folder.layout,
            "resolution": resolution, "crop": CROP_RULE, "files": len(folder.files), "skipped": skipped}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({"images": images.contiguous(), "indices": indices}, tmp, metadata={"hypersiren": json.dumps(meta)})
    except (OSError, SafetensorError) as err:
        warnings.warn(f"cannot write the face cache {path} ({getattr(err, 'strerror', None) or err}); continuing "
                      "without it", stacklevel=4)


def cache_file(folder: FaceFolder, resolution: int, cache_dir: str | Path | None = None,
               fingerprint: str | None = None) -> Path:
    """Where the preprocessed images of ``folder`` at ``resolution`` are cached."""
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return directory / f"faces-{resolution}px-{fingerprint or _fingerprint(folder, resolution)}.safetensors"


def cached_faces(folder: FaceFolder, resolution: int, cache_dir: str | Path | None = None,
                 progress: bool = True) -> tuple[Tensor, Tensor]:
    """Every readable image of ``folder`` preprocessed: (images (M, 3, R, R) uint8, indices (M,) into
    folder.files). Read from the cache if it matches the folder, else decoded (with a progress bar) and cached.
    Unreadable files are skipped with a warning that counts them and names the first few."""
    fingerprint = _fingerprint(folder, resolution)
    path = cache_file(folder, resolution, cache_dir, fingerprint)
    cached = _load_cache(path, fingerprint)
    if cached is None:
        cached = _decode_folder(folder, resolution, progress)
        if len(cached[0]):
            _write_cache(path, fingerprint, *cached, folder, resolution)
    images, indices, skipped = cached
    shown = "; ".join(skipped[:SKIPPED_NAMED]) + ("; ..." if len(skipped) > SKIPPED_NAMED else "")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) of {len(folder.files)} in {folder.image_dir}: "
                      f"{shown}", stacklevel=3)
    if not len(images):
        raise InputError(f"none of the {len(folder.files)} images in {folder.image_dir} could be read ({shown})")
    return images, indices


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
    return _quantize(resize(faces[:, None], resolution, resolution)).expand(-1, 3, -1, -1).contiguous()


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


def load_faces(root: str | Path | None, split: str = "train", resolution: int = 32, *, val_fraction: float = 0.1,
               seed: int = 0, cache_dir: str | Path | None = None, progress: bool = True,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """Faces (N, 3, R, R) in [0, 1], in file order (sorted names).

    root: None -> scikit-image's bundled LFW faces (100 gray faces, repeated to 3 channels); a CelebA root in
    the official or Kaggle layout (official partition: train/val/test); or any folder of images, where "val"
    is a deterministic ``val_fraction`` hold-out chosen by ``seed`` ("test" = "val", "train" = the rest).
    split: "train", "val", "test" or "all" (every image). resolution: side R in pixels (32, 64, 128, ...).
    cache_dir: where preprocessed folders are cached (default ``default_cache_dir()``).
    dtype: float32 (values in [0, 1]) or uint8 (0..255, a quarter of the memory for large sets).
    Raises InputError naming the expected layouts for a missing root, no images or an empty split.
    """
    _check_split(split)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise InputError(f"resolution must be an integer >= 2 (32, 64 or 128 for the paper's settings), got {resolution!r}")
    if dtype not in (torch.float32, torch.uint8):
        raise InputError(f"dtype must be torch.float32 or torch.uint8, got {dtype}")
    if root is None:
        check_memory({f"{LFW_FACES} faces at resolution {resolution}": LFW_FACES * 3 * resolution**2 * FACE_BYTES})
        faces = _lfw_faces(resolution)
        faces = faces[holdout_split(len(faces), split, val_fraction, seed)]
    else:
        folder = find_faces(root)
        check_memory({f"{len(folder.files):,} faces at resolution {resolution}":
                      len(folder.files) * 3 * resolution**2 * FACE_BYTES})
        in_split = split_files(folder, split, val_fraction, seed)
        images, indices = cached_faces(folder, resolution, cache_dir, progress)
        faces = images[in_split[indices]]
        if not len(faces):
            raise InputError(f"none of the images of split {split!r} in {folder.image_dir} could be read")
    return faces if dtype == torch.uint8 else faces.float() / 255


class FaceBatches:
    """Random batches of faces: ``sample(generator)`` -> (B, 3, R, R) float32 in [0, 1] on the faces' device,
    drawn uniformly with replacement, each mirrored left-right with probability 1/2 if ``flip``.

    faces: (N, 3, R, R) float in [0, 1] or uint8 (as ``load_faces(..., dtype=torch.uint8)`` returns).
    """

    def __init__(self, faces: Tensor, batch_size: int, flip: bool = False):
        if faces.dim() != 4 or faces.shape[1] != 3 or len(faces) == 0:
            raise InputError(f"faces must be a non-empty (N, 3, R, R) tensor, got shape {tuple(faces.shape)}")
        if batch_size < 1:
            raise InputError(f"batch size must be positive, got {batch_size}")
        self.faces, self.batch_size, self.flip = faces, batch_size, flip

    def __len__(self) -> int:
        return len(self.faces)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else torch.device("cpu")
        index = torch.randint(len(self.faces), (self.batch_size,), generator=generator, device=device)
        batch = self.faces[index.to(self.faces.device)]
        batch = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()
        if self.flip:
            mirror = torch.rand(self.batch_size, generator=generator, device=device) < 0.5
            batch = torch.where(mirror.to(batch.device).reshape(-1, 1, 1, 1), batch.flip(-1), batch)
        return batch
