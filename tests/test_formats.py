"""Point-cloud and mesh files of every accepted format: good files load with outward normals, malformed ones
(generated here, a few hundred bytes each) are one-line InputErrors with nothing leaked to stderr or warnings."""
from __future__ import annotations

import os
import struct
import warnings

import numpy as np
import pytest

from hypersiren.data.pointcloud import read_point_cloud
from hypersiren.errors import InputError
from hypersiren.formats.surface import read_surface, read_triangles


def icosphere():
    """A unit icosphere (162 vertices, 320 outward triangles) as a trimesh.Trimesh."""
    import trimesh

    return trimesh.creation.icosphere(subdivisions=2)


def export(mesh, file_type: str) -> bytes:
    data = mesh.export(file_type=file_type)
    return data.encode() if isinstance(data, str) else data


def binary_stl(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """Binary STL: 80-byte header, uint32 count, then per triangle a normal, 3 corners (float32) and 2 bytes."""
    triangles = np.zeros(len(faces), dtype=[("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attr", "<u2")])
    triangles["corners"] = vertices[faces]
    return bytes(80) + struct.pack("<I", len(faces)) + triangles.tobytes()


def off(vertices, faces) -> bytes:
    rows = [f"{len(vertices)} {len(faces)} 0"] + [" ".join(map(str, v)) for v in vertices]
    rows += [" ".join(map(str, [len(f), *f])) for f in faces]
    return ("OFF\n" + "\n".join(rows) + "\n").encode()


def ply_header(vertex_properties: str, face_property: str | None = None, count: int = 3, fmt: str = "ascii") -> str:
    header = f"ply\nformat {fmt} 1.0\nelement vertex {count}\n{vertex_properties}"
    if face_property:
        header += f"element face 1\n{face_property}"
    return header + "end_header\n"


XYZ_FLOAT = "property float x\nproperty float y\nproperty float z\n"
XYZ_DOUBLE = "property double x\nproperty double y\nproperty double z\n"
TRIANGLE_LIST = "property list uchar int vertex_indices\n"
CORNERS = "0 0 0\n1 0 0\n0 1 0\n"


def good_files() -> dict[str, bytes]:
    """name -> content of a unit sphere in every format (and the ascii/binary variants)."""
    sphere = icosphere()
    return {
        "sphere.stl": binary_stl(sphere.vertices, sphere.faces),
        "sphere_ascii.stl": export(sphere, "stl_ascii"),
        "sphere.off": off(sphere.vertices, sphere.faces),
        "sphere.glb": export(sphere, "glb"),
        "sphere.obj": export(sphere, "obj"),
        "sphere.ply": export(sphere, "ply"),
    }


@pytest.mark.parametrize("name", list(good_files()))
def test_every_format_loads_the_sphere_with_outward_normals(tmp_path, name, capfd):
    path = tmp_path / name
    path.write_bytes(good_files()[name])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cloud = read_point_cloud(path)
    assert len(cloud.points) == 162  # STL's separate triangle corners are welded
    np.testing.assert_allclose(np.linalg.norm(cloud.points, axis=1), 1, atol=1e-6)
    cos = np.einsum("ij,ij->i", cloud.normals, cloud.points)
    assert cos.min() > 0.97
    vertices, faces = read_triangles(path)
    assert faces.shape[1] == 3 and len(faces) == 320
    assert capfd.readouterr() == ("", "")


def test_glb_node_transforms_are_applied(tmp_path):
    import trimesh

    scene = trimesh.Scene()
    scene.add_geometry(icosphere(), transform=trimesh.transformations.translation_matrix([5.0, 0.0, 0.0]))
    path = tmp_path / "moved.glb"
    path.write_bytes(export(scene, "glb"))
    np.testing.assert_allclose(read_surface(path).vertices.mean(axis=0), [5, 0, 0], atol=1e-6)


def sphere_points(count: int = 800, seed: int = 0) -> np.ndarray:
    directions = np.random.default_rng(seed).normal(size=(count, 3))
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


@pytest.mark.parametrize("suffix", [".xyz", ".ply", ".obj"])
def test_points_without_normals_get_estimated_outward_normals_with_a_note(tmp_path, suffix):
    points = 2.0 * sphere_points() + [10.0, 0.0, 0.0]
    path = tmp_path / f"points{suffix}"
    if suffix == ".xyz":
        np.savetxt(path, points)
    elif suffix == ".ply":
        rows = "".join(f"{x:.17g} {y:.17g} {z:.17g}\n" for x, y, z in points)
        path.write_text(ply_header(XYZ_DOUBLE, count=len(points)) + rows)
    else:
        path.write_text("".join(f"v {x:.17g} {y:.17g} {z:.17g}\n" for x, y, z in points))
    with pytest.warns(UserWarning, match="estimated normals"):
        cloud = read_point_cloud(path)
    cos = np.einsum("ij,ij->i", cloud.normals, (cloud.points - [10.0, 0.0, 0.0]) / 2)
    assert cos.min() > 0.95


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo.stl"
    os.mkfifo(path)
    return path


# name -> (content, part of the one-line message)
BAD_FILES = {
    # PLY
    "list x.ply": (ply_header("property list uchar float x\nproperty float y\nproperty float z\n") +
                   "1 0 0 0\n1 1 0 0\n1 0 1 0\n", "'x' is a list"),
    "string x.ply": (ply_header("property string x\nproperty float y\nproperty float z\n") + CORNERS,
                     "malformed header"),
    "float indices.ply": (ply_header(XYZ_FLOAT, "property list uchar float vertex_indices\n") + CORNERS + "3 0 1 2\n",
                          "face indices are float32"),
    "NaN index.ply": (ply_header(XYZ_FLOAT, TRIANGLE_LIST) + CORNERS + "3 0 1 nan\n", "'face' row 0"),
    "fractional index.ply": (ply_header(XYZ_FLOAT, TRIANGLE_LIST) + CORNERS + "3 0 1 1.5\n", "'face' row 0"),
    "index too large.ply": (ply_header(XYZ_FLOAT, TRIANGLE_LIST) + CORNERS + "3 0 1 3\n", "indices outside 0..2"),
    "negative index.ply": (ply_header(XYZ_FLOAT, TRIANGLE_LIST) + CORNERS + "3 0 1 -1\n", "indices outside 0..2"),
    "scalar indices.ply": (ply_header(XYZ_FLOAT, "property int vertex_indices\n") + CORNERS + "0\n", "no list property"),
    "two corners.ply": (ply_header(XYZ_FLOAT, TRIANGLE_LIST) + CORNERS + "2 0 1\n", "expected 3 or more"),
    "overflow.ply": (ply_header(XYZ_DOUBLE, TRIANGLE_LIST) + "-1e308 0 0\n1e308 0 0\n0 1 0\n3 0 1 2\n",
                     "too far apart"),
    "infinite.ply": (ply_header(XYZ_DOUBLE, TRIANGLE_LIST) + "inf 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "NaN or infinite"),
    "truncated ascii.ply": (ply_header(XYZ_FLOAT, TRIANGLE_LIST) + "0 0 0\n", "ends after 1 of 3 'vertex'"),
    "truncated binary.ply": (ply_header(XYZ_FLOAT, TRIANGLE_LIST, fmt="binary_little_endian").encode() + bytes(20),
                             "truncated or corrupt"),
    "no vertices.ply": (ply_header(XYZ_FLOAT, count=0), "holds no points"),
    "garbage.ply": (b"\x00\xff" * 40, "not a PLY"),
    # OBJ
    "two coordinates.obj": ("v 0 0\n", "2 coordinates"),
    "NaN index.obj": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 nan\n", "cannot read OBJ"),
    "index too large.obj": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n", "indices outside"),
    "NaN vertex.obj": ("v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "NaN or infinite"),
    "overflow.obj": ("v -1e308 0 0\nv 1e308 0 0\nv 0 1 0\nf 1 2 3\n", "too far apart"),
    "no geometry.obj": ("# nothing\n", "holds no mesh or points"),
    # STL
    "no triangles.stl": ("solid\n", "holds no mesh or points"),
    "letters.stl": ("solid x\nfacet normal 0 0 1\nouter loop\nvertex a b c\nvertex 1 0 0\nvertex 0 1 0\nendloop\n"
                    "endfacet\nendsolid x\n", "cannot read STL"),
    "truncated binary.stl": (binary_stl(icosphere().vertices, icosphere().faces)[:500],
                             "holds no mesh or points|cannot read STL"),  # trimesh < 5 tries it as ascii
    "NaN corner.stl": (binary_stl(np.array([[np.nan, 0, 0], [1, 0, 0], [0, 1, 0]]), np.array([[0, 1, 2]])),
                       "NaN or infinite"),
    # OFF
    "index too large.off": (off(np.eye(3), [[0, 1, 7]]), "outside"),
    "fractional index.off": (b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 1.5\n", "cannot read OFF"),
    "NaN index.off": (b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 nan\n", "cannot read OFF"),
    "short.off": (b"OFF\n3 1 0\n0 0 0\n1 0 0\n", "cannot read OFF"),
    "overflow.off": (b"OFF\n3 1 0\n-1e308 0 0\n1e308 0 0\n0 1 0\n3 0 1 2\n", "too far apart"),
    # GLB
    "junk.glb": (b"glTF" + bytes(40), "cannot read GLB"),
    # XYZ
    "comments only.xyz": ("# no points\n", "holds no points"),
    "four columns.xyz": ("0 0 0 1\n", "4 columns"),
    "too few without normals.xyz": ("0 0 0\n1 0 0\n0 1 0\n", "too few"),
    "binary.xyz": (b"\x00\xff\xfe" * 30, "cannot parse"),
    # any format
    "empty.glb": (b"", "is empty"),
    "unknown.dae": ("<COLLADA/>", "expected a .xyz"),
}


def test_truncated_glb_is_an_error(tmp_path):
    path = tmp_path / "cut.glb"
    path.write_bytes(export(icosphere(), "glb")[:1000])
    with pytest.raises(InputError, match="cannot read GLB"):
        read_point_cloud(path)


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_malformed_files_are_one_line_input_errors_and_nothing_leaks(tmp_path, capfd, name):
    content, message = BAD_FILES[name]
    path = tmp_path / name.replace(" ", "_")
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match=message) as info:
            read_point_cloud(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert [str(w.message) for w in caught] == []
    assert capfd.readouterr() == ("", "")  # nothing from trimesh's logging or numpy


def test_fifo_and_directory_are_refused_without_opening(tmp_path, fifo):
    with pytest.raises(InputError, match="got a FIFO"):
        read_point_cloud(fifo)  # opening it would block
    (tmp_path / "folder.ply").mkdir()
    with pytest.raises(InputError, match="got a directory"):
        read_point_cloud(tmp_path / "folder.ply")
    with pytest.raises(InputError, match="not found"):
        read_point_cloud(tmp_path / "missing.off")


def test_ply_writer_round_trip_is_plyfile_binary(tmp_path):
    from plyfile import PlyData

    from hypersiren.formats.ply import write_ply

    sphere = icosphere()
    normals = np.asarray(sphere.vertex_normals)
    write_ply(tmp_path / "m.ply", sphere.vertices, sphere.faces, normals)
    data = PlyData.read(str(tmp_path / "m.ply"))
    assert not data.text and data.byte_order == "<"
    assert [p.name for p in data["vertex"].properties] == ["x", "y", "z", "nx", "ny", "nz"]
    surface = read_surface(tmp_path / "m.ply")
    np.testing.assert_allclose(surface.vertices, sphere.vertices, atol=1e-6)
    np.testing.assert_allclose(surface.normals, normals, atol=1e-6)
    np.testing.assert_array_equal(surface.faces, sphere.faces)


def test_ply_polygons_of_mixed_sizes_become_fans(tmp_path):
    path = tmp_path / "mixed.ply"
    path.write_text(ply_header(XYZ_FLOAT, count=5).replace("end_header\n", "element face 2\n" + TRIANGLE_LIST +
                                                            "end_header\n")
                    + "0 0 0\n1 0 0\n1 1 0\n0 1 0\n2 2 0\n" + "4 0 1 2 3\n3 1 4 2\n")
    np.testing.assert_array_equal(read_triangles(path)[1], [[0, 1, 2], [0, 2, 3], [1, 4, 2]])


def test_trimesh_log_messages_become_notes_naming_the_file(tmp_path, monkeypatch, capfd):
    import logging

    import trimesh

    real_load = trimesh.load

    def chatty_load(*args, **kwargs):
        logging.getLogger("trimesh.exchange").warning("something odd\nsecond line")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(trimesh, "load", chatty_load)
    path = tmp_path / "sphere.off"
    path.write_bytes(off(icosphere().vertices, icosphere().faces))
    with pytest.warns(UserWarning, match=r"reading .*sphere.off: something odd$"):
        read_surface(path)
    assert capfd.readouterr() == ("", "")
