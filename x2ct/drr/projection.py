"""Projection matrices of DRR views: homogeneous CT grid coordinates -> homogeneous image coordinates.

Both sides use the ``torch.nn.functional.grid_sample`` convention with ``align_corners=False``:

* CT tensor (N, 1, D, H, W): ``x`` runs along W, ``y`` along H, ``z`` along D, each in [-1, 1]; voxel ``i`` of an
  axis of length ``n`` sits at ``(2 i + 1) / n - 1``.
* image (N, 1, rows, cols): ``u`` runs along the columns, ``v`` along the rows, same pixel-centre rule.

A view's (3, 4) matrix ``P`` maps ``(x, y, z, 1)`` to ``(u s, v s, s)``: ``uv = (P p)[:2] / (P p)[2]`` is where the
voxel at ``p`` lands on the view, so ``grid_sample(image, uv)`` reads the pixel it projects onto. For a parallel
beam the last row is ``(0, 0, 0, 1)`` (s = 1); for a cone beam ``s`` is the depth along the beam from the source
in units of ``sod_mm`` (1 on the iso plane, positive in front of the source). The matrix follows the geometry of
:mod:`x2ct.drr.geometry` exactly (detector = its back-projection on the iso plane, mirrored columns for lateral
views, cone source at ``iso - sod * d``), so it agrees with what :class:`x2ct.drr.DRRRenderer` renders. Being in
normalized coordinates, it does not depend on the size the CT or the images are resized to (the data module's
corner-aligned resize moves content by less than half a pixel of the coarser grid; none without a resize).

:func:`projection_matrix` builds the matrix of any view (also views never rendered); :func:`triplet_projection_matrices`
rebuilds the two views of a prepared triplet from the geometry its file attributes record. Files without recorded
geometry (official X2CT-GAN files) get the aligned parallel geometry of the X2CT convention (xray1 [r, c] ~
ct[r, :, c], xray2 [r, c] ~ ct[r, c, :]); the log says so once per process.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from x2ct.drr.geometry import (
    AXIS_D,
    GEOMETRIES,
    ViewSpec,
    beam_direction,
    column_axis,
    detector_layout,
    volume_centre_mm,
)
from x2ct.drr.renderer import DRRConfig
from x2ct.io.hdf5 import SPACING_ATTRIBUTE, lateral_key, parse_spacing

log = logging.getLogger(__name__)

DEFAULT_SOD_MM: float = DRRConfig.sod_mm  # the renderer's default source-to-isocentre distance
# Triplet attributes written by the preparation pipeline (x2ct.preparation.pipeline.CaseProcessor.write).
DRR_PREFIX = "drr."
SPACING_ATTR = SPACING_ATTRIBUTE
ISOCENTRE_ATTR = "isocenter_mm"
XRAY_MODE_ATTR = "xray_mode"
PAPER_XRAY_MODE = "paper"  # images cropped to the body's contour: the crop box is not recorded
NONE_STRINGS = ("none", "None")  # how a None attribute may be stored (HDF5 has no null)
AP_VIEW = ViewSpec(name="xray1", angle_deg=0.0, lateral=False)
ALIGNED_SPACING_MM: tuple[float, float, float] = (1.0, 1.0, 1.0)  # isotropic, as the official X2CT data
# CT grid axes in matrix column order (x, y, z) -> volume-frame axes (D, H, W).
GRID_TO_VOLUME_AXIS: tuple[int, int, int] = (2, 1, 0)
IMAGE_U_ROW = 0  # the row of P giving u * s
GRID_X_COLUMN = 0

Matrix = TypeVar("Matrix", np.ndarray, torch.Tensor)
_logged_once: set[str] = set()


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value in NONE_STRINGS)


def _log_once(key: str, message: str, *args: object) -> None:
    """``log.warning`` the first time ``key`` comes up in this process, ``log.debug`` afterwards."""
    if key in _logged_once:
        log.debug(message, *args)
        return
    _logged_once.add(key)
    log.warning(message, *args)


# ------------------------------------------------------------------------------------------------ matrices


def grid_to_mm(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """(4, 4) affine map from homogeneous CT grid coordinates ``(x, y, z, 1)`` to volume-frame mm
    ``(p_D, p_H, p_W, 1)`` (index * spacing): ``p_A = c0_A + (n_A s_A / 2) * coordinate_A``."""
    n = np.asarray(shape, dtype=np.float64)
    s = np.asarray(spacing, dtype=np.float64)
    if n.shape != (3,) or s.shape != (3,) or np.any(n < 1) or np.any(s <= 0):
        raise ValueError(f"need a (D, H, W) shape and three positive spacings, got {tuple(shape)}, {tuple(spacing)}")
    affine = np.zeros((4, 4))
    for column, axis in enumerate(GRID_TO_VOLUME_AXIS):
        affine[axis, column] = n[axis] * s[axis] / 2.0
    affine[:3, 3] = volume_centre_mm(tuple(n.astype(int)), tuple(s))
    affine[3, 3] = 1.0
    return affine


def projection_matrix(
    view: ViewSpec,
    shape: Sequence[int],
    spacing: Sequence[float],
    iso_mm: Sequence[float] | np.ndarray | None = None,
    *,
    geometry: str = "cone",
    sod_mm: float = DEFAULT_SOD_MM,
    detector_shape: tuple[int, int] | None = None,
    detector_pitch_mm: tuple[float, float] | None = None,
) -> np.ndarray:
    """The (3, 4) float64 projective matrix of ``view`` for a CT of ``shape`` (D, H, W) and ``spacing`` (mm).

    Arguments as for :func:`x2ct.drr.build_projector` / :class:`x2ct.drr.DRRConfig`: ``view`` gives the angle
    (degrees about D from AP) and whether its columns are mirrored (lateral); ``iso_mm`` (3,) mm in the volume
    frame (None = volume centre); ``geometry`` "cone" or "parallel"; ``detector_shape`` (rows, cols) and
    ``detector_pitch_mm`` on the iso plane (None = the renderer's defaults). Raises ValueError on bad input.
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"unknown DRR geometry {geometry!r}; expected one of {GEOMETRIES}")
    shape_t = tuple(int(n) for n in shape)
    spacing_t = tuple(float(s) for s in spacing)
    to_mm = grid_to_mm(shape_t, spacing_t)
    centre = volume_centre_mm(shape_t, spacing_t)
    iso = centre if iso_mm is None else np.asarray(iso_mm, dtype=np.float64)
    if iso.shape != (3,) or not np.all(np.isfinite(iso)):
        raise ValueError(f"isocentre must be three finite mm coordinates (D, H, W), got {iso_mm!r}")
    layout = detector_layout(view, shape_t, spacing_t, detector_shape, detector_pitch_mm)
    half_rows = layout.rows * layout.pitch_row_mm / 2.0  # mm from the detector centre to its edge
    half_cols = layout.cols * layout.pitch_col_mm / 2.0
    d = beam_direction(view.angle_deg)
    e_row = np.eye(3)[AXIS_D]
    e_col = column_axis(view)
    plane_centre = centre + float(np.dot(iso - centre, d)) * d  # as geometry.detector_plane_points
    if geometry == "parallel":
        # u = (p - C) . e_col / half_cols, v = (p - C) . e_row / half_rows, s = 1
        rows_mm = np.array(
            [
                np.append(e_col, -e_col @ plane_centre) / half_cols,
                np.append(e_row, -e_row @ plane_centre) / half_rows,
                [0.0, 0.0, 0.0, 1.0],
            ]
        )
        return rows_mm @ to_mm
    if not sod_mm > 0:
        raise ValueError(f"sod_mm must be positive, got {sod_mm}")
    source = iso - sod_mm * d
    # s = (p - S) . d / sod; the ray S -> p meets the iso plane at S + (p - S) / s, so
    # u s = ((S - C) . e_col) s + (p - S) . e_col, divided by half_cols (v alike with e_row).
    depth_row = np.append(d, -d @ source) / sod_mm
    u_row = (float(np.dot(source - plane_centre, e_col)) * depth_row + np.append(e_col, -e_col @ source)) / half_cols
    v_row = (float(np.dot(source - plane_centre, e_row)) * depth_row + np.append(e_row, -e_row @ source)) / half_rows
    return np.stack([u_row, v_row, depth_row]) @ to_mm


def flip_volume_x(matrix: Matrix) -> Matrix:
    """The matrix for the CT mirrored along W (``ct.flip(-1)``, x -> -x): ``P diag(-1, 1, 1, 1)``; (..., 3, 4)."""
    flipped = matrix.clone() if isinstance(matrix, torch.Tensor) else np.array(matrix, copy=True)
    flipped[..., :, GRID_X_COLUMN] = -flipped[..., :, GRID_X_COLUMN]
    return flipped


def flip_image_columns(matrix: Matrix) -> Matrix:
    """The matrix for the image mirrored along its columns (``image.flip(-1)``, u -> -u); (..., 3, 4)."""
    flipped = matrix.clone() if isinstance(matrix, torch.Tensor) else np.array(matrix, copy=True)
    flipped[..., IMAGE_U_ROW, :] = -flipped[..., IMAGE_U_ROW, :]
    return flipped


# ----------------------------------------------------------------------------------- recorded geometry


def triplet_projection_matrices(
    attrs: Mapping[str, Any],
    ct_shape: Sequence[int],
    lateral_angle: float = 90.0,
    where: str = "triplet",
) -> tuple[np.ndarray, np.ndarray]:
    """The (3, 4) float64 matrices of a prepared triplet's ``xray1`` and of its lateral view at ``lateral_angle``.

    Args:
        attrs: the file's flattened attributes (:attr:`x2ct.io.hdf5.Triplet.attrs`).
        ct_shape: the stored CT's shape (D, H, W).
        lateral_angle: which lateral view ``xray2`` holds (degrees; 90 = dataset ``xray2``).
        where: the file, for messages.
    Returns ``(P_xray1, P_xray2)`` from the recorded geometry (``drr.geometry``, ``drr.sod_mm``, ``spacing_mm``,
    ``isocenter_mm`` and each view's ``drr.<view>_rows/_cols/_iso_pitch_row_mm/_iso_pitch_col_mm/_lateral``), or
    the aligned parallel geometry when the file records none. Raises ValueError (naming ``where``) when the
    recorded geometry is incomplete.
    """
    shape = tuple(int(n) for n in ct_shape)
    lateral = ViewSpec(name=lateral_key(lateral_angle), angle_deg=float(lateral_angle), lateral=True)
    geometry = attrs.get(DRR_PREFIX + "geometry")
    if _is_none(geometry):
        _log_once(
            "aligned",
            "%s (and any other file without recorded DRR geometry, e.g. official X2CT-GAN files): projection "
            "matrices use the aligned parallel geometry of the X2CT convention",
            where,
        )
        spacing = _spacing(attrs, where) if SPACING_ATTR in attrs else ALIGNED_SPACING_MM
        ap, side = (projection_matrix(v, shape, spacing, geometry="parallel") for v in (AP_VIEW, lateral))
        return ap, side
    if attrs.get(XRAY_MODE_ATTR) == PAPER_XRAY_MODE:
        _log_once(
            "paper",
            "%s (and any other file prepared with xray.mode=paper): the X-rays were cropped to the body's contour "
            "and resized, which the file does not record; projection matrices describe the uncropped detector",
            where,
        )
    spacing = _spacing(attrs, where)
    iso = _isocentre(attrs, where)
    sod = float(attrs.get(DRR_PREFIX + "sod_mm", DEFAULT_SOD_MM))
    matrices = []
    for view in (AP_VIEW, lateral):
        view, detector_shape, pitch = _recorded_view(attrs, view, where)
        matrices.append(
            projection_matrix(
                view,
                shape,
                spacing,
                iso,
                geometry=str(geometry),
                sod_mm=sod,
                detector_shape=detector_shape,
                detector_pitch_mm=pitch,
            )
        )
    return matrices[0], matrices[1]


def _spacing(attrs: Mapping[str, Any], where: str) -> tuple[float, float, float]:
    spacing = parse_spacing(attrs.get(SPACING_ATTR), where)  # the one spacing parser (TripletFileError: ValueError)
    if spacing is None:
        raise ValueError(f"{where}: attribute {SPACING_ATTR!r} is missing")
    return spacing


def _isocentre(attrs: Mapping[str, Any], where: str) -> np.ndarray:
    value = attrs.get(ISOCENTRE_ATTR)
    if _is_none(value):
        value = [attrs.get(f"{DRR_PREFIX}isocenter_{axis}_mm") for axis in "dhw"]
    if any(_is_none(v) for v in np.asarray(value, dtype=object).reshape(-1)):
        raise ValueError(f"{where}: records DRR geometry but no isocentre ({ISOCENTRE_ATTR!r})")
    iso = np.asarray(value, dtype=np.float64).reshape(-1)
    if iso.shape != (3,) or not np.all(np.isfinite(iso)):
        raise ValueError(f"{where}: attribute {ISOCENTRE_ATTR!r} must be three finite mm values, got {value!r}")
    return iso


def _recorded_view(
    attrs: Mapping[str, Any], view: ViewSpec, where: str
) -> tuple[ViewSpec, tuple[int, int] | None, tuple[float, float] | None]:
    """The view as rendered (angle, mirrored columns) and its detector grid; the run's detector settings (or
    the renderer's defaults) when the file has no per-view record."""
    prefix = f"{DRR_PREFIX}{view.name}_"
    angle = float(attrs.get(prefix + "angle_deg", view.angle_deg))
    if not math.isclose(angle, view.angle_deg, abs_tol=1e-6):
        raise ValueError(f"{where}: view {view.name!r} was rendered at {angle} degrees, expected {view.angle_deg}")
    lateral = bool(attrs.get(prefix + "lateral", view.lateral))
    recorded = ViewSpec(view.name, angle, lateral)
    keys = [prefix + suffix for suffix in ("rows", "cols", "iso_pitch_row_mm", "iso_pitch_col_mm")]
    if all(key in attrs for key in keys):
        rows, cols, pitch_row, pitch_col = (attrs[key] for key in keys)
        return recorded, (int(rows), int(cols)), (float(pitch_row), float(pitch_col))
    return (
        recorded,
        _pair(attrs, "detector_shape", ("rows", "cols"), int),
        _pair(attrs, "detector_pitch_mm", ("row", "col"), float),
    )


def _pair(attrs: Mapping[str, Any], name: str, suffixes: tuple[str, str], kind: type) -> tuple | None:
    """A two-element DRRConfig field as the renderer records it (``drr.<name>_<suffix>``), or None."""
    keys = [f"{DRR_PREFIX}{name}_{suffix}" for suffix in suffixes]
    if not all(key in attrs for key in keys):
        return None
    return tuple(kind(attrs[key]) for key in keys)
