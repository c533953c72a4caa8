"""The DRR geometry contract: beam and detector axes, detector grid placement, box clipping."""

from __future__ import annotations

import numpy as np
import pytest

from x2ct.drr.geometry import (
    ViewSpec,
    beam_direction,
    clip_to_box,
    column_axis,
    detector_layout,
    detector_plane_points,
    view_rays,
    volume_box_mm,
    volume_centre_mm,
)

SHAPE = (10, 12, 14)
SPACING = (2.0, 1.5, 1.0)


def test_ap_and_lateral_axes() -> None:
    np.testing.assert_allclose(beam_direction(0.0), [0, 1, 0], atol=1e-12)  # AP: toward posterior (+H)
    np.testing.assert_allclose(beam_direction(90.0), [0, 0, 1], atol=1e-12)  # right -> left (+W)
    np.testing.assert_allclose(column_axis(ViewSpec("ap", 0.0)), [0, 0, 1], atol=1e-12)  # col 0 = right
    np.testing.assert_allclose(column_axis(ViewSpec("lat", 90.0, lateral=True)), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(column_axis(ViewSpec("lat", 90.0, lateral=False)), [0, -1, 0], atol=1e-12)


def test_default_detector_layout_follows_view_kind() -> None:
    ap = detector_layout(ViewSpec("a", 10.0), SHAPE, SPACING)
    lat = detector_layout(ViewSpec("b", 80.0, lateral=True), SHAPE, SPACING)
    assert (ap.rows, ap.cols, ap.pitch_row_mm, ap.pitch_col_mm) == (10, 14, 2.0, 1.0)
    assert (lat.rows, lat.cols, lat.pitch_row_mm, lat.pitch_col_mm) == (10, 12, 2.0, 1.5)
    custom = detector_layout(ViewSpec("c", 0.0), SHAPE, SPACING, (5, 6), (0.5, 0.25))
    assert (custom.rows, custom.cols, custom.pitch_row_mm, custom.pitch_col_mm) == (5, 6, 0.5, 0.25)


def test_ap_grid_projects_onto_voxel_centres() -> None:
    """The AP grid with an off-centre isocentre keeps D/W on voxel centres; only H moves to the iso plane."""
    iso = volume_centre_mm(SHAPE, SPACING) + np.array([3.0, 4.0, -2.0])
    layout = detector_layout(ViewSpec("ap", 0.0), SHAPE, SPACING)
    q = detector_plane_points(ViewSpec("ap", 0.0), SHAPE, SPACING, iso, layout)
    rows, cols = np.meshgrid(np.arange(10), np.arange(14), indexing="ij")
    np.testing.assert_allclose(q[..., 0], rows * 2.0, atol=1e-12)
    np.testing.assert_allclose(q[..., 2], cols * 1.0, atol=1e-12)
    np.testing.assert_allclose(q[..., 1], iso[1], atol=1e-12)


def test_lateral_grid_columns_run_anterior_to_posterior() -> None:
    layout = detector_layout(ViewSpec("lat", 90.0, lateral=True), SHAPE, SPACING)
    iso = volume_centre_mm(SHAPE, SPACING)
    q = detector_plane_points(ViewSpec("lat", 90.0, lateral=True), SHAPE, SPACING, iso, layout)
    np.testing.assert_allclose(q[0, :, 1], np.arange(12) * 1.5, atol=1e-12)


def test_cone_source_and_ray_directions() -> None:
    iso = np.array([9.0, 8.0, 6.5])
    bundle = view_rays(ViewSpec("ap", 0.0), SHAPE, SPACING, iso, "cone", sod_mm=500.0)
    np.testing.assert_allclose(bundle.source_mm, iso - [0, 500.0, 0], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(bundle.directions, axis=-1), 1.0, atol=1e-12)
    # each ray passes through its detector point
    t = np.linalg.norm(bundle.plane_points - bundle.origins, axis=-1, keepdims=True)
    np.testing.assert_allclose(bundle.origins + t * bundle.directions, bundle.plane_points, atol=1e-9)


def test_source_inside_volume_raises() -> None:
    with pytest.raises(ValueError, match="inside the volume box"):
        view_rays(ViewSpec("ap", 0.0), SHAPE, SPACING, volume_centre_mm(SHAPE, SPACING), "cone", sod_mm=2.0)


def test_unknown_geometry_and_bad_iso_raise() -> None:
    with pytest.raises(ValueError, match="geometry"):
        view_rays(ViewSpec("ap", 0.0), SHAPE, SPACING, np.zeros(3), "fan")
    with pytest.raises(ValueError, match="isocentre"):
        view_rays(ViewSpec("ap", 0.0), SHAPE, SPACING, np.zeros(2), "cone")


def test_clip_to_box() -> None:
    low, high = volume_box_mm((4, 4, 4), (1.0, 1.0, 1.0))  # [-0.5, 3.5]^3
    origins = np.array([[1.0, -10.0, 1.0], [1.0, -10.0, 9.0], [1.0, 1.0, 1.0]])
    directions = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    t_in, t_out = clip_to_box(origins, directions, np.array([0.0, 0.0, -np.inf]), low, high)
    np.testing.assert_allclose(t_in, [9.5, 0.0, -1.5])
    np.testing.assert_allclose(t_out, [13.5, 0.0, 2.5])
