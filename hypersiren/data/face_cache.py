"""The preprocessed face cache: every readable image of a face folder at one resolution, 8 bits, in one file that
is written image by image and read through a memory map, so neither building nor training holds the data set
in memory (CelebA at 128 px: 10 GB of uint8, 40 GB as float32).

The file is plain safetensors (no pickle): ``images`` (M, 3, R, R) uint8, ``indices`` (M,) int64 (each image's
position in ``FaceFolder.files``) and ``skipped`` (K,) uint8 (the UTF-8 JSON list of "name: reason" for files that
could not be read), with a JSON description under the metadata key ``hypersiren``. The header is written last, in
space reserved for the largest header the folder could need (safetensors allows trailing spaces in it).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
from torch import Tensor

from hypersiren.errors import InputError, NoSpaceError
from hypersiren.limits import check_memory

if TYPE_CHECKING:
    from hypersiren.data.faces import FaceFolder

CROP_RULE = "upright (EXIF), centre square of side min(h, w), antialiased bilinear resize, 8-bit"
CACHE_FORMAT = "hypersiren-faces/2"
DECODE_CHUNK = 1024  # images handed to the decoding threads at a time
SKIPPED_NAMED = 5  # unreadable files named in the warning
IN_MEMORY_BYTES = 2  # memory per value of faces decoded in memory: the decoded faces and their stacked copy


def default_cache_dir() -> Path:
    """``$HYPERSIREN_CACHE/faces`` if the variable is set, else ``~/.cache/hypersiren/faces``."""
    base = os.environ.get("HYPERSIREN_CACHE")
    return Path(base).expanduser() / "faces" if base else Path.home() / ".cache" / "hypersiren" / "faces"


def _fingerprint(folder: FaceFolder, resolution: int) -> str:
    """Hash of everything the preprocessed images depend on: the folder, each file's name, size and mtime,
    the resolution and the crop rule."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_FORMAT, str(folder.image_dir.resolve()), resolution, CROP_RULE]).encode())
    for name in folder.files:
        stat = (folder.image_dir / name).stat()
        h.update(f"\0{name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def cache_file(folder: FaceFolder, resolution: int, cache_dir: str | Path | None = None,
               fingerprint: str | None = None) -> Path:
    """Where the preprocessed images of ``folder`` at ``resolution`` are cached."""
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return directory / f"faces-{resolution}px-{fingerprint or _fingerprint(folder, resolution)}.safetensors"


def square_crop(image: Tensor) -> Tensor:
    """The centred square of side min(H, W) of a (C, H, W) image (178 x 178 of CelebA's 178 x 218)."""
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[..., top : top + side, left : left + side]


def quantize(images: Tensor) -> Tensor:
    """Values in [0, 1] -> uint8 0..255 (rounded)."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def _decode(path: Path, resolution: int) -> Tensor | str:
    """(3, R, R) uint8 face from an image file (turned upright as its EXIF orientation says; 16-bit and float
    pictures by their type's range), or the reason it cannot be read (corrupt, truncated, over the pixel limit or
    the memory budget, values outside the type's range, or not a regular file: a FIFO is never opened)."""
    from hypersiren.data.image import picture_tensor, resize
    from hypersiren.formats.image import read_image

    try:
        image = picture_tensor(read_image(path), "RGB", path)
    except InputError as err:
        return str(err)
    return quantize(resize(square_crop(image), resolution, resolution))


def _readable(folder: FaceFolder, resolution: int, progress: bool, skipped: list[str]) -> Iterator[tuple[int, Tensor]]:
    """(index into folder.files, (3, R, R) uint8 face) for every readable file, in order, decoded by a pool of
    threads a chunk at a time (PIL and torch release the GIL); "name: reason" of each other file joins ``skipped``."""
    from tqdm.auto import tqdm

    paths = [folder.image_dir / name for name in folder.files]
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool, \
            tqdm(total=len(paths), desc=f"decoding faces at {resolution}px", unit="img", disable=not progress) as bar:
        for start in range(0, len(paths), DECODE_CHUNK):
            chunk = paths[start:start + DECODE_CHUNK]
            for index, face in enumerate(pool.map(_decode, chunk, [resolution] * len(chunk)), start=start):
                if isinstance(face, str):
                    skipped.append(f"{folder.files[index]}: {face}")
                else:
                    yield index, face
            bar.update(len(chunk))


def _header(meta: dict, count: int, row_bytes: int, skipped_bytes: int) -> bytes:
    """The safetensors header (JSON) of ``count`` images of ``row_bytes`` bytes and a skipped list of that size."""
    images_end = count * row_bytes
    indices_end = images_end + 8 * count
    resolution = meta["resolution"]
    return json.dumps({
        "images": {"dtype": "U8", "shape": [count, 3, resolution, resolution], "data_offsets": [0, images_end]},
        "indices": {"dtype": "I64", "shape": [count], "data_offsets": [images_end, indices_end]},
        "skipped": {"dtype": "U8", "shape": [skipped_bytes], "data_offsets": [indices_end, indices_end + skipped_bytes]},
        "__metadata__": {"hypersiren": json.dumps(meta)},
    }, separators=(",", ":")).encode()


class _NothingReadable(Exception):
    """No image of the folder could be read (no cache is written); ``skipped``: why, per file."""

    def __init__(self, skipped: list[str]):
        self.skipped = skipped


def _write_cache(tmp: Path, meta: dict, folder: FaceFolder, progress: bool) -> None:
    """Write the cache file ``tmp``, decoding one image at a time; _NothingReadable if no image is readable."""
    row_bytes = 3 * meta["resolution"] ** 2
    largest = len(_header(meta, len(folder.files), row_bytes, 10**15))  # every number at its largest
    reserved = -(-largest // 8) * 8  # the data stays 8-byte aligned
    indices, skipped = [], []
    with open(tmp, "wb") as f:
        f.write(b" " * (8 + reserved))
        for index, face in _readable(folder, meta["resolution"], progress, skipped):
            f.write(face.numpy().tobytes())
            indices.append(index)
        if not indices:
            raise _NothingReadable(skipped)
        listing = json.dumps(skipped).encode()
        f.write(np.asarray(indices, dtype="<i8").tobytes() + listing)
        f.seek(0)
        f.write(struct.pack("<Q", reserved) + _header(meta, len(indices), row_bytes, len(listing)).ljust(reserved))


class MappedImages:
    """uint8 images (M, 3, R, R) stored at byte ``offset`` of ``path``, read through a read-only memory map that
    each process opens on first use (a DataLoader worker reopens it rather than receiving a copy).
    ``images[index]`` (an int, a slice or an int array) is a uint8 tensor in memory."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, int, int, int]):
        self.path, self.offset, self.shape = path, offset, shape
        self._map: np.memmap | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> Tensor:
        if self._map is None:
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r", offset=self.offset, shape=self.shape)
        return torch.from_numpy(np.array(self._map[index]))  # a copy: the map itself is read-only

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_map": None}


def _open_cache(path: Path, fingerprint: str) -> tuple[MappedImages, Tensor, list[str]] | None:
    """The cached (images, indices, skipped) if ``path`` holds the cache of ``fingerprint``, else None."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:  # checks the whole layout against the file's size
            meta = json.loads(f.metadata()["hypersiren"])
            if meta.get("fingerprint") != fingerprint or meta.get("format") != CACHE_FORMAT:
                return None
            indices, skipped = f.get_tensor("indices"), json.loads(bytes(f.get_tensor("skipped").numpy()))
        with open(path, "rb") as raw:
            (length,) = struct.unpack("<Q", raw.read(8))
            entry = json.loads(raw.read(length))["images"]
        shape = tuple(entry["shape"])
        if entry["dtype"] != "U8" or shape[1:] != (3, meta["resolution"], meta["resolution"]) \
                or indices.shape != shape[:1] or not isinstance(skipped, list):
            raise ValueError("unexpected tensor shapes")
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"ignoring unusable face cache {path} ({err}); decoding the images again", stacklevel=4)
        return None
    return MappedImages(path, 8 + length + entry["data_offsets"][0], shape), indices, skipped


def _decode_in_memory(folder: FaceFolder, resolution: int, progress: bool) -> tuple[Tensor, Tensor, list[str]]:
    """Every file decoded into memory (when no cache can be written): (images, indices, skipped)."""
    skipped: list[str] = []
    pairs = list(_readable(folder, resolution, progress, skipped))
    images = torch.stack([face for _, face in pairs]) if pairs else _empty(resolution)
    return images, torch.tensor([index for index, _ in pairs], dtype=torch.int64), skipped


def _empty(resolution: int) -> Tensor:
    return torch.empty(0, 3, resolution, resolution, dtype=torch.uint8)


def cached_faces(folder: FaceFolder, resolution: int, cache_dir: str | Path | None = None,
                 progress: bool = True) -> tuple[MappedImages | Tensor, Tensor]:
    """Every readable image of ``folder`` preprocessed: (images (M, 3, R, R) uint8, memory-mapped from the cache,
    or a tensor in memory if no cache can be written; indices (M,) into folder.files). Read from the cache if it
    matches the folder, else decoded (with a progress bar) into it. Unreadable files are skipped with a warning
    that counts them and names the first few."""
    from hypersiren.io import atomic_path

    fingerprint = _fingerprint(folder, resolution)
    path = cache_file(folder, resolution, cache_dir, fingerprint)
    cached = _open_cache(path, fingerprint)
    if cached is None:
        meta = {"format": CACHE_FORMAT, "fingerprint": fingerprint, "root": str(folder.image_dir),
                "layout": folder.layout, "resolution": resolution, "crop": CROP_RULE, "files": len(folder.files)}
        created = [d for d in path.parents if not d.exists()]  # removed again if nothing is cached
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                _write_cache(tmp, meta, folder, progress)
            cached = _open_cache(path, fingerprint)
        except _NothingReadable as nothing:
            for directory in created:
                directory.rmdir()
            cached = _empty(resolution), torch.empty(0, dtype=torch.int64), nothing.skipped
        except (OSError, NoSpaceError) as err:
            warnings.warn(f"cannot write the face cache {path} ({getattr(err, 'strerror', None) or err}); "
                          "continuing without it", stacklevel=3)
        if cached is None:  # every face in memory: checked against the memory budget before decoding
            check_memory({f"{len(folder.files):,} faces at resolution {resolution} in memory (the face cache {path} "
                          "could not be written)": len(folder.files) * 3 * resolution**2 * IN_MEMORY_BYTES})
            cached = _decode_in_memory(folder, resolution, progress)
    images, indices, skipped = cached
    shown = "; ".join(skipped[:SKIPPED_NAMED]) + ("; ..." if len(skipped) > SKIPPED_NAMED else "")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) of {len(folder.files)} in {folder.image_dir}: "
                      f"{shown}", stacklevel=3)
    if not len(images):
        raise InputError(f"none of the {len(folder.files)} images in {folder.image_dir} could be read ({shown})")
    return images, indices
