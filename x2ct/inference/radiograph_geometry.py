"""How a real radiograph was taken, and the projection matrices a geometry-aware generator needs for it.

A radiograph's geometry is its source-to-detector distance (SID), source-to-isocentre (patient) distance (SOD) and
detector pixel spacing (row, col) mm; the lateral view also has its angle to the AP view. Values come from, in
order of precedence:

1. an explicitly given option (``geometry.*`` of ``x2ct-predict``; overriding a DICOM value is logged);
2. the DICOM tags DistanceSourceToDetector (0018,1110), DistanceSourceToPatient (0018,1111) and
   ImagerPixelSpacing (0018,1164) (absent or malformed tags count as absent, with a logged note; clearly invalid
   values, e.g. a negative distance or SOD >= SID, raise a one-line ValueError naming the file and tag);
3. for a view whose SID, SOD and pixel spacing are not all known: the geometry the model was trained with (the
   recorded geometry of the first reachable training triplet, :func:`x2ct.drr.triplet_projection_matrices`), or,
   when the training data is not reachable, the aligned parallel geometry of the X2CT convention. The log and the
   prediction's provenance say which.

The lateral angle is the option, else the checkpoint's training ``lateral_angle``.

Matrices of a radiograph with known geometry (:func:`radiograph_projection_matrix`): the CT grid is the output
cube at the output voxel size, centred on the isocentre; a cone beam with the SOD; the detector is the original
image's (rows, cols) before any resize, with the pitch projected to the isocentre plane,
``pixel spacing * SOD / SID``. Matrices are in normalized image coordinates (see :mod:`x2ct.drr.projection`), so a
plain resize (``preprocess=aligned``) does not change them; the paper preprocessing's crop does, and
:func:`crop_window_matrix` moves a matrix into the crop window's frame.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from x2ct.drr.geometry import ViewSpec, beam_direction, volume_box_mm, volume_centre_mm
from x2ct.drr.projection import (
    AP_VIEW,
    DRR_PREFIX,
    IMAGE_U_ROW,
    NONE_STRINGS,
    projection_matrix,
    triplet_projection_matrices,
)
from x2ct.io.hdf5 import lateral_key, read_triplet
from x2ct.io.xray_image import looks_like_dicom

log = logging.getLogger(__name__)

OPTION_PREFIX = "geometry."
IMAGE_V_ROW = 1  # the row of a projection matrix giving v * s (columns: u, rows: v)
DEPTH_ROW = 2
PAIR = 2  # entries of a pixel spacing (row, col), a detector shape, ...
CONE, PARALLEL = "cone", "parallel"
# Where a value came from (the first word of every source description).
FROM_DICOM = "DICOM"
FROM_OPTION = "option"
TRAINING_ANGLE_SOURCE = "checkpoint: training lateral_angle"
DEFAULT_ANGLE_SOURCE = "default: the checkpoint records no data settings"
# What a view's matrix assumes.
ASSUMED_RADIOGRAPH = "radiograph"
ASSUMED_TRAINING = "training data"
ASSUMED_ALIGNED = "aligned default"
VIEW_LABELS: dict[str, str] = {"xray1": "AP", "xray2": "lateral"}
# What pydicom raises for a file that is not DICOM or cannot be parsed.
_DICOM_READ_ERRORS = (InvalidDicomError, AttributeError, ValueError, KeyError, TypeError, OSError, EOFError)


@dataclass(frozen=True)
class DicomTag:
    """A DICOM attribute by keyword and (group, element)."""

    keyword: str
    group: int
    element: int

    def __str__(self) -> str:
        return f"{self.keyword} ({self.group:04X},{self.element:04X})"


# Geometry field -> the DICOM tag that records it (DX / CR image modules).
DICOM_TAGS: dict[str, DicomTag] = {
    "sid_mm": DicomTag("DistanceSourceToDetector", 0x0018, 0x1110),
    "sod_mm": DicomTag("DistanceSourceToPatient", 0x0018, 0x1111),
    "pixel_spacing_mm": DicomTag("ImagerPixelSpacing", 0x0018, 0x1164),
}
FIELD_WORDS: dict[str, str] = {"sid_mm": "SID", "sod_mm": "SOD", "pixel_spacing_mm": "pixel spacing"}


# ------------------------------------------------------------------------------------------------- options
def _positive(value: Any, what: str) -> float:
    """A finite positive float, else ValueError naming ``what``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a positive number of mm, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{what} must be a positive number of mm, got {value!r}")
    return number


def _positive_pair(value: Any, what: str) -> tuple[float, float]:
    items = list(value) if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str) else None
    if items is None or len(items) != PAIR:
        raise ValueError(f"{what} must be two positive numbers [row, col] mm, got {value!r}")
    return _positive(items[0], what), _positive(items[1], what)


def _check_sod_below_sid(sod: SourcedValue, sid: SourcedValue, where: str) -> None:
    if sod.value >= sid.value:
        raise ValueError(
            f"{where}: the source-to-patient distance {sod.value:g} mm ({sod.source}) must be shorter than the "
            f"source-to-detector distance {sid.value:g} mm ({sid.source})"
        )


@dataclass(frozen=True)
class GeometryOptions:
    """What the user says about the radiographs (``geometry:`` of ``conf/predict.yaml``); None = not given.

    Attributes:
        sid_mm: source-to-detector distance of both views (mm).
        sod_mm: source-to-isocentre (patient) distance of both views (mm), shorter than ``sid_mm``.
        pixel_spacing_mm: detector pixel spacing (row, col) at the detector (mm), of both views' original images.
        lateral_angle: degrees between the AP and the lateral beam (a whole number in (0, 180)); None = the
            checkpoint's training angle.
    Values given here override the DICOM tags. Raises ValueError (naming the option) for invalid values.
    """

    sid_mm: float | None = None
    sod_mm: float | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    lateral_angle: float | None = None

    def __post_init__(self) -> None:
        for name in ("sid_mm", "sod_mm"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _positive(value, OPTION_PREFIX + name))
        if self.pixel_spacing_mm is not None:
            pair = _positive_pair(self.pixel_spacing_mm, OPTION_PREFIX + "pixel_spacing_mm")
            object.__setattr__(self, "pixel_spacing_mm", pair)
        if self.lateral_angle is not None:
            try:
                lateral_key(self.lateral_angle)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{OPTION_PREFIX}lateral_angle: {error}") from None
            object.__setattr__(self, "lateral_angle", float(self.lateral_angle))
        if self.sid_mm is not None and self.sod_mm is not None:
            sod, sid = self.sourced("sod_mm"), self.sourced("sid_mm")
            _check_sod_below_sid(sod, sid, "geometry options")  # type: ignore[arg-type]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> GeometryOptions:
        """Options from a config mapping (None = none given); ValueError for an unknown key."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown geometry option(s) {unknown}; expected some of {sorted(known)}")
        return cls(**values)

    @property
    def any_given(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def sourced(self, name: str) -> SourcedValue | None:
        """The option ``name`` with its source description, or None when not given."""
        value = getattr(self, name)
        return None if value is None else SourcedValue(value, f"{FROM_OPTION} {OPTION_PREFIX}{name}")


# --------------------------------------------------------------------------------------- one radiograph
@dataclass(frozen=True)
class SourcedValue:
    """A value and where it came from (``"DICOM <tag>"``, ``"option geometry.<name>"``, ...)."""

    value: Any
    source: str


@dataclass(frozen=True)
class RadiographGeometry:
    """What is known about how one radiograph was taken; None = unknown.

    Attributes:
        sid_mm: source-to-detector distance (mm).
        sod_mm: source-to-isocentre distance (mm).
        pixel_spacing_mm: (row, col) detector pixel spacing at the detector (mm).
    """

    sid_mm: SourcedValue | None = None
    sod_mm: SourcedValue | None = None
    pixel_spacing_mm: SourcedValue | None = None

    @property
    def missing(self) -> list[str]:
        """Names of the unknown fields."""
        return [f.name for f in fields(self) if getattr(self, f.name) is None]

    @property
    def complete(self) -> bool:
        return not self.missing

    def iso_pitch_mm(self) -> tuple[float, float]:
        """Detector pitch (row, col) projected to the isocentre plane: ``pixel spacing * SOD / SID`` (complete only)."""
        if not self.complete:
            raise ValueError(f"the geometry lacks {', '.join(self.missing)}")
        scale = self.sod_mm.value / self.sid_mm.value  # type: ignore[union-attr]
        row, col = self.pixel_spacing_mm.value  # type: ignore[union-attr]
        return row * scale, col * scale

    def values(self) -> dict[str, Any]:
        """Field name -> value (None when unknown)."""
        return {f.name: None if getattr(self, f.name) is None else getattr(self, f.name).value for f in fields(self)}

    def sources(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name).source for f in fields(self) if getattr(self, f.name) is not None}


def read_dicom_geometry(path: str | Path) -> RadiographGeometry:
    """SID, SOD and pixel spacing from a DICOM file's tags (an empty geometry for other files).

    Only the header is parsed (``stop_before_pixels``); nothing in the file is executed. A tag that is absent,
    empty or not a number (pixel spacing: not two numbers) counts as absent, with a logged note. Raises a one-line
    ValueError naming the file and tag for a value that is a number but invalid (zero, negative, not finite) and
    for SOD >= SID.
    """
    file = Path(path)
    if not file.is_file() or not looks_like_dicom(file):
        return RadiographGeometry()
    try:
        dataset = pydicom.dcmread(file, stop_before_pixels=True)
    except _DICOM_READ_ERRORS as error:
        log.warning("%s: cannot read the DICOM header (%s): its geometry tags count as absent", file, error)
        return RadiographGeometry()
    found: dict[str, SourcedValue] = {}
    for name, tag in DICOM_TAGS.items():
        numbers = _tag_numbers(dataset, tag, file)
        if numbers is None:
            continue
        what = f"{file}: DICOM tag {tag}"
        if name == "pixel_spacing_mm":
            if len(numbers) != PAIR:
                log.warning("%s holds %d value(s), expected 2 (row, col): treated as absent", what, len(numbers))
                continue
            value: Any = _positive_pair(numbers, what)
        else:
            if len(numbers) != 1:
                log.warning("%s holds %d values, expected 1: treated as absent", what, len(numbers))
                continue
            value = _positive(numbers[0], what)
        found[name] = SourcedValue(value, f"{FROM_DICOM} {tag}")
    if "sod_mm" in found and "sid_mm" in found:
        _check_sod_below_sid(found["sod_mm"], found["sid_mm"], str(file))
    return RadiographGeometry(**found)


def _tag_numbers(dataset: pydicom.Dataset, tag: DicomTag, file: Path) -> list[float] | None:
    """The numbers a tag holds, or None (with a logged note) when it is absent, empty or not numeric."""
    element = dataset.get((tag.group, tag.element))
    if element is None:
        log.info("%s: no DICOM tag %s", file, tag)
        return None
    try:
        value = element.value
        items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
        if not items or any(item is None or (isinstance(item, str | bytes) and not item.strip()) for item in items):
            log.info("%s: DICOM tag %s is empty: treated as absent", file, tag)
            return None
        return [float(item) for item in items]
    except (TypeError, ValueError) as error:
        log.warning("%s: DICOM tag %s is not numeric (%s): treated as absent", file, tag, error)
        return None


def merge_geometry(found: RadiographGeometry, options: GeometryOptions, where: str) -> RadiographGeometry:
    """``found`` (e.g. from DICOM) with every given option filled in or overriding it (logged); ValueError
    naming ``where`` when the result has SOD >= SID."""
    merged: dict[str, SourcedValue | None] = {}
    for name in DICOM_TAGS:
        option, value = options.sourced(name), getattr(found, name)
        if option is not None and value is not None and option.value != value.value:
            log.info("%s: %s = %s overrides %s from %s", where, option.source, option.value, value.value, value.source)
        merged[name] = option if option is not None else value
    result = RadiographGeometry(**merged)
    if result.sod_mm is not None and result.sid_mm is not None:
        _check_sod_below_sid(result.sod_mm, result.sid_mm, where)
    return result


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
