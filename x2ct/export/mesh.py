"""Bone surface meshes of a CT volume: marching cubes at an HU threshold, written as binary STL.

Vertices are placed in world millimetres through the volume's voxel -> RAS+ affine (so the mesh overlays the
NIfTI written with the same affine), and every triangle is wound counter-clockwise seen from outside, i.e. its
right-hand normal points out of the bone. The volume is closed by one layer of air outside its grid before
marching cubes, so bone touching the border of the field of view gives a capped, watertight surface.

Binary STL layout (little-endian): 80-byte header, uint32 triangle count, then per triangle 12 float32
(normal, vertex 1, vertex 2, vertex 3) and a uint16 attribute byte count (0). STL has no unit field: the
coordinates are millimetres. The header names the coordinate system the way 3D Slicer reads it
(``SPACE=RAS`` or ``SPACE=LPS``; Slicer assumes LPS when a file says nothing).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from skimage.measure import marching_cubes

from x2ct.errors import UserError
from x2ct.io.volume import AIR_HU
from x2ct.utils.atomic import atomic_output

DEFAULT_BONE_THRESHOLD_HU: float = 250.0
STL_HEADER_BYTES = 80
STL_COUNT_FORMAT = "<I"
STL_MAX_TRIANGLES = 2**32 - 1
STL_SUFFIX = ".stl"
# One triangle record: normal, three vertices (float32 x 3 each) and the attribute byte count.
STL_TRIANGLE_DTYPE = np.dtype([("normal", "<f4", (3,)), ("vertices", "<f4", (3, 3)), ("attribute", "<u2")])
STL_RECORD_BYTES = STL_TRIANGLE_DTYPE.itemsize  # 50
# Padding value below the threshold when the threshold itself is at or below air.
_BELOW_THRESHOLD_MARGIN_HU = 1.0
# Sign flip of the first two world axes between RAS and LPS.
_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])

CoordinateSystem = Literal["RAS", "LPS"]


class MeshError(UserError, ValueError):
    """A surface that cannot be extracted or written (empty, non-finite input, bad file name, no voxel above the
    bone threshold); a user error (:mod:`x2ct.cli` reports it in one line)."""


@dataclass(frozen=True)
class SurfaceMesh:
    """A triangle mesh in world millimetres.

    Attributes:
        vertices: float64 (V, 3) positions (RAS+ mm when made by :func:`bone_surface`).
        faces: int64 (F, 3) vertex indices, counter-clockwise seen from outside (outward normals).
    """

    vertices: np.ndarray
    faces: np.ndarray

    @property
    def n_triangles(self) -> int:
        return int(self.faces.shape[0])

    def triangles(self) -> np.ndarray:
        """float64 (F, 3, 3): the three corner positions of every face."""
        return self.vertices[self.faces]

    def face_normals(self) -> np.ndarray:
        """float64 (F, 3) unit normals by the right-hand rule (zero for a degenerate face)."""
        corners = self.triangles()
        cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        length = np.linalg.norm(cross, axis=1, keepdims=True)
        return np.divide(cross, length, out=np.zeros_like(cross), where=length > 0)

    def area_mm2(self) -> float:
        """Total surface area in mm^2."""
        corners = self.triangles()
        cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        return float(0.5 * np.linalg.norm(cross, axis=1).sum())

    def volume_mm3(self) -> float:
        """Enclosed volume in mm^3 (divergence theorem; positive for a closed mesh with outward normals)."""
        return _signed_volume(self.triangles())


def _signed_volume(corners: np.ndarray) -> float:
    return float(np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6.0)


def bone_surface(
    hu: np.ndarray,
    affine: np.ndarray,
    threshold_hu: float = DEFAULT_BONE_THRESHOLD_HU,
    step_size: int = 1,
) -> SurfaceMesh:
    """The iso-surface ``hu == threshold_hu`` of a (D, H, W) volume as a closed mesh in world millimetres.

    Args:
        hu: (D, H, W) CT in HU (any real dtype), finite.
        affine: 4x4 voxel index (d, h, w, 1) -> world (RAS+ mm) matrix, e.g. :attr:`Volume.affine`.
        threshold_hu: bone threshold; voxels above it are inside (default 250 HU, cortical and dense
            trabecular bone).
        step_size: marching-cubes step in voxels (1 = full resolution; 2 gives about 4x fewer triangles).
    Raises:
        MeshError: not 3D, non-finite values, a bad affine, or no voxel above the threshold.
    """
    volume = np.asarray(hu, dtype=np.float32)
    if volume.ndim != 3:
        raise MeshError(f"bone_surface expects a (D, H, W) volume, got shape {volume.shape}")
    if not np.all(np.isfinite(volume)):
        raise MeshError("the volume contains NaN or infinite values: no surface")
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)) or np.linalg.det(matrix[:3, :3]) == 0:
        raise MeshError(f"affine must be a finite, invertible 4x4 matrix, got\n{matrix}")
    if step_size < 1:
        raise MeshError(f"step_size must be >= 1, got {step_size}")
    if not float(volume.max()) > threshold_hu:
        raise MeshError(
            f"no voxel above the bone threshold {threshold_hu:g} HU (volume maximum {float(volume.max()):.1f} HU): "
            "no bone surface to extract"
        )
    outside = min(AIR_HU, threshold_hu - _BELOW_THRESHOLD_MARGIN_HU)
    padded = np.pad(volume, 1, mode="constant", constant_values=outside)
    vertices, faces, _, _ = marching_cubes(padded, level=threshold_hu, step_size=step_size, allow_degenerate=False)
    index = vertices.astype(np.float64) - 1.0  # undo the padding: canonical voxel indices
    world = index @ matrix[:3, :3].T + matrix[:3, 3]
    faces = faces.astype(np.int64)
    if _signed_volume(world[faces]) < 0:  # the affine (or the library's convention) mirrored the winding
        faces = faces[:, [0, 2, 1]]
    return SurfaceMesh(vertices=world, faces=faces)


def stl_header(coordinate_system: CoordinateSystem, description: str = "x2ct bone surface") -> bytes:
    """The 80-byte binary STL header: ``"<description>. SPACE=<coordinate_system>"`` padded with spaces.

    It must not start with ``solid`` (readers would take the file for ASCII STL)."""
    text = f"{description}. SPACE={coordinate_system}".encode("ascii")
    if len(text) > STL_HEADER_BYTES:
        raise MeshError(f"STL header text is longer than {STL_HEADER_BYTES} bytes: {text!r}")
    if text.lower().startswith(b"solid"):
        raise MeshError(f"a binary STL header must not start with 'solid': {text!r}")
    return text.ljust(STL_HEADER_BYTES, b" ")


def write_binary_stl(mesh: SurfaceMesh, path: str | Path, coordinate_system: CoordinateSystem = "RAS") -> Path:
    """Write ``mesh`` (RAS+ mm) as a binary STL, atomically; returns the path.

    Args:
        mesh: the surface (vertices in RAS+ mm, outward winding).
        path: target ``.stl`` file; parent folders are created. Nothing is left under this name on failure.
        coordinate_system: ``"RAS"`` writes the coordinates as they are; ``"LPS"`` negates x and y (the DICOM /
            ITK convention) and keeps outward normals. The header records the choice for 3D Slicer.
    """
    target = Path(path)
    if target.suffix.lower() != STL_SUFFIX:
        raise MeshError(f"{target}: an STL file name must end in {STL_SUFFIX}")
    if coordinate_system not in ("RAS", "LPS"):
        raise MeshError(f"coordinate_system must be 'RAS' or 'LPS', got {coordinate_system!r}")
    if mesh.n_triangles > STL_MAX_TRIANGLES:
        raise MeshError(f"{mesh.n_triangles} triangles do not fit a binary STL (max {STL_MAX_TRIANGLES})")
    vertices = mesh.vertices if coordinate_system == "RAS" else mesh.vertices * _RAS_TO_LPS
    # Negating two axes is a rotation (180 degrees about S): windings and outward normals stay valid.
    oriented = SurfaceMesh(vertices=vertices, faces=mesh.faces)
    records = np.zeros(mesh.n_triangles, dtype=STL_TRIANGLE_DTYPE)
    records["normal"] = oriented.face_normals()
    records["vertices"] = oriented.triangles()
    with atomic_output(target) as tmp, tmp.open("wb") as handle:
        handle.write(stl_header(coordinate_system))
        handle.write(struct.pack(STL_COUNT_FORMAT, mesh.n_triangles))
        handle.write(records.tobytes())
    return target


@dataclass(frozen=True)
class StlContent:
    """What a binary STL file holds: header bytes, normals (F, 3) and triangle corners (F, 3, 3), float32."""

    header: bytes
    normals: np.ndarray
    triangles: np.ndarray


def read_binary_stl(path: str | Path) -> StlContent:
    """Read a binary STL written by :func:`write_binary_stl` (or any binary STL) and check its layout.

    Raises FileNotFoundError for a missing file and MeshError when the size disagrees with the triangle count.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"STL file {source} does not exist")
    data = source.read_bytes()
    prefix = STL_HEADER_BYTES + struct.calcsize(STL_COUNT_FORMAT)
    if len(data) < prefix:
        raise MeshError(f"{source} is {len(data)} bytes, shorter than a binary STL header ({prefix} bytes)")
    (count,) = struct.unpack_from(STL_COUNT_FORMAT, data, STL_HEADER_BYTES)
    expected = prefix + count * STL_RECORD_BYTES
    if len(data) != expected:
        raise MeshError(f"{source}: {count} triangles need {expected} bytes, the file has {len(data)}")
    records = np.frombuffer(data, dtype=STL_TRIANGLE_DTYPE, count=count, offset=prefix)
    return StlContent(
        header=data[:STL_HEADER_BYTES], normals=records["normal"].copy(), triangles=records["vertices"].copy()
    )
