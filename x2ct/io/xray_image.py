"""Reading X-ray images (PNG, JPEG, TIFF, ... and DICOM) into one float representation.

Every reader returns a float32 array (rows, cols) in [0, 1] with radiograph polarity: bright = dense
(bone bright, air dark). Raster files are taken as they are (already in radiograph polarity unless
``invert=True``); DICOM files are made so from their photometric interpretation.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from x2ct.errors import CaseError

DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom")
DICOM_PREAMBLE_LENGTH = 128
DICOM_MAGIC = b"DICM"
# A range below one 8-bit grey level cannot be told apart from a blank image once stored as uint8.
DEFAULT_MIN_INTENSITY_RANGE = 1.0 / 255.0
GRAY_CHANNELS = 1
GRAY_ALPHA_CHANNELS = 2
BGR_CHANNELS = 3
BGRA_CHANNELS = 4
# What pydicom raises for a file that is not DICOM or whose pixel data cannot be decoded.
_DICOM_DECODE_ERRORS = (
    InvalidDicomError,
    AttributeError,
    ValueError,
    KeyError,
    TypeError,
    RuntimeError,
    OSError,
)


class XrayReadError(CaseError):
    """An X-ray file that cannot be turned into a usable image; the message names the file."""


class XrayNotFoundError(XrayReadError, FileNotFoundError):
    """The X-ray file does not exist (also a FileNotFoundError)."""


def read_xray_image(
    path: str | Path,
    *,
    invert: bool = False,
    use_dicom_window: bool = True,
    min_intensity_range: float = DEFAULT_MIN_INTENSITY_RANGE,
) -> np.ndarray:
    """Read an X-ray image file as float32 (rows, cols) in [0, 1], bright = dense.

    Raster images (anything OpenCV decodes: 8/16-bit PNG, JPEG, TIFF, BMP) are read unchanged and divided by
    the maximum of their dtype (255 or 65535; a 12-bit image stored in 16 bits therefore stays dim: the
    preprocessing's min-max normalization stretches it). Colour (BGR/BGRA) is converted to grey with the
    ITU-R 601 luma weights; alpha is ignored. Float images must already lie in [0, 1].

    DICOM files (suffix ``.dcm``/``.dicom`` or the ``DICM`` marker) go through RescaleSlope/Intercept, then
    are normalized by the file's first VOI window (linear, ``[center - width/2, center + width/2]`` -> [0, 1],
    values outside clipped) when ``use_dicom_window`` and the file has one, otherwise by their own min/max.
    MONOCHROME1 images (bright = low value) are inverted so that dense stays bright.

    Args:
        path: the image file.
        invert: flip the polarity (``1 - x``) after reading, for negatives stored with bone dark.
        use_dicom_window: normalize DICOM by its WindowCenter/WindowWidth when present (else min/max).
        min_intensity_range: images whose max - min (in [0, 1] units) is below this are rejected as blank.

    Raises:
        XrayNotFoundError: the file does not exist.
        XrayReadError: empty, undecodable, not 2D grey or colour, an unsupported dtype, or blank.
    """
    file = Path(path)
    if not file.is_file():
        raise XrayNotFoundError(f"X-ray file {file} does not exist (or is not a file)")
    if file.stat().st_size == 0:
        raise XrayReadError(f"X-ray file {file} is empty (0 bytes)")
    image = _read_dicom(file, use_dicom_window=use_dicom_window) if looks_like_dicom(file) else _read_raster(file)
    if invert:
        image = 1.0 - image
    intensity_range = float(image.max() - image.min())
    if intensity_range < min_intensity_range:
        raise XrayReadError(
            f"X-ray file {file} is blank: its intensity range {intensity_range:.3g} is below "
            f"{min_intensity_range:.3g} (constant image, nothing to crop or normalize)"
        )
    return np.ascontiguousarray(image, dtype=np.float32)


def looks_like_dicom(file: Path) -> bool:
    """Whether :func:`read_xray_image` reads ``file`` as DICOM: a ``.dcm``/``.dicom`` suffix or the ``DICM`` marker."""
    if file.suffix.lower() in DICOM_SUFFIXES:
        return True
    with file.open("rb") as handle:
        head = handle.read(DICOM_PREAMBLE_LENGTH + len(DICOM_MAGIC))
    return head[DICOM_PREAMBLE_LENGTH:] == DICOM_MAGIC


def _read_raster(file: Path) -> np.ndarray:
    """Decode with OpenCV (unchanged depth and channels) and return float (rows, cols) in [0, 1]."""
    encoded = np.fromfile(file, dtype=np.uint8)  # imdecode also copes with non-ASCII paths
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise XrayReadError(f"X-ray file {file} is not a readable image (OpenCV cannot decode it)")
    gray = _to_gray(decoded, file)
    return _scale_to_unit(gray, file)


def _to_gray(image: np.ndarray, file: Path) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.ndim != 3:
        raise XrayReadError(f"X-ray file {file} has {image.ndim} dimensions, expected a 2D image")
    channels = image.shape[2]
    if channels in (GRAY_CHANNELS, GRAY_ALPHA_CHANNELS):
        return image[:, :, 0]
    if channels == BGR_CHANNELS:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if channels == BGRA_CHANNELS:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise XrayReadError(f"X-ray file {file} has {channels} channels, expected 1 (grey), 3 (RGB) or 4 (RGBA)")


def _scale_to_unit(image: np.ndarray, file: Path) -> np.ndarray:
    if image.size == 0:
        raise XrayReadError(f"X-ray file {file} holds an empty image of shape {image.shape}")
    if image.dtype in (np.uint8, np.uint16):
        return image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise XrayReadError(f"X-ray file {file} contains NaN or infinite pixel values")
        low, high = float(image.min()), float(image.max())
        if low < 0.0 or high > 1.0:
            raise XrayReadError(
                f"X-ray file {file} is a float image with values in [{low:.3g}, {high:.3g}], expected [0, 1]"
            )
        return image.astype(np.float32)
    raise XrayReadError(f"X-ray file {file} has unsupported pixel type {image.dtype} (expected uint8/uint16/float)")


def _read_dicom(file: Path, *, use_dicom_window: bool) -> np.ndarray:
    """DICOM -> modality values (slope/intercept) -> window or min/max -> [0, 1], MONOCHROME1 inverted."""
    try:
        dataset = pydicom.dcmread(file)
        pixels = dataset.pixel_array
    except _DICOM_DECODE_ERRORS as error:
        raise XrayReadError(f"X-ray file {file} is not a readable DICOM image: {error}") from error
    samples_per_pixel = int(dataset.get("SamplesPerPixel", 1))
    if samples_per_pixel == BGR_CHANNELS and pixels.ndim == 3:
        pixels = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
    if pixels.ndim != 2:
        raise XrayReadError(
            f"X-ray file {file}: DICOM pixel data has shape {pixels.shape}, expected one 2D frame "
            "(multi-frame and volume DICOMs are not X-rays)"
        )
    if pixels.size == 0:
        raise XrayReadError(f"X-ray file {file}: DICOM pixel data is empty")
    slope = float(dataset.get("RescaleSlope", 1.0))
    intercept = float(dataset.get("RescaleIntercept", 0.0))
    values = pixels.astype(np.float64) * slope + intercept

    window = _first_window(dataset) if use_dicom_window else None
    if window is not None:
        center, width = window
        low, high = center - width / 2.0, center + width / 2.0
    else:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        raise XrayReadError(f"X-ray file {file} is blank: DICOM values are constant ({low:.6g})")
    unit = np.clip((values - low) / (high - low), 0.0, 1.0)
    if str(dataset.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        unit = 1.0 - unit
    return unit.astype(np.float32)


def _first_window(dataset: Dataset) -> tuple[float, float] | None:
    """(center, width) of the first VOI window, or None when absent or of non-positive width."""
    center = getattr(dataset, "WindowCenter", None)
    width = getattr(dataset, "WindowWidth", None)
    if center is None or width is None:
        return None
    center_value = float(center[0] if isinstance(center, MultiValue) else center)
    width_value = float(width[0] if isinstance(width, MultiValue) else width)
    if width_value <= 0:
        return None
    return center_value, width_value
