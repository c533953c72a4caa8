"""How a real radiograph was taken: the geometry its DICOM header records or the user gives, validated.

A radiograph's geometry is its source-to-detector distance (SID), source-to-isocentre (patient) distance (SOD) and
detector pixel spacing (row, col) mm. Values come from, in order of precedence:

1. an explicitly given option (``geometry.*`` of ``x2ct-predict``; overriding a DICOM value is logged);
2. the DICOM tags DistanceSourceToDetector (0018,1110), DistanceSourceToPatient (0018,1111) and
   ImagerPixelSpacing (0018,1164) (absent or malformed tags count as absent, with a logged note; clearly invalid
   values, e.g. a negative distance or SOD >= SID, raise a one-line ValueError naming the file and tag).

Each value keeps its source (:class:`SourcedValue`) for the prediction's provenance. What is still unknown is
filled in by :mod:`x2ct.inference.prediction_geometry`, which also turns a geometry into projection matrices.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from x2ct.errors import InvalidOptionError
from x2ct.io.hdf5 import lateral_key
from x2ct.io.xray_image import looks_like_dicom

log = logging.getLogger(__name__)

OPTION_PREFIX = "geometry."
PAIR = 2  # entries of a pixel spacing (row, col)
# Where a value came from (the first word of every source description).
FROM_DICOM = "DICOM"
FROM_OPTION = "option"
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
        raise InvalidOptionError(f"{what} must be a positive number of mm, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise InvalidOptionError(f"{what} must be a positive number of mm, got {value!r}")
    return number


def _positive_pair(value: Any, what: str) -> tuple[float, float]:
    items = list(value) if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str) else None
    if items is None or len(items) != PAIR:
        raise InvalidOptionError(f"{what} must be two positive numbers [row, col] mm, got {value!r}")
    return _positive(items[0], what), _positive(items[1], what)


def _check_sod_below_sid(sod: SourcedValue, sid: SourcedValue, where: str) -> None:
    if sod.value >= sid.value:
        raise InvalidOptionError(
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
                raise InvalidOptionError(f"{OPTION_PREFIX}lateral_angle: {error}") from None
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
            raise InvalidOptionError(f"unknown geometry option(s) {unknown}; expected some of {sorted(known)}")
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
