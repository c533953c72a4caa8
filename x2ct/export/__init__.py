"""Exports of predicted volumes for other software: bone surface meshes (binary STL)."""

from __future__ import annotations

from x2ct.export.mesh import (
    DEFAULT_BONE_THRESHOLD_HU,
    MeshError,
    StlContent,
    SurfaceMesh,
    bone_surface,
    read_binary_stl,
    write_binary_stl,
)

__all__ = [
    "DEFAULT_BONE_THRESHOLD_HU",
    "MeshError",
    "StlContent",
    "SurfaceMesh",
    "bone_surface",
    "read_binary_stl",
    "write_binary_stl",
]
