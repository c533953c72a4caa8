"""Digitally reconstructed radiographs (DRR) in torch: HU -> attenuation, cone/parallel ray marching
(Joseph or trilinear), display windowing, and the views' projection matrices (:mod:`x2ct.drr.projection`).
See :mod:`x2ct.drr.geometry` for the geometry contract."""

from __future__ import annotations

from x2ct.drr.display import window_to_uint8
from x2ct.drr.geometry import ViewSpec, beam_direction, column_axis, view_rays
from x2ct.drr.physics import hu_to_mu, slicer_extinction, slicer_image
from x2ct.drr.projection import (
    flip_image_columns,
    flip_volume_x,
    grid_to_mm,
    projection_matrix,
    triplet_projection_matrices,
)
from x2ct.drr.projector import RayProjector, build_projector, project_mu
from x2ct.drr.renderer import DEFAULT_VIEWS, DRRConfig, DRRRenderer

__all__ = [
    "DEFAULT_VIEWS",
    "DRRConfig",
    "DRRRenderer",
    "RayProjector",
    "ViewSpec",
    "beam_direction",
    "build_projector",
    "column_axis",
    "flip_image_columns",
    "flip_volume_x",
    "grid_to_mm",
    "hu_to_mu",
    "project_mu",
    "projection_matrix",
    "slicer_extinction",
    "slicer_image",
    "triplet_projection_matrices",
    "view_rays",
    "window_to_uint8",
]
