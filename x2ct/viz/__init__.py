"""Figures of reconstructions (tri-planar slices, X-ray re-projections) as RGB arrays and PNG files."""

from __future__ import annotations

from x2ct.viz.figures import (
    DISPLAY_HU_WINDOW,
    DRRSpec,
    axes_pixel_box,
    build_reprojection_figure,
    build_triplanar_figure,
    central_slices,
    figure_to_rgb,
    mean_projections,
    reprojection_figure,
    save_png,
    triplanar_figure,
)

__all__ = [
    "DISPLAY_HU_WINDOW",
    "DRRSpec",
    "axes_pixel_box",
    "build_reprojection_figure",
    "build_triplanar_figure",
    "central_slices",
    "figure_to_rgb",
    "mean_projections",
    "reprojection_figure",
    "save_png",
    "triplanar_figure",
]
