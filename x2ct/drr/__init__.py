"""Digitally reconstructed radiographs (DRR) in torch: HU -> attenuation, cone/parallel ray marching
(Joseph or trilinear), display windowing. See :mod:`x2ct.drr.geometry` for the geometry contract."""

from __future__ import annotations

from x2ct.drr.display import window_to_uint8
from x2ct.drr.geometry import ViewSpec, beam_direction, column_axis, view_rays
from x2ct.drr.physics import hu_to_mu, slicer_extinction, slicer_image
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
    "hu_to_mu",
    "project_mu",
    "slicer_extinction",
    "slicer_image",
    "view_rays",
    "window_to_uint8",
]
