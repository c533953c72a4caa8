"""The per-case HDF5 file ``ct_xray_data.h5`` (X2CT-GAN layout), written atomically and read with checks.

Layout (design.md section 4; compatible with the official X2CT-GAN reader, which only calls
``np.asarray(f["ct"])``, ``f["xray1"]``, ``f["xray2"]``):

* ``ct``: (D, H, W) canonical axes, value = HU + 1024 (attribute ``hu_offset`` = 1024 on the file and on
  the dataset). See :func:`write_triplet` for the stored dtype.
* ``xray1``: AP view, uint8, D x W (aligned) or square (paper mode / official files, e.g. 128 x 128).
* ``xray2``: lateral view at 90 degrees, uint8, D x H or square.
* ``xray2_NNN``: lateral view at NNN degrees (three digits, e.g. ``xray2_085``), same rules as ``xray2``.
* file attributes: ``schema_version``, ``hu_offset``, ``lateral_angles`` and the caller's attributes
  (spacing, geometry, DRR mode, source case, ...), nested dicts flattened with ``.`` (``geometry.sid_mm``).
  None is stored as the string ``"None"`` and read back as None. (Files written before this rule may hold
  ``"none"`` for an unset DRR option such as ``drr.detector_shape``; it reads back as that string.)

X-ray shape rule: 2D, and either matching the CT's aligned plane (xray1: (D, W); laterals: (D, H)) or
square of any size. Files from the official pipeline (only ``ct``, ``xray1``, ``xray2``, no attributes,
ct float64 / uint8 / uint16 / int16) load.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from x2ct.errors import CaseError, InvalidOptionError

HU_OFFSET = 1024
SCHEMA_VERSION = 1
TRIPLET_FILENAME = "ct_xray_data.h5"
CT_KEY = "ct"
XRAY1_KEY = "xray1"
XRAY2_KEY = "xray2"
LATERAL_REFERENCE_ANGLE = 90.0
ANGLE_MIN_EXCLUSIVE = 0.0
ANGLE_MAX_EXCLUSIVE = 180.0
ANGLE_INTEGER_TOLERANCE = 1e-6
ATTRIBUTE_SEPARATOR = "."
CT_NDIM = 3  # (D, H, W)
SPACING_ATTRIBUTE = "spacing_mm"  # voxel size (D, H, W) in mm of the stored CT, recorded by x2ct-prepare
NONE_ATTRIBUTE = "None"  # how a None attribute value is stored (HDF5 has no null); read back as None
INT16_MAX = int(np.iinfo(np.int16).max)
UINT8_MAX = 255
_LATERAL_KEY_PATTERN = re.compile(rf"^{XRAY2_KEY}_(\d{{3}})$")
_NUMERIC_KINDS = "iuf"  # signed int, unsigned int, float

CtDtype = Literal["int16", "float32"]


class TripletFileError(CaseError):
    """A triplet HDF5 file that is missing, unreadable or breaks the schema; the message names the file."""


class TripletNotFoundError(TripletFileError, FileNotFoundError):
    """The triplet file does not exist (also a FileNotFoundError)."""


@dataclass
class Triplet:
    """One case read from a triplet file.

    Attributes:
        ct_hu_plus_1024: float32 (D, H, W), HU + 1024 (air about 24, water 1024), canonical axes.
        xray1: uint8 AP view (D x W or square).
        xray2: uint8 lateral view at ``lateral_angle`` (D x H or square).
        lateral_angle: the angle of ``xray2`` in degrees (90 = true lateral).
        attrs: file attributes, flattened (``geometry.sid_mm``), numpy scalars as Python numbers, arrays as
            lists; empty for official files.
        available_angles: every lateral angle stored in the file, ascending.
    """

    ct_hu_plus_1024: np.ndarray
    xray1: np.ndarray
    xray2: np.ndarray
    lateral_angle: float
    attrs: dict[str, Any]
    available_angles: list[float]


# ---------------------------------------------------------------------------------------------------- keys


def lateral_key(angle: float) -> str:
    """Dataset name of the lateral view at ``angle`` degrees: 90 -> ``"xray2"``, 85 -> ``"xray2_085"``.

    Raises ValueError for a non-integer angle or one outside the open interval (0, 180).
    """
    value = float(angle)
    if not math.isfinite(value) or abs(value - round(value)) > ANGLE_INTEGER_TOLERANCE:
        raise InvalidOptionError(f"lateral angle must be a whole number of degrees, got {angle!r}")
    if not ANGLE_MIN_EXCLUSIVE < value < ANGLE_MAX_EXCLUSIVE:
        raise InvalidOptionError(f"lateral angle must lie strictly between 0 and 180 degrees, got {angle!r}")
    degrees = round(value)
    if degrees == LATERAL_REFERENCE_ANGLE:
        return XRAY2_KEY
    return f"{XRAY2_KEY}_{degrees:03d}"


def angle_from_key(key: str) -> float | None:
    """Inverse of :func:`lateral_key`: ``"xray2"`` -> 90.0, ``"xray2_085"`` -> 85.0, other names -> None."""
    if key == XRAY2_KEY:
        return LATERAL_REFERENCE_ANGLE
    match = _LATERAL_KEY_PATTERN.match(key)
    if match is None:
        return None
    value = float(match.group(1))
    return value if ANGLE_MIN_EXCLUSIVE < value < ANGLE_MAX_EXCLUSIVE else None


# ------------------------------------------------------------------------------------------- attributes


def flatten_attributes(attrs: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> flat dict of HDF5-storable values (keys joined with ``.``).

    None -> ``"None"``; bool/int/float/str and numpy scalars kept; ``Path`` -> str; lists/tuples of numbers
    or of strings -> 1D arrays; numeric numpy arrays kept. Raises TypeError for anything else (naming the key).
    """
    flat: dict[str, Any] = {}
    for key, value in attrs.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"attribute names must be non-empty strings, got {key!r}")
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_attributes(value, prefix=name + ATTRIBUTE_SEPARATOR))
        else:
            flat[name] = _storable(name, value)
    return flat


def _storable(name: str, value: Any) -> Any:
    if value is None:
        return NONE_ATTRIBUTE
    if isinstance(value, (bool, np.bool_)):
        return np.bool_(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        if all(isinstance(item, str) for item in value) and value:
            return np.array(value, dtype=h5py.string_dtype())
        if all(isinstance(item, (int, float, np.integer, np.floating)) for item in value):
            all_integers = all(isinstance(item, (int, np.integer)) for item in value)
            return np.asarray(value, dtype=np.int64 if all_integers and value else np.float64)
        raise TypeError(f"attribute {name!r}: a list must hold only numbers or only strings, got {value!r}")
    if isinstance(value, np.ndarray) and value.dtype.kind in _NUMERIC_KINDS + "b":
        return value
    raise TypeError(f"attribute {name!r}: cannot store a value of type {type(value).__name__} in HDF5")


def _readable(value: Any) -> Any:
    """HDF5 attribute value -> Python (bytes -> str, ``"None"`` -> None, numpy scalars -> numbers, arrays ->
    lists)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        return None if value == NONE_ATTRIBUTE else value
    if isinstance(value, np.ndarray):
        return [_readable(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------------------------------- writing


def write_triplet(
    path: str | Path,
    ct_hu: np.ndarray,
    xray1: np.ndarray,
    laterals: Mapping[float, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    compression: Literal["gzip", "lzf"] | None = None,
    ct_dtype: CtDtype = "int16",
) -> Path:
    """Write one case atomically: a temporary file in the same folder, then ``os.replace`` onto ``path``.

    Args:
        path: the final file (its folder must exist); an existing file is replaced only on success.
        ct_hu: (D, H, W) CT in Hounsfield units (canonical axes), finite.
        xray1: uint8 AP view, (D, W) or square.
        laterals: {angle in degrees: uint8 lateral view, (D, H) or square}; must contain 90 (``xray2``).
        attrs: file attributes (spacing, geometry, DRR mode, source case, ...); nested dicts are flattened.
        compression: HDF5 filter for every dataset (``"gzip"`` about 3x smaller; ``"lzf"`` faster), or None.
        ct_dtype: ``"int16"`` (default) stores round(HU + 1024) clipped to [0, 32767]: half the size of
            float32 and lossless for training, because the X2CT normalization clips to [0, 2500] anyway
            (HU below -1024, i.e. scanner padding, becomes 0) and rounding moves a value by at most 0.5 HU
            (2e-4 on the model's [0, 1] scale). ``"float32"`` keeps fractional values from resampling.

    Returns the final path. Raises ValueError / TypeError on bad input; on any failure no file is left under
    ``path`` (a previous file there stays untouched) and the temporary file is removed.
    """
    final = Path(path)
    if not final.parent.is_dir():
        raise FileNotFoundError(f"cannot write {final}: folder {final.parent} does not exist")
    ct = _checked_ct_for_writing(ct_hu, ct_dtype)
    depth, height, width = ct.shape
    _check_xray(np.asarray(xray1), XRAY1_KEY, (depth, width), str(final), require_uint8=True)
    lateral_arrays: dict[str, np.ndarray] = {}
    for angle, image in laterals.items():
        key = lateral_key(angle)
        if key in lateral_arrays:
            raise ValueError(f"lateral angles {sorted(laterals)} map twice to dataset {key!r}")
        _check_xray(np.asarray(image), key, (depth, height), str(final), require_uint8=True)
        lateral_arrays[key] = np.asarray(image)
    if XRAY2_KEY not in lateral_arrays:
        raise ValueError(f"laterals must include the 90-degree view ({XRAY2_KEY!r}), got angles {sorted(laterals)}")
    angles = sorted(float(a) for a in laterals)
    file_attrs = flatten_attributes(dict(attrs or {}))
    file_attrs.update({"schema_version": SCHEMA_VERSION, "hu_offset": HU_OFFSET, "lateral_angles": np.asarray(angles)})

    handle, temporary_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        with h5py.File(temporary, "w") as h5:
            dataset = h5.create_dataset(CT_KEY, data=ct, compression=compression)
            dataset.attrs["hu_offset"] = HU_OFFSET
            h5.create_dataset(XRAY1_KEY, data=np.asarray(xray1), compression=compression)
            for key, image in lateral_arrays.items():
                h5.create_dataset(key, data=image, compression=compression)
            for name, value in file_attrs.items():
                h5.attrs[name] = value
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return final


def _checked_ct_for_writing(ct_hu: np.ndarray, ct_dtype: CtDtype) -> np.ndarray:
    ct = np.asarray(ct_hu)
    if ct.ndim != 3 or min(ct.shape) == 0:
        raise ValueError(f"ct_hu must be a non-empty 3D array (D, H, W), got shape {ct.shape}")
    if ct.dtype.kind not in _NUMERIC_KINDS:
        raise ValueError(f"ct_hu must be numeric, got dtype {ct.dtype}")
    if not np.all(np.isfinite(ct)):
        raise ValueError("ct_hu contains NaN or infinite values")
    shifted = ct.astype(np.float32) + HU_OFFSET
    if ct_dtype == "int16":
        return np.clip(np.round(shifted), 0, INT16_MAX).astype(np.int16)
    if ct_dtype == "float32":
        return shifted
    raise ValueError(f"ct_dtype must be 'int16' or 'float32', got {ct_dtype!r}")


# ---------------------------------------------------------------------------------------------- reading


def read_triplet(path: str | Path, lateral_angle: float = LATERAL_REFERENCE_ANGLE) -> Triplet:
    """Read and check one case; ``xray2`` of the result is the lateral view at ``lateral_angle``.

    Raises TripletNotFoundError (missing file) or TripletFileError (not HDF5, a missing dataset or angle,
    wrong ndim/shape, non-numeric dtype, NaN/inf in ct, X-ray values outside [0, 255]).
    """
    file = _existing_hdf5(path)
    key = lateral_key(lateral_angle)
    with _open_hdf5(file) as h5:
        angles = _available_angles(h5)
        ct = _read_ct(h5, file)
        depth, height, width = ct.shape
        xray1 = _read_xray(h5, XRAY1_KEY, (depth, width), file)
        if key not in h5:
            raise TripletFileError(
                f"{file}: no lateral view at {float(lateral_angle):g} degrees (dataset {key!r}); "
                f"available angles: {angles or 'none'}"
            )
        xray2 = _read_xray(h5, key, (depth, height), file)
        attrs = {name: _readable(value) for name, value in h5.attrs.items()}
    return Triplet(
        ct_hu_plus_1024=ct,
        xray1=xray1,
        xray2=xray2,
        lateral_angle=float(lateral_angle),
        attrs=attrs,
        available_angles=angles,
    )


def stored_lateral_angles(path: str | Path) -> list[float]:
    """Every lateral angle (degrees, ascending) whose view the triplet file stores; reads only the file's keys."""
    file = _existing_hdf5(path)
    with _open_hdf5(file) as h5:
        return _available_angles(h5)


def validate_triplet(path: str | Path, required_angles: Iterable[float] = (LATERAL_REFERENCE_ANGLE,)) -> None:
    """Check a whole file (ct, xray1 and every lateral view present) and that ``required_angles`` exist.

    Returns nothing; raises like :func:`read_triplet`. The preparation pipeline treats a case whose file
    passes as finished.
    """
    file = _existing_hdf5(path)
    required_keys = {lateral_key(angle): float(angle) for angle in required_angles}
    with _open_hdf5(file) as h5:
        angles = _available_angles(h5)
        missing = [angle for key, angle in required_keys.items() if key not in h5]
        if missing:
            raise TripletFileError(f"{file}: missing lateral angles {missing}; available angles: {angles}")
        ct = _read_ct(h5, file)
        depth, height, width = ct.shape
        _read_xray(h5, XRAY1_KEY, (depth, width), file)
        for angle in angles:
            _read_xray(h5, lateral_key(angle), (depth, height), file)


def read_spacing(path: str | Path) -> tuple[tuple[float, float, float] | None, tuple[int, int, int]]:
    """The stored CT's voxel size (D, H, W) in mm from attribute ``spacing_mm`` (None when the file records none,
    as official X2CT files) and the CT's shape; reads attributes and the dataset's shape only, not the data.

    Raises TripletNotFoundError / TripletFileError naming the file: missing, not HDF5, no 3D ``ct``, or a spacing
    that is not three positive finite numbers.
    """
    file = _existing_hdf5(path)
    with _open_hdf5(file) as h5:
        if not isinstance(h5.get(CT_KEY), h5py.Dataset) or h5[CT_KEY].ndim != CT_NDIM:
            raise TripletFileError(f"{file}: no 3D dataset {CT_KEY!r} (datasets present: {sorted(h5)})")
        shape = tuple(int(n) for n in h5[CT_KEY].shape)
        stored = _readable(h5.attrs[SPACING_ATTRIBUTE]) if SPACING_ATTRIBUTE in h5.attrs else None
    return parse_spacing(stored, str(file)), shape  # type: ignore[return-value]


def parse_spacing(value: Any, where: str) -> tuple[float, float, float] | None:
    """A ``spacing_mm`` attribute value (as read by :func:`read_triplet` or h5py) -> (D, H, W) mm, or None when
    the value is None (not recorded). Raises TripletFileError naming ``where`` unless it is three positive finite
    numbers. The one parser of a triplet's spacing (evaluation, prediction, projection matrices)."""
    value = _readable(value)
    if value is None:
        return None
    try:
        values = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        values = np.zeros(0)
    if values.size != CT_NDIM or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise TripletFileError(
            f"{where}: attribute {SPACING_ATTRIBUTE!r} must be three positive voxel sizes in mm (D, H, W), "
            f"got {value!r}"
        )
    return float(values[0]), float(values[1]), float(values[2])


def _existing_hdf5(path: str | Path) -> Path:
    file = Path(path)
    if not file.is_file():
        raise TripletNotFoundError(f"triplet file {file} does not exist (or is not a file)")
    if not h5py.is_hdf5(file):
        raise TripletFileError(f"{file} is not an HDF5 file")
    return file


@contextlib.contextmanager
def _open_hdf5(file: Path) -> Iterator[h5py.File]:
    """``file`` opened read-only; a file h5py cannot open (truncated, corrupt) raises TripletFileError naming it."""
    try:
        h5 = h5py.File(file, "r")
    except OSError as error:
        raise TripletFileError(
            f"{file} cannot be read (truncated or corrupt HDF5 file): {_first_line(error)}"
        ) from error
    with h5:
        yield h5


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _available_angles(h5: h5py.File) -> list[float]:
    angles = [angle_from_key(name) for name in h5]
    return sorted(angle for angle in angles if angle is not None)


def _dataset(h5: h5py.File, key: str, file: Path) -> np.ndarray:
    if key not in h5:
        raise TripletFileError(f"{file}: dataset {key!r} is missing (datasets present: {sorted(h5)})")
    node = h5[key]
    if not isinstance(node, h5py.Dataset):
        raise TripletFileError(f"{file}: {key!r} is a group, expected a dataset")
    if node.dtype.kind not in _NUMERIC_KINDS:
        raise TripletFileError(f"{file}: dataset {key!r} has non-numeric dtype {node.dtype}")
    try:
        return node[()]
    except OSError as error:  # the data block lies past the end of a truncated file, or is corrupt
        raise TripletFileError(
            f"{file}: dataset {key!r} cannot be read (truncated or corrupt): {_first_line(error)}"
        ) from error


def _read_ct(h5: h5py.File, file: Path) -> np.ndarray:
    ct = _dataset(h5, CT_KEY, file)
    if ct.ndim != 3 or min(ct.shape) == 0:
        raise TripletFileError(f"{file}: dataset 'ct' must be a non-empty 3D array (D, H, W), got {ct.shape}")
    ct = ct.astype(np.float32)
    if not np.all(np.isfinite(ct)):
        raise TripletFileError(f"{file}: dataset 'ct' contains NaN or infinite values")
    return ct


def _read_xray(h5: h5py.File, key: str, aligned_shape: tuple[int, int], file: Path) -> np.ndarray:
    image = _dataset(h5, key, file)
    _check_xray(image, key, aligned_shape, str(file), require_uint8=False)
    if image.dtype == np.uint8:
        return image
    if not np.all(np.isfinite(image)) or image.min() < 0 or image.max() > UINT8_MAX:
        raise TripletFileError(f"{file}: dataset {key!r} ({image.dtype}) has values outside [0, 255]")
    return np.round(image).astype(np.uint8)


def _check_xray(
    image: np.ndarray, key: str, aligned_shape: tuple[int, int], where: str, *, require_uint8: bool
) -> None:
    """2D, and either ``aligned_shape`` or square; uint8 when writing. Raises TripletFileError."""
    error = TripletFileError
    if image.ndim != 2 or min(image.shape) == 0:
        raise error(f"{where}: {key!r} must be a non-empty 2D image, got shape {image.shape}")
    rows, cols = image.shape
    if image.shape != aligned_shape and rows != cols:
        raise error(
            f"{where}: {key!r} has shape {image.shape}; expected the CT's aligned plane {aligned_shape} "
            "or a square image"
        )
    if require_uint8 and image.dtype != np.uint8:
        raise error(f"{where}: {key!r} must be uint8, got dtype {image.dtype}")
