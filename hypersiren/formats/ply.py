"""PLY (ascii and binary) through plyfile: vertices, optional per-vertex normals and polygon faces in, binary
triangle meshes with vertex normals out.

plyfile parses the header and body and reports truncated or malformed data; this module checks what a mesh
needs on top of it: element counts the file's size can hold (plyfile allocates what the header declares), scalar
x, y, z (and nx, ny, nz), integer face index lists, polygons split into fans.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hypersiren.errors import InputError

FACE_PROPERTIES = ("vertex_indices", "vertex_index")  # both spellings are in use
HEADER_LINE = 1024  # longest header line read when checking element counts
TRIANGLES = {"face": {name: 3 for name in FACE_PROPERTIES}}  # plyfile's memory-mapped fast path for triangle meshes


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Vertices (V, 3) float64, triangles (F, 3) int64 or None, normals (V, 3) float64 or None (not yet checked
    for range or finiteness)."""
    from plyfile import PlyData, PlyParseError

    with open(path, "rb") as f:
        if f.read(4).rstrip(b"\r\n") != b"ply":
            raise InputError(f"{path} is not a PLY file (expected 'ply' ... 'end_header')")
    _check_counts(path)
    try:
        try:
            data = PlyData.read(str(path), known_list_len=TRIANGLES)
        except PlyParseError:  # faces with other than 3 corners (or a damaged file: read again to say why)
            data = PlyData.read(str(path))
    except (PlyParseError, ValueError, OSError, MemoryError, UnicodeDecodeError) as err:
        raise _read_error(path, err) from None
    if "vertex" not in data or not all(axis in data["vertex"].data.dtype.names for axis in "xyz"):
        raise InputError(f"{path}: PLY has no vertex element with x, y, z properties")
    vertex = data["vertex"]
    vertices = _scalar_columns(path, vertex, ("x", "y", "z"))
    normals = None
    if all(name in vertex.data.dtype.names for name in ("nx", "ny", "nz")):
        normals = _scalar_columns(path, vertex, ("nx", "ny", "nz"))
    faces = _faces(path, data["face"]) if "face" in data and data["face"].count else None
    return vertices, faces, normals


def _check_counts(path: Path) -> None:
    """InputError if the header declares more rows of an element than the bytes after it (each row takes at least
    one) can hold, before plyfile allocates arrays of the declared sizes."""
    elements: list[list] = []  # [name, count, properties]
    with open(path, "rb") as f:
        while line := f.readline(HEADER_LINE):
            words = line.split()
            if words[:1] == [b"element"] and len(words) == 3 and words[2].isdigit():
                elements.append([words[1].decode(errors="replace"), int(words[2]), 0])
            elif words[:1] == [b"property"] and elements:
                elements[-1][2] += 1
            elif words[:1] == [b"end_header"]:
                break
        body = path.stat().st_size - f.tell()
    for name, count, properties in elements:
        if properties and count > body:
            raise InputError(f"{path}: PLY header declares {count:,} '{name}' rows, more than the {body:,} bytes after "
                             "it can hold (truncated or corrupt)")


def _read_error(path: Path, err: Exception) -> InputError:
    """One line saying what plyfile found wrong, and where."""
    from plyfile import PlyElementParseError, PlyHeaderParseError

    if isinstance(err, PlyHeaderParseError):
        return InputError(f"{path}: unsupported PLY format or malformed header ({err}); expected format ascii, "
                          "binary_little_endian or binary_big_endian and element/property lines")
    if isinstance(err, PlyElementParseError) and err.element is not None:
        name, count = err.element.name, err.element.count
        if err.message == "early end-of-file":
            return InputError(f"{path}: PLY ends after {err.row} of {count} '{name}' rows (truncated or corrupt)")
        return InputError(f"{path}: unreadable PLY '{name}' row {err.row}: {err.message} (truncated or corrupt)")
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return InputError(f"cannot read PLY {path}: {reason}; expected an ascii or binary PLY file")


def _scalar_columns(path: Path, element, names: tuple[str, ...]) -> np.ndarray:
    """The named properties of ``element`` as columns (count, len(names)) float64; each must be one number."""
    from plyfile import PlyListProperty

    for name in names:
        if isinstance(element.ply_property(name), PlyListProperty):
            raise InputError(f"{path}: PLY vertex property {name!r} is a list; expected one number per vertex")
    return np.stack([element[name] for name in names], axis=1).astype(np.float64)


def _faces(path: Path, element) -> np.ndarray:
    """Triangles (F, 3) int64 of a face element: index lists of integers, polygons split into fans."""
    from plyfile import PlyListProperty

    name = next((n for n in FACE_PROPERTIES if n in element.data.dtype.names), None)
    prop = element.ply_property(name) if name else None
    if not isinstance(prop, PlyListProperty):
        raise InputError(f"{path}: PLY face element has no list property {' or '.join(FACE_PROPERTIES)}; "
                         "expected a list of vertex indices per face")
    if np.dtype(prop.val_dtype).kind not in "iu":
        raise InputError(f"{path}: PLY face indices are {np.dtype(prop.val_dtype).name} numbers; expected integer "
                         "vertex indices")
    if np.dtype(prop.len_dtype).kind not in "iu":
        raise InputError(f"{path}: PLY face list lengths are {np.dtype(prop.len_dtype).name} numbers; expected "
                         "integer counts")
    lists = element[name]
    if lists.dtype != object:  # the fast path read (F, 3) at once
        return lists.astype(np.int64)
    return fan_triangles(path, list(lists))


def fan_triangles(path: Path, polygons: list[np.ndarray]) -> np.ndarray:
    """Polygons (lists of vertex indices) as triangles (F, 3) int64: (p0, pk, pk+1) for k = 1 .. n-2 each."""
    lengths = np.fromiter(map(len, polygons), dtype=np.int64, count=len(polygons))
    if (lengths < 3).any():
        first = int(np.argmax(lengths < 3))
        raise InputError(f"{path}: face {first} has {lengths[first]} vertices; expected 3 or more")
    flat = np.concatenate(polygons).astype(np.int64)
    fans = lengths - 2
    polygon = np.repeat(np.arange(len(polygons)), fans)
    start = (np.cumsum(lengths) - lengths)[polygon]
    corner = np.arange(fans.sum()) - np.repeat(np.cumsum(fans) - fans, fans) + 1  # k = 1 .. n-2 per polygon
    return np.stack([flat[start], flat[start + corner], flat[start + corner + 1]], axis=1)


def write_ply(path: str | Path, vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray) -> None:
    """Binary little-endian PLY, atomically: float32 x, y, z, nx, ny, nz per vertex ((V, 3) each) and int32
    triangles (F, 3) as ``vertex_indices`` lists."""
    from plyfile import PlyData, PlyElement

    from hypersiren.io import atomic_write

    vertex = np.empty(len(vertices), dtype=[(n, "<f4") for n in ("x", "y", "z", "nx", "ny", "nz")])
    for i, axis in enumerate("xyz"):
        vertex[axis], vertex["n" + axis] = vertices[:, i], normals[:, i]
    face = np.empty(len(faces), dtype=[("vertex_indices", "<i4", (3,))])
    face["vertex_indices"] = faces
    data = PlyData([PlyElement.describe(vertex, "vertex"), PlyElement.describe(face, "face")],
                   byte_order="<", comments=["written by hypersiren"])
    with atomic_write(path) as f:
        data.write(f)
