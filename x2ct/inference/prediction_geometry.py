"""The projection matrices of a real AP + lateral radiograph pair for a geometry-aware generator.

Each view's geometry (:mod:`x2ct.inference.radiograph_geometry`: options over DICOM tags) gives its matrix when
SID, SOD and pixel spacing are all known. For a view whose geometry is incomplete the fallback is the geometry the
model was trained with (the recorded geometry of the first reachable training triplet,
:func:`x2ct.drr.triplet_projection_matrices`), or, when the training data is not reachable, the aligned parallel
geometry of the X2CT convention. The log and the prediction's provenance say which. The lateral angle is the
option, else the checkpoint's training ``lateral_angle``.

Matrices of a radiograph with known geometry (:func:`radiograph_projection_matrix`): the CT grid is the output
cube at the output voxel size, centred on the isocentre; a cone beam with the SOD; the detector is the original
image's (rows, cols) before any resize, with the pitch projected to the isocentre plane,
``pixel spacing * SOD / SID``. Matrices are in normalized image coordinates (see :mod:`x2ct.drr.projection`), so a
plain resize (``preprocess=aligned``) does not change them; the paper preprocessing's crop does, and
:func:`crop_window_matrix` moves a matrix into the crop window's frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from x2ct.drr.geometry import ViewSpec, beam_direction, volume_box_mm, volume_centre_mm
from x2ct.drr.projection import (
    AP_VIEW,
    DRR_PREFIX,
    IMAGE_U_ROW,
    NONE_STRINGS,
    projection_matrix,
    triplet_projection_matrices,
)
from x2ct.inference.radiograph_geometry import (
    FIELD_WORDS,
    FROM_OPTION,
    OPTION_PREFIX,
    GeometryOptions,
    RadiographGeometry,
    SourcedValue,
    merge_geometry,
)
from x2ct.io.hdf5 import lateral_key, read_triplet

log = logging.getLogger(__name__)

IMAGE_V_ROW = 1  # the row of a projection matrix giving v * s (columns: u, rows: v)
DEPTH_ROW = 2
CONE, PARALLEL = "cone", "parallel"
# Where the lateral angle came from when no option gives it.
TRAINING_ANGLE_SOURCE = "checkpoint: training lateral_angle"
DEFAULT_ANGLE_SOURCE = "default: the checkpoint records no data settings"
# What a view's matrix assumes.
ASSUMED_RADIOGRAPH = "radiograph"
ASSUMED_TRAINING = "training data"
ASSUMED_ALIGNED = "aligned default"
VIEW_LABELS: dict[str, str] = {"xray1": "AP", "xray2": "lateral"}


# ---------------------------------------------------------------------------------------------- matrices
def lateral_view(angle_deg: float) -> ViewSpec:
    """The lateral view at ``angle_deg`` (mirrored columns: anterior on the left at 90 degrees)."""
    return ViewSpec(name=lateral_key(angle_deg), angle_deg=float(angle_deg), lateral=True)


def radiograph_projection_matrix(
    view: ViewSpec,
    geometry: RadiographGeometry,
    image_shape: tuple[int, int],
    cube: int,
    spacing_mm: Sequence[float],
    where: str = "radiograph",
) -> np.ndarray:
    """The (3, 4) float64 matrix of a radiograph of known geometry, in its original image's frame.

    The CT grid is ``(cube, cube, cube)`` at ``spacing_mm`` (D, H, W), centred on the isocentre; a cone beam with
    the SOD; the detector is ``image_shape`` (rows, cols) with pitch ``pixel spacing * SOD / SID`` at the
    isocentre. Raises ValueError (naming ``where``) when the geometry is incomplete or the source lies inside the
    CT grid.
    """
    if not geometry.complete:
        raise ValueError(f"{where}: the geometry lacks {', '.join(geometry.missing)}")
    shape = (int(cube),) * 3
    spacing = tuple(float(s) for s in spacing_mm)
    sod = float(geometry.sod_mm.value)  # type: ignore[union-attr]
    source = volume_centre_mm(shape, spacing) - sod * beam_direction(view.angle_deg)  # type: ignore[arg-type]
    low, high = volume_box_mm(shape, spacing)  # type: ignore[arg-type]
    if np.all(source >= low) and np.all(source <= high):
        extent = round(float(cube * max(spacing)), 1)
        raise ValueError(
            f"{where}: with SOD {sod:g} mm ({geometry.sod_mm.source}) the source lies inside the "  # type: ignore[union-attr]
            f"{cube}^3 output grid (about {extent:g} mm wide): the SOD must be larger"
        )
    return projection_matrix(
        view,
        shape,
        spacing,
        None,
        geometry=CONE,
        sod_mm=sod,
        detector_shape=(int(image_shape[0]), int(image_shape[1])),
        detector_pitch_mm=geometry.iso_pitch_mm(),
    )


def crop_window_matrix(
    matrix: np.ndarray, image_shape: tuple[int, int], window: tuple[int, int, int, int]
) -> np.ndarray:
    """The (3, 4) matrix for the image cut to ``window`` (row_lo, row_hi, col_lo, col_hi), end-exclusive pixel
    edges of the original ``image_shape`` (rows, cols) frame (may reach past the image), then resized to any size.

    With ``e`` a pixel-edge coordinate, ``u = 2 e / cols - 1`` becomes ``u' = 2 (e - col_lo) / width - 1``, i.e.
    ``u' = (cols / width) u + (cols - 2 col_lo) / width - 1`` (v alike); in homogeneous form the u row of ``P``
    becomes ``a u_row + b s_row``.
    """
    rows, cols = (int(n) for n in image_shape)
    row_lo, row_hi, col_lo, col_hi = (int(n) for n in window)
    if row_hi <= row_lo or col_hi <= col_lo:
        raise ValueError(f"crop window {window} is empty")
    adjusted = np.array(matrix, dtype=np.float64, copy=True)
    for row_index, n, low, high in ((IMAGE_U_ROW, cols, col_lo, col_hi), (IMAGE_V_ROW, rows, row_lo, row_hi)):
        width = high - low
        scale, offset = n / width, (n - 2.0 * low) / width - 1.0
        adjusted[row_index] = scale * matrix[row_index] + offset * matrix[DEPTH_ROW]
    return adjusted


# ------------------------------------------------------------------------------------ the geometry in use
@dataclass
class ViewGeometry:
    """The matrix used for one view and what it assumes.

    Attributes:
        matrix: (3, 4) float64, in the frame of the image the network sees (after any crop).
        record: JSON-friendly provenance (assumed geometry, values with their sources, detector, crop window).
        summary: one line for the console.
    """

    matrix: np.ndarray
    record: dict[str, Any]
    summary: str


@dataclass
class TrainingGeometry:
    """The geometry recorded in one training triplet (``file``), or the aligned default when ``file`` is None."""

    file: Path | None
    _matrices: dict[float, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _attrs: dict[str, Any] | None = None
    _ct_shape: tuple[int, int, int] | None = None

    def matrices(self, lateral_angle: float, cube: int, spacing_mm: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """(P_xray1, P_xray2) with xray2 at ``lateral_angle``: the training case's recorded views, or the aligned
        parallel views of the X2CT convention on the output grid."""
        if lateral_angle not in self._matrices:
            if self.file is None:
                shape = (int(cube),) * 3
                views = (AP_VIEW, lateral_view(lateral_angle))
                pair = tuple(projection_matrix(v, shape, spacing_mm, geometry=PARALLEL) for v in views)
            else:
                attrs, shape = self._read()
                pair = triplet_projection_matrices(attrs, shape, lateral_angle, where=str(self.file))
            self._matrices[lateral_angle] = (pair[0], pair[1])
        return self._matrices[lateral_angle]

    def description(self) -> dict[str, Any]:
        """What the fallback assumes: the beam and SOD the training file records (or the aligned default)."""
        if self.file is None:
            return {"assumed": ASSUMED_ALIGNED, "beam": PARALLEL}
        attrs, _ = self._read()
        beam, sod = attrs.get(DRR_PREFIX + "geometry"), attrs.get(DRR_PREFIX + "sod_mm")
        record: dict[str, Any] = {"assumed": ASSUMED_TRAINING, "training_file": str(self.file)}
        if beam is None or beam in NONE_STRINGS:
            record["beam"] = f"{PARALLEL} (aligned: the training file records no geometry)"
        else:
            record["beam"] = str(beam)
            if beam == CONE and sod is not None:
                record["sod_mm"] = float(sod)
        return record

    def _read(self) -> tuple[dict[str, Any], tuple[int, int, int]]:
        """The training file's attributes and CT shape (read once)."""
        if self._attrs is None or self._ct_shape is None:
            triplet = read_triplet(self.file)  # type: ignore[arg-type]
            self._attrs = dict(triplet.attrs)
            self._ct_shape = tuple(int(n) for n in triplet.ct_hu_plus_1024.shape)  # type: ignore[assignment]
        return self._attrs, self._ct_shape  # type: ignore[return-value]


class PredictionGeometry:
    """The projection matrices of an AP + lateral radiograph pair for a geometry-aware model.

    Args:
        options: the user's geometry options (override DICOM values, fill in what files do not say).
        cube: the model's output edge (voxels); the CT grid is ``(cube,) * 3``.
        spacing_mm: the output voxel size (D, H, W) mm.
        training_lateral_angle: the checkpoint's training lateral angle (used when the option is not given).
        training_file: a training triplet whose recorded geometry is the fallback; None = the aligned default.
        lateral_angle_source: where ``training_lateral_angle`` came from, for the provenance.
    """

    def __init__(
        self,
        options: GeometryOptions,
        cube: int,
        spacing_mm: Sequence[float],
        training_lateral_angle: float,
        training_file: str | Path | None = None,
        lateral_angle_source: str = TRAINING_ANGLE_SOURCE,
    ) -> None:
        self.options = options
        self.cube = int(cube)
        self.spacing_mm = tuple(float(s) for s in spacing_mm)
        if options.lateral_angle is not None:
            self.lateral_angle = SourcedValue(options.lateral_angle, f"{FROM_OPTION} {OPTION_PREFIX}lateral_angle")
        else:
            self.lateral_angle = SourcedValue(float(training_lateral_angle), lateral_angle_source)
        lateral_key(self.lateral_angle.value)  # a bad training angle fails here, not mid-prediction
        self.fallback = TrainingGeometry(Path(training_file) if training_file is not None else None)

    def views(
        self,
        image_shapes: tuple[tuple[int, int], tuple[int, int]],
        found: tuple[RadiographGeometry, RadiographGeometry] | None = None,
        names: tuple[str, str] = ("AP image", "lateral image"),
        crop_windows: tuple[tuple[int, int, int, int] | None, tuple[int, int, int, int] | None] = (None, None),
    ) -> tuple[ViewGeometry, ViewGeometry]:
        """The two views' matrices and provenance.

        Args:
            image_shapes: (rows, cols) of the original AP and lateral images (before any crop or resize).
            found: what the files say (e.g. :func:`read_dicom_geometry`); None = nothing.
            names: the images, for messages (e.g. their file names).
            crop_windows: per view, the paper preprocessing's window (:func:`crop_window_matrix`) or None.
        """
        found = found or (RadiographGeometry(), RadiographGeometry())
        specs = (AP_VIEW, lateral_view(self.lateral_angle.value))
        result = []
        for index, spec in enumerate(specs):
            geometry = merge_geometry(found[index], self.options, names[index])
            result.append(self._view(index, spec, geometry, image_shapes[index], names[index], crop_windows[index]))
        return result[0], result[1]

    def record(self, views: tuple[ViewGeometry, ViewGeometry]) -> dict[str, Any]:
        """The provenance of a prediction: the lateral angle, each view's record and the summary lines."""
        angle = self.lateral_angle
        lines = [f"geometry: lateral view at {angle.value:g} degrees from AP [{angle.source}]"]
        lines += [f"  {view.summary}" for view in views]
        return {
            "lateral_angle_deg": angle.value,
            "lateral_angle_source": angle.source,
            "output_grid": {"cube": self.cube, "spacing_mm": list(self.spacing_mm), "isocentre": "volume centre"},
            "xray1": views[0].record,
            "xray2": views[1].record,
            "summary": lines,
        }

    def _view(
        self,
        index: int,
        spec: ViewSpec,
        geometry: RadiographGeometry,
        image_shape: tuple[int, int],
        name: str,
        window: tuple[int, int, int, int] | None,
    ) -> ViewGeometry:
        label = VIEW_LABELS["xray1" if index == 0 else "xray2"]
        rows, cols = (int(n) for n in image_shape)
        record: dict[str, Any] = {"image": name, "angle_deg": spec.angle_deg, "original_shape": [rows, cols]}
        known = geometry.values()
        sources = geometry.sources()
        if geometry.complete:
            matrix = radiograph_projection_matrix(spec, geometry, (rows, cols), self.cube, self.spacing_mm, name)
            pitch = geometry.iso_pitch_mm()
            record |= {
                "assumed": ASSUMED_RADIOGRAPH,
                "beam": CONE,
                "sid_mm": known["sid_mm"],
                "sod_mm": known["sod_mm"],
                "pixel_spacing_mm": list(known["pixel_spacing_mm"]),
                "iso_pitch_mm": list(pitch),
                "sources": sources,
            }
            summary = (
                f"{label} ({name}): cone beam, SID {known['sid_mm']:g} mm [{sources['sid_mm']}], "
                f"SOD {known['sod_mm']:g} mm [{sources['sod_mm']}], pixel {known['pixel_spacing_mm'][0]:g} x "
                f"{known['pixel_spacing_mm'][1]:g} mm [{sources['pixel_spacing_mm']}]; detector {rows} x {cols} "
                f"px, {pitch[0]:.4g} x {pitch[1]:.4g} mm at the isocentre"
            )
        else:
            missing = ", ".join(FIELD_WORDS[key] for key in geometry.missing)
            pair = self.fallback.matrices(self.lateral_angle.value, self.cube, self.spacing_mm)
            matrix = pair[index]
            record |= self.fallback.description()
            record["missing"] = geometry.missing
            record["known_unused"] = {key: _plain(value) for key, value in known.items() if value is not None}
            record["sources"] = sources
            if self.fallback.file is None:
                what = "the aligned parallel geometry of the X2CT convention (training data not reachable)"
            else:
                what = f"the training data's geometry ({record['beam']}, from {self.fallback.file})"
            summary = f"{label} ({name}): {what}; unknown: {missing}"
            log.warning("%s: %s unknown (not in the file, no geometry option): using %s", name, missing, what)
        if window is not None:
            matrix = crop_window_matrix(matrix, (rows, cols), window)
            record["crop_window"] = [int(n) for n in window]
            summary += f"; matrix moved to the paper crop rows {window[0]}:{window[1]}, cols {window[2]}:{window[3]}"
        return ViewGeometry(matrix=matrix, record=record, summary=summary)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
