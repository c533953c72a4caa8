"""DRR view geometry: beam direction, detector grid and rays in the volume frame (the project's contract).

Volume frame: a point ``(x_D, x_H, x_W)`` in mm equals voxel index * spacing (voxel centres; index 0 is
superior / anterior / patient's right, see ``x2ct.io.volume``). The volume's box spans the voxel edges,
``[-s/2, (N - 1) * s + s/2]`` per axis.

A view at angle theta (degrees) is a rotation about the D axis from AP: the beam runs along
``d = cos(theta) e_H + sin(theta) e_W`` (theta = 0: AP, source anterior; theta = 90: source on the patient's
right). Detector rows run along ``+e_D`` (row 0 cranial); columns along ``e_col = cos(theta) e_W - sin(theta) e_H``,
mirrored (``-e_col``) for lateral views so that at 90 degrees column 0 is anterior. Hence ``xray1[r, c]`` lines up
with ``ct[r, :, c]`` and ``xray2[r, c]`` with ``ct[r, c, :]``.

The detector is described by its back-projection onto the iso plane (through the isocentre, perpendicular to
``d``): an R x C grid centred on ``C_plane = c0 + ((iso - c0) . d) d`` (c0 = volume centre) with pitch equal to the
voxel spacing by default (rows s_D; columns s_W, or s_H for views closer to lateral). The cone-beam source sits at
``iso - sod * d``; a parallel ray passes through each grid point along ``d``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

GEOMETRIES: tuple[str, ...] = ("cone", "parallel")
AXIS_D, AXIS_H, AXIS_W = 0, 1, 2
# Joseph marching divides by the ray's component along the plane normal; below this it is ill-posed.
MIN_AXIS_COMPONENT: float = 1e-3


@dataclass(frozen=True)
class ViewSpec:
    """One DRR view: dataset ``name``, rotation ``angle_deg`` about D from AP, and whether its columns use the
    mirrored (lateral) axis."""

    name: str
    angle_deg: float
    lateral: bool = False


@dataclass(frozen=True)
class DetectorLayout:
    """Detector grid back-projected onto the iso plane: ``rows x cols`` points with the given pitch (mm)."""

    rows: int
    cols: int
    pitch_row_mm: float
    pitch_col_mm: float


@dataclass(frozen=True)
class RayBundle:
    """The rays of one view, all float64 in mm of the volume frame.

    Attributes:
        origins: (R, C, 3) ray start points (the source for a cone beam, the iso-plane point for parallel).
        directions: (R, C, 3) unit direction vectors (D, H, W components).
        t_start: rays are integrated for ``t >= t_start`` (0 for a cone beam from its source, -inf parallel).
        layout: the detector grid.
        plane_points: (R, C, 3) detector grid points ``Q(r, c)`` on the iso plane.
        source_mm: (3,) cone-beam source position, or None for a parallel beam.
        view: the view these rays belong to.
    """

    origins: np.ndarray
    directions: np.ndarray
    t_start: float
    layout: DetectorLayout
    plane_points: np.ndarray
    source_mm: np.ndarray | None
    view: ViewSpec


def beam_direction(angle_deg: float) -> np.ndarray:
    """Unit beam direction ``cos(theta) e_H + sin(theta) e_W`` as a (3,) (D, H, W) vector."""
    theta = math.radians(angle_deg)
    return np.array([0.0, math.cos(theta), math.sin(theta)])


def column_axis(view: ViewSpec) -> np.ndarray:
    """Unit detector column axis (3,): ``cos(theta) e_W - sin(theta) e_H``, negated for lateral views."""
    theta = math.radians(view.angle_deg)
    axis = np.array([0.0, -math.sin(theta), math.cos(theta)])
    return -axis if view.lateral else axis


def is_lateral_like(angle_deg: float) -> bool:
    """True when the beam is closer to the W axis (lateral) than to the H axis (AP)."""
    theta = math.radians(angle_deg)
    return abs(math.sin(theta)) > abs(math.cos(theta))


def volume_centre_mm(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """Centre c0 of the volume in mm, (3,): ``(N - 1) / 2 * spacing``."""
    return (np.asarray(shape, dtype=np.float64) - 1.0) / 2.0 * np.asarray(spacing, dtype=np.float64)


def volume_box_mm(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The volume's box over voxel edges: (low, high) corners in mm, each (3,)."""
    s = np.asarray(spacing, dtype=np.float64)
    low = -0.5 * s
    high = (np.asarray(shape, dtype=np.float64) - 0.5) * s
    return low, high


def detector_layout(
    view: ViewSpec,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    detector_shape: tuple[int, int] | None = None,
    detector_pitch_mm: tuple[float, float] | None = None,
) -> DetectorLayout:
    """Detector grid of ``view``: default (D, W) rows/cols for AP-like and (D, H) for lateral-like views, pitch
    (s_D, s_W) or (s_D, s_H); ``detector_shape`` / ``detector_pitch_mm`` (iso-plane mm) override them."""
    lateral_like = is_lateral_like(view.angle_deg)
    col_axis = AXIS_H if lateral_like else AXIS_W
    rows, cols = (shape[AXIS_D], shape[col_axis]) if detector_shape is None else detector_shape
    pitch_row, pitch_col = (spacing[AXIS_D], spacing[col_axis]) if detector_pitch_mm is None else detector_pitch_mm
    if int(rows) < 1 or int(cols) < 1:
        raise ValueError(f"view {view.name!r}: detector shape must be positive, got {(rows, cols)}")
    if pitch_row <= 0 or pitch_col <= 0:
        raise ValueError(f"view {view.name!r}: detector pitch must be positive, got {(pitch_row, pitch_col)}")
    return DetectorLayout(int(rows), int(cols), float(pitch_row), float(pitch_col))


def detector_plane_points(
    view: ViewSpec,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    iso_mm: np.ndarray,
    layout: DetectorLayout,
) -> np.ndarray:
    """Grid points ``Q(r, c) = C_plane + (r - (R-1)/2) p_r e_D + (c - (C-1)/2) p_c e_col`` on the iso plane,
    (R, C, 3) mm."""
    d = beam_direction(view.angle_deg)
    c0 = volume_centre_mm(shape, spacing)
    plane_centre = c0 + float(np.dot(iso_mm - c0, d)) * d
    row_offsets = (np.arange(layout.rows) - (layout.rows - 1) / 2.0) * layout.pitch_row_mm
    col_offsets = (np.arange(layout.cols) - (layout.cols - 1) / 2.0) * layout.pitch_col_mm
    e_d = np.array([1.0, 0.0, 0.0])
    e_col = column_axis(view)
    return (
        plane_centre[None, None, :]
        + row_offsets[:, None, None] * e_d[None, None, :]
        + col_offsets[None, :, None] * e_col[None, None, :]
    )


def view_rays(
    view: ViewSpec,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    iso_mm: np.ndarray,
    geometry: str = "cone",
    sod_mm: float = 850.0,
    detector_shape: tuple[int, int] | None = None,
    detector_pitch_mm: tuple[float, float] | None = None,
) -> RayBundle:
    """Rays of one view. Cone: from ``S = iso - sod_mm * d`` through each ``Q(r, c)``; parallel: through
    ``Q(r, c)`` along ``d``. Raises ValueError for an unknown geometry or a source inside the volume box."""
    if geometry not in GEOMETRIES:
        raise ValueError(f"unknown DRR geometry {geometry!r}; expected one of {GEOMETRIES}")
    iso = np.asarray(iso_mm, dtype=np.float64)
    if iso.shape != (3,) or not np.all(np.isfinite(iso)):
        raise ValueError(f"isocentre must be three finite mm coordinates (D, H, W), got {iso_mm!r}")
    layout = detector_layout(view, shape, spacing, detector_shape, detector_pitch_mm)
    points = detector_plane_points(view, shape, spacing, iso, layout)
    d = beam_direction(view.angle_deg)
    if geometry == "parallel":
        directions = np.broadcast_to(d, points.shape).copy()
        return RayBundle(points, directions, -math.inf, layout, points, None, view)
    if sod_mm <= 0:
        raise ValueError(f"sod_mm must be positive, got {sod_mm}")
    source = iso - sod_mm * d
    low, high = volume_box_mm(shape, spacing)
    if np.all(source >= low) and np.all(source <= high):
        raise ValueError(
            f"view {view.name!r}: cone-beam source {source.round(1).tolist()} mm lies inside the volume box "
            f"{low.tolist()}..{high.tolist()} mm; increase sod_mm ({sod_mm})"
        )
    rays = points - source
    directions = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
    origins = np.broadcast_to(source, points.shape).copy()
    return RayBundle(origins, directions, 0.0, layout, points, source, view)


def clip_to_box(
    origins: np.ndarray, directions: np.ndarray, t_start: float | np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Slab-method intersection of rays ``o + t u`` (t >= t_start) with the box [low, high].

    Args: origins, directions (..., 3) float64; t_start scalar or (...).
    Returns (t_in, t_out), each (...); rays that miss get ``t_in == t_out`` (zero length), always finite.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        t_low = (low - origins) / directions
        t_high = (high - origins) / directions
    parallel = directions == 0.0
    inside_slab = (origins >= low) & (origins <= high)
    t_near = np.where(parallel, np.where(inside_slab, -np.inf, np.inf), np.minimum(t_low, t_high))
    t_far = np.where(parallel, np.where(inside_slab, np.inf, -np.inf), np.maximum(t_low, t_high))
    t_in = np.maximum(t_near.max(axis=-1), t_start)
    t_out = t_far.min(axis=-1)
    hit = t_out > t_in
    t_in = np.where(hit, t_in, 0.0)
    t_out = np.where(hit, t_out, 0.0)
    return t_in, t_out
