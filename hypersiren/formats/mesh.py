"""OBJ, STL (ascii and binary), OFF and GLB through trimesh: the triangles and vertices a file holds, or its
points when it has no faces.

trimesh's loaders are permissive (they log, warn or return an empty scene on malformed input rather than raise,
and skip faces with fewer than 3 corners), so the caller checks the arrays; trimesh's log messages are collected
as notes instead of printed, and numpy's warnings inside it are dropped (the checks report the data itself).
Materials, textures and external references are never followed: the file is handed to trimesh as an open stream.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from hypersiren.errors import InputError

FORMATS = {".obj": "OBJ", ".stl": "STL", ".off": "OFF", ".glb": "GLB (binary glTF 2)"}
LOADER_OPTIONS = {".obj": {"skip_materials": True, "maintain_order": True}}  # keep the file's vertex order


def read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Vertices (V, 3) float64 and triangles (F, 3) int64 (None for a file of points), in the file's frame
    (a GLB scene's node transforms applied), and the notes trimesh made while reading (one line each).
    Nothing is checked for range or finiteness yet."""
    import trimesh

    suffix = path.suffix.lower()
    if suffix == ".obj":
        _check_obj_indices(path)
    with open(path, "rb") as stream, _collected_messages() as notes:
        try:
            loaded = trimesh.load(stream, file_type=suffix[1:], process=False, **LOADER_OPTIONS.get(suffix, {}))
            geometries = loaded.dump() if isinstance(loaded, trimesh.Scene) else [loaded]
        except Exception as err:  # noqa: BLE001 - trimesh's parsers raise anything from IndexError to KeyError
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            if isinstance(err, IndexError):  # trimesh indexed the vertices with the file's face indices
                raise InputError(f"cannot read {FORMATS[suffix]} {path}: it has indices outside the data they index "
                                 f"({reason}); expected face indices of existing vertices") from None
            raise InputError(f"cannot read {FORMATS[suffix]} {path}: {reason}; expected a valid "
                             f"{FORMATS[suffix]} file") from None
    meshes = [g for g in geometries if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    points = [g for g in geometries if isinstance(g, (trimesh.Trimesh, trimesh.PointCloud)) and len(g.vertices)]
    if not points:
        raise InputError(f"{path} holds no mesh or points; expected triangles or points in {FORMATS[suffix]} "
                         "syntax (is the file truncated?)")
    if not meshes:
        return np.concatenate([np.asarray(g.vertices, dtype=np.float64) for g in points]), None, notes
    offsets = np.cumsum([0] + [len(g.vertices) for g in meshes])
    vertices = np.concatenate([np.asarray(g.vertices, dtype=np.float64) for g in meshes])
    faces = np.concatenate([np.asarray(g.faces, dtype=np.int64) + offset for g, offset in zip(meshes, offsets)])
    return vertices, faces, notes


def _check_obj_indices(path: Path) -> None:
    """InputError for a face with vertex index 0: OBJ counts from 1 (negative: back from the last vertex), and
    trimesh would silently read 0 as the last vertex."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            words = line.split()
            if words[:1] == [b"f"] and any(_is_zero(word.split(b"/")[0]) for word in words[1:]):
                raise InputError(f"{path}: OBJ face on line {number} has vertex index 0; expected indices from 1 (or "
                                 "negative ones, counted back from the last vertex)")


def _is_zero(word: bytes) -> bool:
    digits = word.lstrip(b"+-")
    return bool(digits) and digits.isdigit() and int(digits) == 0


@contextlib.contextmanager
def _collected_messages() -> Iterator[list[str]]:
    """trimesh's log records (warning and above) inside the block as one-line strings in the yielded list
    instead of on stderr; Python warnings raised inside the block are dropped."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append((record.getMessage() or record.levelname).splitlines()[0])

    logger = logging.getLogger("trimesh")
    handler, propagate = Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
