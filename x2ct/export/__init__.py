"""Exports for other software: bone surface meshes of predicted volumes (binary STL, :mod:`.mesh`) and model
folders to share that load without pickle (:mod:`.shared_model`, ``x2ct-export``)."""

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
