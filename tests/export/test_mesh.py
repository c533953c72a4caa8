"""Bone surface meshes: marching cubes in world millimetres, outward normals, binary STL layout."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from x2ct.export import mesh as mesh_module
from x2ct.export.mesh import (
    STL_HEADER_BYTES,
    STL_RECORD_BYTES,
    MeshError,
    SurfaceMesh,
    bone_surface,
    read_binary_stl,
    write_binary_stl,
)
from x2ct.io.volume import canonical_affine

THRESHOLD_HU = 250.0
SLOPE_HU_PER_MM = 200.0  # steepness of the smooth test field across the surface
RADIUS_MM = 20.0


def sphere_volume(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], centre_index: tuple[float, float, float]
) -> np.ndarray:
    """HU field whose THRESHOLD_HU iso-surface is a sphere of RADIUS_MM (in mm, whatever the voxel spacing)."""
    axes = [(np.arange(n) - c) * s for n, c, s in zip(shape, centre_index, spacing, strict=True)]
    d, h, w = np.meshgrid(*axes, indexing="ij")
    distance = np.sqrt(d**2 + h**2 + w**2)
    return (THRESHOLD_HU + SLOPE_HU_PER_MM * (RADIUS_MM - distance)).astype(np.float32)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.25, 0.8, 1.0)])
def test_sphere_area_volume_and_position_in_world_mm(spacing: tuple[float, float, float]) -> None:
    shape = (64, 64, 64)
    centre_index = (30.0, 33.0, 31.5)
    origin = (5.0, -7.0, 12.0)
    affine = canonical_affine(spacing, origin)
    surface = bone_surface(sphere_volume(shape, spacing, centre_index), affine, THRESHOLD_HU)
    assert surface.area_mm2() == pytest.approx(4 * math.pi * RADIUS_MM**2, rel=0.005)
    assert surface.volume_mm3() == pytest.approx(4 / 3 * math.pi * RADIUS_MM**3, rel=0.005)
    centre_world = affine[:3, :3] @ np.asarray(centre_index) + affine[:3, 3]
    radii = np.linalg.norm(surface.vertices - centre_world, axis=1)
    assert np.abs(radii - RADIUS_MM).max() < 0.1  # every vertex on the sphere, in world mm


@pytest.mark.parametrize("mirror", [False, True])
def test_normals_point_outward(mirror: bool) -> None:
    spacing = (1.0, 1.0, 1.0)
    affine = canonical_affine(spacing)  # determinant +1
    if mirror:  # determinant -1: the affine mirrors the winding of index space
        affine = np.diag([-1.0, 1.0, 1.0, 1.0]) @ affine
    surface = bone_surface(sphere_volume((48, 48, 48), spacing, (24.0, 24.0, 24.0)), affine, THRESHOLD_HU)
    centre_world = affine[:3, :3] @ np.full(3, 24.0) + affine[:3, 3]
    outward = surface.triangles().mean(axis=1) - centre_world
    alignment = np.einsum("ij,ij->i", surface.face_normals(), outward / np.linalg.norm(outward, axis=1)[:, None])
    assert alignment.min() > 0.9


def test_bone_touching_the_border_gives_a_closed_surface() -> None:
    hu = np.full((12, 10, 8), -1000.0, np.float32)
    hu[:, 2:6, 3:8] = 1000.0  # reaches the superior, inferior and left borders
    surface = bone_surface(hu, canonical_affine((2.0, 1.0, 1.5)), threshold_hu=0.0)
    edges = Counter()
    for a, b, c in surface.faces:
        for u, v in ((a, b), (b, c), (c, a)):
            edges[(min(u, v), max(u, v))] += 1
    assert set(edges.values()) == {2}  # watertight: every edge shared by two faces
    # The box is 12 x 4 x 5 voxels, closed half a voxel beyond the border by the air layer; marching cubes
    # chamfers its edges, so the volume is a little smaller than the voxel box.
    box_mm3 = (12 * 2.0) * (4 * 1.0) * (5 * 1.5)
    assert 0.85 * box_mm3 < surface.volume_mm3() < box_mm3


def test_binary_stl_layout_and_content(tmp_path: Path) -> None:
    spacing = (1.0, 1.0, 1.0)
    affine = canonical_affine(spacing)
    surface = bone_surface(sphere_volume((48, 48, 48), spacing, (24.0, 24.0, 24.0)), affine, THRESHOLD_HU)
    path = write_binary_stl(surface, tmp_path / "sub" / "bone.stl")
    raw = path.read_bytes()
    assert len(raw) == STL_HEADER_BYTES + 4 + STL_RECORD_BYTES * surface.n_triangles
    assert int.from_bytes(raw[80:84], "little") == surface.n_triangles
    assert not raw[:5].lower().startswith(b"solid") and b"SPACE=RAS" in raw[:80]
    content = read_binary_stl(path)
    np.testing.assert_allclose(content.triangles, surface.triangles(), atol=1e-4)
    np.testing.assert_allclose(content.normals, surface.face_normals(), atol=1e-6)
    assert np.allclose(np.linalg.norm(content.normals, axis=1), 1.0, atol=1e-5)
    assert [p.name for p in path.parent.iterdir()] == ["bone.stl"]  # no temporary file left


def test_lps_output_negates_x_and_y_and_keeps_outward_normals(tmp_path: Path) -> None:
    spacing = (1.0, 1.0, 1.0)
    affine = canonical_affine(spacing, (10.0, 20.0, 30.0))
    surface = bone_surface(sphere_volume((48, 48, 48), spacing, (24.0, 24.0, 24.0)), affine, THRESHOLD_HU)
    content = read_binary_stl(write_binary_stl(surface, tmp_path / "bone.stl", coordinate_system="LPS"))
    assert b"SPACE=LPS" in content.header
    np.testing.assert_allclose(content.triangles, surface.triangles() * np.array([-1.0, -1.0, 1.0]), atol=1e-4)
    lps_mesh = SurfaceMesh(
        vertices=content.triangles.reshape(-1, 3).astype(np.float64),
        faces=np.arange(3 * len(content.triangles)).reshape(-1, 3),
    )
    assert lps_mesh.volume_mm3() == pytest.approx(surface.volume_mm3(), rel=1e-4)  # still outward


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    surface = bone_surface(sphere_volume((32, 32, 32), (1.0, 1.0, 1.0), (16.0, 16.0, 16.0)), np.eye(4), THRESHOLD_HU)
    target = tmp_path / "bone.stl"
    target.write_bytes(b"previous")

    def broken_header(*args: object) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(mesh_module, "stl_header", broken_header)
    with pytest.raises(OSError, match="disk full"):
        write_binary_stl(surface, target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["bone.stl"]


def test_errors() -> None:
    air = np.full((8, 8, 8), -1000.0, np.float32)
    with pytest.raises(MeshError, match="no voxel above the bone threshold 250"):
        bone_surface(air, np.eye(4))
    with pytest.raises(MeshError, match="NaN"):
        bone_surface(np.where(np.arange(8) == 3, np.nan, 500.0) * np.ones((8, 8, 8)), np.eye(4))
    with pytest.raises(MeshError, match="D, H, W"):
        bone_surface(np.zeros((8, 8)), np.eye(4))
    with pytest.raises(MeshError, match="invertible"):
        bone_surface(air + 2000, np.zeros((4, 4)))


def test_bad_stl_names_and_files(tmp_path: Path) -> None:
    surface = SurfaceMesh(vertices=np.eye(3), faces=np.array([[0, 1, 2]]))
    with pytest.raises(MeshError, match=r"must end in \.stl"):
        write_binary_stl(surface, tmp_path / "bone.obj")
    truncated = tmp_path / "short.stl"
    write_binary_stl(surface, truncated)
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(MeshError, match="1 triangles need 134 bytes"):
        read_binary_stl(truncated)
    with pytest.raises(FileNotFoundError):
        read_binary_stl(tmp_path / "missing.stl")
