"""Oriented point clouds for signed-distance fitting: readers for ``.xyz``, ``.ply`` and ``.obj``, vertex normals
from faces, and the similarity transform into the unit cube.

Readers return a ``PointCloud`` of points (N, 3) and unit normals (N, 3) in the file's units (float64). Normals
come from the file when it has them, otherwise from its faces (area-weighted vertex normals; vertices that no
face with a non-zero area touches are dropped). A points-only file without normals is an error: an SDF fit needs
oriented points.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hypersiren.errors import InputError

FILL = 0.9  # the unit-cube frame maps the bounding box's longest side to [-FILL, FILL]
SUFFIXES = (".xyz", ".ply", ".obj")


@dataclass
class PointCloud:
    """Oriented points: ``points`` (N, 3) and unit ``normals`` (N, 3)."""

    points: np.ndarray
    normals: np.ndarray


@dataclass
class Frame:
    """Similarity transform between file units and the unit-cube frame: ``unit = (p - center) / scale``."""

    center: np.ndarray
    scale: float

    @classmethod
    def fitting(cls, points: np.ndarray, fill: float = FILL) -> "Frame":
        """Centre the bounding box at the origin and scale its longest side to [-fill, fill]."""
        low, high = points.min(axis=0), points.max(axis=0)
        extent = float((high - low).max())
        if not extent > 0:
            raise InputError(f"all {len(points)} points coincide; expected a surface with a non-zero extent")
        return cls(center=(low + high) / 2, scale=extent / (2 * fill))

    def to_unit(self, points: np.ndarray) -> np.ndarray:
        return (points - self.center) / self.scale

    def from_unit(self, points: np.ndarray) -> np.ndarray:
        return points * self.scale + self.center


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Cross products of triangle edges, (F, 3): direction by the right-hand rule, length twice the area."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return np.cross(b - a, c - a)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (V, 3) of a triangle mesh; zero for vertices no face with area touches."""
    weighted = face_normals(vertices, faces)
    normals = np.zeros_like(vertices, dtype=np.float64)
    for i in range(3):
        np.add.at(normals, faces[:, i], weighted)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def read_point_cloud(path: str | Path) -> PointCloud:
    """Read an oriented point cloud from ``.xyz`` (x y z nx ny nz per line), ``.ply`` or ``.obj``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"point cloud {path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"cannot read {path}: expected a {', '.join(SUFFIXES)} file")
    if path.stat().st_size == 0:
        raise InputError(f"point cloud {path} is empty")
    reader = {".xyz": _read_xyz, ".ply": _read_ply, ".obj": _read_obj}[suffix]
    vertices, normals, faces = reader(path)
    return _oriented(path, vertices, normals, faces)


def read_triangles(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangles (F, 3) int64 of a ``.ply`` or ``.obj`` mesh (polygons split into fans)."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in (".ply", ".obj"):
        raise InputError(f"mesh {path} does not exist or is not a .ply/.obj file")
    vertices, _, faces = (_read_ply if path.suffix.lower() == ".ply" else _read_obj)(path)
    if faces is None or len(faces) == 0:
        raise InputError(f"{path} has no faces; expected a triangle mesh")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputError(f"{path} has faces with vertex indices outside 0..{len(vertices) - 1}")
    return vertices, faces


def _oriented(path: Path, vertices: np.ndarray, normals: np.ndarray | None, faces: np.ndarray | None) -> PointCloud:
    """Check the parsed arrays and settle the normals (file's, or from faces)."""
    if len(vertices) == 0:
        raise InputError(f"{path} holds no points")
    if not np.isfinite(vertices).all():
        raise InputError(f"{path} has {int((~np.isfinite(vertices).all(axis=1)).sum())} points with NaN or infinite "
                         "coordinates; expected finite numbers")
    if faces is not None and len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise InputError(f"{path} has faces with vertex indices outside 0..{len(vertices) - 1}")
    if normals is None:
        if faces is None or len(faces) == 0:
            raise InputError(f"{path} has points but neither normals nor faces; an SDF fit needs oriented points "
                             "(.xyz with 6 columns x y z nx ny nz, or a mesh)")
        normals = vertex_normals(vertices, faces)
        keep = np.linalg.norm(normals, axis=1) > 0
        if not keep.any():
            raise InputError(f"every face of {path} has zero area; cannot take normals from its faces")
        return PointCloud(vertices[keep], normals[keep])
    if not np.isfinite(normals).all():
        raise InputError(f"{path} has NaN or infinite normals; expected finite numbers")
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    if (length == 0).any():
        raise InputError(f"{path} has {int((length == 0).sum())} zero-length normals; expected a direction per point")
    return PointCloud(vertices, normals / length)


def _read_xyz(path: Path):
    try:
        table = np.loadtxt(path, dtype=np.float64, comments="#", ndmin=2)
    except ValueError as err:
        reason = str(err).splitlines()[0] if str(err) else "unparseable numbers"
        raise InputError(f"cannot parse {path} as x y z nx ny nz rows: {reason}") from None
    if table.size == 0:
        raise InputError(f"{path} holds no points")
    if table.shape[1] == 3:
        raise InputError(f"{path} has points without normals; an SDF fit needs oriented points "
                         "(6 columns x y z nx ny nz per line)")
    if table.shape[1] != 6:
        raise InputError(f"{path} has {table.shape[1]} columns; expected 6 (x y z nx ny nz)")
    return table[:, :3], table[:, 3:], None


# ---- PLY -------------------------------------------------------------------------------------------------------

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2",
    "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}


@dataclass
class _PlyProperty:
    name: str
    dtype: str  # numpy type code without byte order
    count_dtype: str | None = None  # set for list properties


@dataclass
class _PlyElement:
    name: str
    count: int
    properties: list[_PlyProperty]


def _ply_header(path: Path, data: bytes) -> tuple[str, list[_PlyElement], int]:
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise InputError(f"{path} is not a PLY file (expected 'ply' ... 'end_header')")
    newline = data.find(b"\n", end)
    body = len(data) if newline < 0 else newline + 1
    fmt, elements = None, []
    for number, line in enumerate(data[:end].decode("ascii", "replace").splitlines()[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        bad = InputError(f"{path}: malformed PLY header line {number}: {line.strip()!r}")
        if words[0] == "format":
            if len(words) < 2 or words[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise InputError(f"{path}: unsupported PLY format {line.strip()!r}; expected ascii or binary")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise bad
            elements.append(_PlyElement(words[1], int(words[2]), []))
        elif words[0] == "property":
            if not elements:
                raise bad
            if len(words) == 5 and words[1] == "list" and words[2] in _PLY_TYPES and words[3] in _PLY_TYPES:
                elements[-1].properties.append(_PlyProperty(words[4], _PLY_TYPES[words[3]], _PLY_TYPES[words[2]]))
            elif len(words) == 3 and words[1] in _PLY_TYPES:
                elements[-1].properties.append(_PlyProperty(words[2], _PLY_TYPES[words[1]]))
            else:
                raise bad
        else:
            raise bad
    if fmt is None:
        raise InputError(f"{path}: PLY header has no format line")
    return fmt, elements, body


def _read_ply(path: Path):
    data = path.read_bytes()
    fmt, elements, offset = _ply_header(path, data)
    read = _ply_ascii_elements if fmt == "ascii" else _ply_binary_elements
    tables = read(path, data[offset:], elements, "<" if fmt == "binary_little_endian" else ">")
    vertex = tables.get("vertex")
    if vertex is None or any(axis not in vertex for axis in "xyz"):
        raise InputError(f"{path}: PLY has no vertex element with x, y, z properties")
    vertices = np.stack([vertex[a] for a in "xyz"], axis=1).astype(np.float64)
    normals = None
    if all(n in vertex for n in ("nx", "ny", "nz")):
        normals = np.stack([vertex[n] for n in ("nx", "ny", "nz")], axis=1).astype(np.float64)
    faces = None
    face = tables.get("face", {})
    lists = face.get("vertex_indices", face.get("vertex_index"))
    if lists is not None:
        faces = _triangulate(path, lists)
    return vertices, normals, faces


def _ply_ascii_elements(path: Path, body: bytes, elements: list[_PlyElement], _order: str) -> dict:
    lines = body.decode("ascii", "replace").splitlines()
    lines = [line for line in lines if line.strip()]
    tables, start = {}, 0
    for element in elements:
        rows = lines[start : start + element.count]
        if len(rows) < element.count:
            raise InputError(f"{path}: PLY ends after {len(rows)} of {element.count} '{element.name}' rows")
        start += element.count
        try:
            tables[element.name] = _parse_ascii_rows(rows, element.properties)
        except (ValueError, IndexError):
            raise InputError(f"{path}: unparseable '{element.name}' rows in the PLY body") from None
    return tables


def _parse_ascii_rows(rows: list[str], properties: list[_PlyProperty]) -> dict:
    if all(p.count_dtype is None for p in properties):
        table = np.array(" ".join(rows).split(), dtype=np.float64).reshape(len(rows), len(properties))
        return {p.name: table[:, i] for i, p in enumerate(properties)}
    columns: dict[str, list] = {p.name: [] for p in properties}
    for row in rows:
        words, at = row.split(), 0
        for p in properties:
            if p.count_dtype is None:
                columns[p.name].append(float(words[at]))
                at += 1
            else:
                n = int(words[at])
                columns[p.name].append([int(w) for w in words[at + 1 : at + 1 + n]])
                if len(columns[p.name][-1]) != n:
                    raise ValueError("short list")
                at += 1 + n
    return columns


def _ply_binary_elements(path: Path, body: bytes, elements: list[_PlyElement], order: str) -> dict:
    tables, at = {}, 0
    for element in elements:
        try:
            if all(p.count_dtype is None for p in element.properties):
                dtype = np.dtype([(p.name, order + p.dtype) for p in element.properties])
                table = np.frombuffer(body, dtype=dtype, count=element.count, offset=at)
                at += dtype.itemsize * element.count
                tables[element.name] = {p.name: table[p.name] for p in element.properties}
            else:
                tables[element.name], at = _binary_list_rows(body, at, element, order)
        except ValueError:
            raise InputError(f"{path}: PLY body ends inside the '{element.name}' element (truncated or corrupt)") from None
    return tables


def _binary_list_rows(body: bytes, at: int, element: _PlyElement, order: str) -> tuple[dict, int]:
    """Rows of an element with list properties. Fast path: a single list property whose lists share a length."""
    props = element.properties
    if len(props) == 1 and element.count:
        p = props[0]
        n = int(np.frombuffer(body, dtype=order + p.count_dtype, count=1, offset=at)[0])
        dtype = np.dtype([("n", order + p.count_dtype), ("v", order + p.dtype, (n,))])
        if at + dtype.itemsize * element.count <= len(body):
            table = np.frombuffer(body, dtype=dtype, count=element.count, offset=at)
            if (table["n"] == n).all():
                return {p.name: table["v"].astype(np.int64)}, at + dtype.itemsize * element.count
    columns: dict[str, list] = {p.name: [] for p in props}
    for _ in range(element.count):
        for p in props:
            if p.count_dtype is None:
                columns[p.name].append(np.frombuffer(body, order + p.dtype, 1, at)[0])
                at += np.dtype(p.dtype).itemsize
            else:
                n = int(np.frombuffer(body, order + p.count_dtype, 1, at)[0])
                at += np.dtype(p.count_dtype).itemsize
                columns[p.name].append(np.frombuffer(body, order + p.dtype, n, at).tolist())
                at += np.dtype(p.dtype).itemsize * n
    return columns, at


def _triangulate(path: Path, polygons) -> np.ndarray:
    """Faces as triangles (F, 3) int64; polygons are split into fans."""
    if isinstance(polygons, np.ndarray) and polygons.ndim == 2:
        if polygons.shape[1] < 3:
            raise InputError(f"{path} has faces with fewer than 3 vertices")
        fans = [polygons[:, [0, k, k + 1]] for k in range(1, polygons.shape[1] - 1)]
        return np.concatenate(fans).astype(np.int64) if fans else np.zeros((0, 3), np.int64)
    triangles = []
    for polygon in polygons:
        if len(polygon) < 3:
            raise InputError(f"{path} has a face with {len(polygon)} vertices; expected 3 or more")
        triangles += [(polygon[0], polygon[k], polygon[k + 1]) for k in range(1, len(polygon) - 1)]
    return np.asarray(triangles, dtype=np.int64).reshape(-1, 3)


# ---- OBJ -------------------------------------------------------------------------------------------------------

_OBJ_CORNER = re.compile(r"^(-?\d+)(?:/(-?\d*)(?:/(-?\d+))?)?$")


def _read_obj(path: Path):
    vertices, file_normals, polygons, corner_normals = [], [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            try:
                if words[0] == "v":
                    vertices.append([float(w) for w in words[1:4]])
                    if len(words) < 4:
                        raise ValueError
                elif words[0] == "vn":
                    file_normals.append([float(w) for w in words[1:4]])
                    if len(words) < 4:
                        raise ValueError
                elif words[0] == "f":
                    corners = [_OBJ_CORNER.match(w) for w in words[1:]]
                    if len(corners) < 3 or not all(corners):
                        raise ValueError
                    polygons.append([_obj_index(int(c.group(1)), len(vertices)) for c in corners])
                    corner_normals.append([_obj_index(int(c.group(3)), len(file_normals)) if c.group(3) else None
                                           for c in corners])
            except ValueError:
                raise InputError(f"{path}: cannot parse OBJ line {number}: {line.strip()[:80]!r}") from None
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    file_normals = np.asarray(file_normals, dtype=np.float64).reshape(-1, 3)
    faces = _triangulate(path, polygons) if polygons else None
    normals = None
    if polygons and all(n is not None for corners in corner_normals for n in corners):
        normals = _normals_from_corners(path, len(vertices), polygons, corner_normals, file_normals)
    elif not polygons and len(file_normals) == len(vertices) and len(vertices):
        normals = file_normals
    return vertices, normals, faces


def _obj_index(index: int, count: int) -> int:
    """OBJ indices start at 1; negative ones count back from the last element read so far."""
    return index - 1 if index > 0 else count + index


def _normals_from_corners(path: Path, count: int, polygons, corner_normals, file_normals) -> np.ndarray:
    """Per-vertex normals averaged over the face corners that name them (``f v//vn``)."""
    vertex_index = np.fromiter((v for p in polygons for v in p), dtype=np.int64)
    normal_index = np.fromiter((n for c in corner_normals for n in c), dtype=np.int64)
    if normal_index.min() < 0 or normal_index.max() >= len(file_normals):
        raise InputError(f"{path} has faces naming normals outside 1..{len(file_normals)}")
    if vertex_index.min() < 0 or vertex_index.max() >= count:
        raise InputError(f"{path} has faces with vertex indices outside 1..{count}")
    sums = np.zeros((count, 3))
    np.add.at(sums, vertex_index, file_normals[normal_index])
    used = np.zeros(count, dtype=bool)
    used[vertex_index] = True
    if not used.all():
        raise InputError(f"{path} has {int((~used).sum())} vertices that no face uses; expected every vertex in a face")
    return sums
