"""Point-cloud and mesh files: one reader for every format ``fit sdf`` accepts, returning checked arrays.

``.xyz`` (x y z [nx ny nz] per line, numpy), ``.ply`` (plyfile, see ``ply``), ``.obj`` / ``.stl`` / ``.off`` /
``.glb`` (trimesh, see ``mesh``). Whatever the format, a ``SurfaceFile`` holds finite vertices, faces whose
indices exist and finite normals, with a span that float64 can centre (so the unit-cube frame cannot
overflow), or the reader raised a one-line InputError.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hypersiren.errors import InputError
from hypersiren.io import check_input_file

SUFFIXES = (".xyz", ".ply", ".obj", ".stl", ".off", ".glb")
EXPECTED = "a .xyz, .ply, .obj, .stl, .off or .glb point cloud or mesh"


@dataclass
class SurfaceFile:
    """A file's vertices (V, 3) float64, triangles (F, 3) int64 into them or None, per-vertex normals (V, 3)
    float64 or None (as stored: not normalised), in the file's units."""

    vertices: np.ndarray
    faces: np.ndarray | None
    normals: np.ndarray | None


def read_surface(path: str | Path) -> SurfaceFile:
    """Read any of SUFFIXES; InputError for a missing, empty, unknown, malformed or inconsistent file.
    Notes trimesh made on a file it read are passed on as warnings naming the file."""
    path = check_input_file(path, "point cloud", EXPECTED)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"cannot read {path}: expected a {', '.join(SUFFIXES)} file")
    notes: list[str] = []
    if suffix == ".xyz":
        vertices, faces, normals = _read_xyz(path)
    elif suffix == ".ply":
        from hypersiren.formats.ply import read_ply

        vertices, faces, normals = read_ply(path)
    else:
        from hypersiren.formats.mesh import read_mesh

        (vertices, faces, notes), normals = read_mesh(path), None
    surface = _checked(path, vertices, faces, normals)
    for note in dict.fromkeys(notes):
        warnings.warn(f"reading {path}: {note}", stacklevel=2)
    return surface


def read_triangles(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangles (F, 3) int64 of a mesh file (polygons split into fans)."""
    surface = read_surface(path)
    if surface.faces is None:
        raise InputError(f"{path} has no faces; expected a triangle mesh")
    return surface.vertices, surface.faces


def _read_xyz(path: Path) -> tuple[np.ndarray, None, np.ndarray | None]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's "input contained no data": reported below
            table = np.loadtxt(path, dtype=np.float64, comments="#", ndmin=2)
    except (ValueError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0] if str(err) else "unparseable numbers"
        raise InputError(f"cannot parse {path} as x y z [nx ny nz] rows: {reason}") from None
    if table.size == 0:
        raise InputError(f"{path} holds no points")
    if table.shape[1] not in (3, 6):
        raise InputError(f"{path} has {table.shape[1]} columns; expected 3 (x y z) or 6 (x y z nx ny nz)")
    return table[:, :3], None, (table[:, 3:] if table.shape[1] == 6 else None)


def _checked(path: Path, vertices: np.ndarray, faces: np.ndarray | None, normals: np.ndarray | None) -> SurfaceFile:
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise InputError(f"{path} has vertices with {vertices.shape[-1]} coordinates; expected x y z")
    if len(vertices) == 0:
        raise InputError(f"{path} holds no points")
    bad = ~np.isfinite(vertices).all(axis=1)
    if bad.any():
        raise InputError(f"{path} has {int(bad.sum())} points with NaN or infinite coordinates; expected finite "
                         "numbers")
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    with np.errstate(over="ignore"):
        if not np.isfinite(high - low).all():
            raise InputError(f"{path} has coordinates from {low.min():.3g} to {high.max():.3g}, too far apart to centre "
                             "in float64; expected a finite span")
    if faces is not None and len(faces) == 0:
        faces = None
    if faces is not None and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise InputError(f"{path} has faces with vertex indices outside 0..{len(vertices) - 1}")
    if normals is not None and not np.isfinite(normals).all():
        raise InputError(f"{path} has NaN or infinite normals; expected finite numbers")
    return SurfaceFile(vertices, faces, normals)
