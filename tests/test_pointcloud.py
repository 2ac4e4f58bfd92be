"""Point clouds (.xyz, .ply ascii/binary, .obj; other formats: test_formats.py), normals from faces, the
unit-cube frame, bad inputs."""
import numpy as np
import pytest

from hypersiren.data.pointcloud import FILL, Frame, read_point_cloud, read_triangles, vertex_normals
from hypersiren.errors import InputError


def octahedron():
    """Vertices +-e_i and 8 outward (counter-clockwise seen from outside) triangles."""
    vertices = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)
    faces = []
    for sx in (0, 1):
        for sy in (2, 3):
            for sz in (4, 5):
                sign = vertices[sx].sum() * vertices[sy].sum() * vertices[sz].sum()
                faces.append([sx, sy, sz] if sign > 0 else [sx, sz, sy])
    return vertices, np.array(faces)


def write_ascii_ply(path, vertices, faces=None, normals=None, extra_vertex_property=False):
    props = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals is not None else []) + (["confidence"] if extra_vertex_property else [])
    lines = ["ply", "format ascii 1.0", "comment test", f"element vertex {len(vertices)}"]
    lines += [f"property float {p}" for p in props]
    if faces is not None:
        lines += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    lines.append("end_header")
    for i, v in enumerate(vertices):
        row = list(v) + (list(normals[i]) if normals is not None else []) + ([0.5] if extra_vertex_property else [])
        lines.append(" ".join(f"{x:.9g}" for x in row))
    for f in faces if faces is not None else []:
        lines.append(" ".join(str(int(x)) for x in [len(f), *f]))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_binary_ply(path, vertices, faces, order="<"):
    name = "binary_little_endian" if order == "<" else "binary_big_endian"
    header = (f"ply\nformat {name} 1.0\nelement vertex {len(vertices)}\nproperty double x\nproperty double y\n"
              f"property double z\nelement face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
    face = np.empty(len(faces), dtype=[("n", "u1"), ("v", order + "i4", (3,))])
    face["n"], face["v"] = 3, faces
    path.write_bytes(header.encode() + vertices.astype(order + "f8").tobytes() + face.tobytes())
    return path


def test_octahedron_vertex_normals_point_along_the_vertices():
    vertices, faces = octahedron()
    np.testing.assert_allclose(vertex_normals(vertices, faces), vertices, atol=1e-12)


def test_vertex_normals_are_area_weighted():
    # vertex 0 is shared by a unit right triangle in the xy plane (area 1/2, normal +z) and a triangle of area 1
    # in the xz plane (normal -y): the weighted sum is (0, -1, 1/2) before normalising
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [0, 0, 1]], dtype=float)
    faces = np.array([[0, 1, 2], [0, 3, 4]])
    expected = np.array([0.0, -1.0, 0.5]) / np.sqrt(1.25)
    np.testing.assert_allclose(vertex_normals(vertices, faces)[0], expected, atol=1e-12)


def test_xyz_reads_points_and_normalises_normals(tmp_path):
    path = tmp_path / "p.xyz"
    path.write_text("# comment\n0 0 0 0 0 2\n1 2 3 3 0 4\n")
    cloud = read_point_cloud(path)
    np.testing.assert_allclose(cloud.points, [[0, 0, 0], [1, 2, 3]])
    np.testing.assert_allclose(cloud.normals, [[0, 0, 1], [0.6, 0, 0.8]])


@pytest.mark.parametrize("writer", ["ascii", "binary_le", "binary_be"])
def test_ply_mesh_without_normals_takes_them_from_faces(tmp_path, writer):
    vertices, faces = octahedron()
    path = tmp_path / "m.ply"
    if writer == "ascii":
        write_ascii_ply(path, vertices, faces, extra_vertex_property=True)
    else:
        write_binary_ply(path, vertices, faces, "<" if writer == "binary_le" else ">")
    cloud = read_point_cloud(path)
    np.testing.assert_allclose(cloud.points, vertices, atol=1e-7)
    np.testing.assert_allclose(cloud.normals, vertices, atol=1e-6)
    v, f = read_triangles(path)
    np.testing.assert_array_equal(f, faces)


def test_ply_normals_from_the_file_win_and_unused_vertices_are_dropped_without_them(tmp_path):
    vertices, faces = octahedron()
    normals = np.tile([0.0, 0.0, 3.0], (6, 1))
    cloud = read_point_cloud(write_ascii_ply(tmp_path / "n.ply", vertices, faces, normals))
    np.testing.assert_allclose(cloud.normals, np.tile([0.0, 0.0, 1.0], (6, 1)))
    with_stray = np.vstack([vertices, [[5.0, 5.0, 5.0]]])
    cloud = read_point_cloud(write_ascii_ply(tmp_path / "s.ply", with_stray, faces))
    assert len(cloud.points) == 6


def test_ply_polygons_are_split_into_triangles(tmp_path):
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=float)
    path = tmp_path / "quad.ply"
    write_ascii_ply(path, vertices, [[0, 1, 2, 3]])
    _, faces = read_triangles(path)
    np.testing.assert_array_equal(faces, [[0, 1, 2], [0, 2, 3]])
    np.testing.assert_allclose(read_point_cloud(path).normals, np.tile([0, 0, 1.0], (4, 1)))


def test_obj_with_texture_and_normal_indices_and_negative_indices_takes_normals_from_faces(tmp_path):
    path = tmp_path / "m.obj"
    path.write_text("# quad\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvn 0 0 2\n"
                    "f 1/1/1 2/1/1 3/1/1 4/1/1\n")
    cloud = read_point_cloud(path)
    np.testing.assert_allclose(cloud.normals, np.tile([0, 0, 1.0], (4, 1)))
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\n")
    np.testing.assert_allclose(read_point_cloud(path).normals, np.tile([0, 0, 1.0], (3, 1)))
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvn 0 0 1\nf 1//2 3//2 2//2\n")  # vn: ignored (and out of range)
    np.testing.assert_allclose(read_point_cloud(path).normals, np.tile([0, 0, -1.0], (3, 1)))


def test_frame_maps_the_bounding_box_into_the_unit_cube():
    points = np.array([[1.0, 2.0, 3.0], [5.0, 3.0, 4.0], [3.0, 2.5, 3.2]])
    frame = Frame.fitting(points)
    unit = frame.to_unit(points)
    np.testing.assert_allclose(unit[:, 0].min(), -FILL)
    np.testing.assert_allclose(unit[:, 0].max(), FILL)
    np.testing.assert_allclose(frame.from_unit(unit), points)
    np.testing.assert_allclose((unit.min(0) + unit.max(0)) / 2, 0, atol=1e-12)


@pytest.mark.parametrize("name, content, message", [
    ("e.xyz", "", "empty"),
    ("p.xyz", "0 0 0\n1 1 1\n", "without normals"),
    ("c.xyz", "0 0 0 1 0\n", "5 columns"),
    ("g.xyz", "0 0 zero 0 0 1\n", "cannot parse"),
    ("n.xyz", "0 0 nan 0 0 1\n1 1 1 0 0 1\n", "NaN"),
    ("z.xyz", "0 0 0 0 0 0\n1 1 1 0 0 1\n", "zero-length normals"),
    ("h.ply", "plx\nformat ascii 1.0\nend_header\n", "not a PLY"),
    ("f.ply", "ply\nformat binary_middle_endian 1.0\nelement vertex 1\nend_header\n", "unsupported PLY format"),
    ("t.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
              "end_header\n0 0 0\n", "ends after 1 of 3"),
    ("x.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n0 0\n",
     "x, y, z"),
    ("o.obj", "v 0 0\n", "2 coordinates"),
    ("q.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2\n", "neither normals nor faces"),  # trimesh skips the 2-corner face
    ("w.dae", "<COLLADA/>", "expected a .xyz"),
])
def test_bad_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read_point_cloud(path)
    assert "\n" not in str(info.value)


def test_bad_meshes_are_one_line_errors(tmp_path):
    vertices, faces = octahedron()
    with pytest.raises(InputError, match="not found"):
        read_point_cloud(tmp_path / "missing.ply")
    with pytest.raises(InputError, match="outside"):
        read_point_cloud(write_ascii_ply(tmp_path / "i.ply", vertices, faces + 1))
    flat = np.zeros((3, 3))
    with pytest.raises(InputError, match="coincide"):
        read_point_cloud(write_ascii_ply(tmp_path / "a.ply", flat, [[0, 1, 2]]))
    with pytest.raises(InputError, match="neither normals nor faces"):
        read_point_cloud(write_ascii_ply(tmp_path / "p.ply", vertices))
    good = write_binary_ply(tmp_path / "b.ply", vertices, faces)
    (tmp_path / "cut.ply").write_bytes(good.read_bytes()[:-7])
    with pytest.raises(InputError, match="truncated"):
        read_point_cloud(tmp_path / "cut.ply")
    with pytest.raises(InputError, match="coincide"):
        Frame.fitting(np.ones((4, 3)))
