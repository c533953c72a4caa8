"""Synthetic X-ray pictures and files (PNG 8/16-bit, DICOM) for the reading and prediction tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

UINT16_PER_UINT8 = 257  # 255 * 257 = 65535
DICOM_BITS = 16
XRAY_KINDS: tuple[str, ...] = ("png8", "png16", "dicom")


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
) -> Path:
    """A minimal uint16 secondary-capture DICOM; (frames, rows, cols) pixels make a multi-frame file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = DICOM_BITS
    ds.BitsStored = DICOM_BITS
    ds.HighBit = DICOM_BITS - 1
    ds.PixelRepresentation = 0
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def synthetic_xray(rows: int = 80, cols: int = 60, lateral: bool = False, seed: int = 0) -> np.ndarray:
    """A uint8 (rows, cols) radiograph-like image (bright = dense): dark air, a grey body, a bright vertical
    'spine' (centred for the AP view, at two thirds of the width for the lateral one), a little noise."""
    rng = np.random.default_rng(seed)
    image = np.full((rows, cols), 15, np.uint8)
    image[4:-4, cols // 6 : -cols // 6] = 90
    spine = slice(cols // 2 - 4, cols // 2 + 4) if not lateral else slice(2 * cols // 3 - 4, 2 * cols // 3 + 4)
    image[6:-6, spine] = 210
    noise = rng.integers(0, 6, size=image.shape, dtype=np.uint8)
    return image + noise


def write_xray(path: Path, image: np.ndarray, kind: str) -> Path:
    """Write a uint8 image as ``png8``, ``png16`` (x 257, same picture) or ``dicom`` (uint16 MONOCHROME2)."""
    if kind == "png8":
        cv2.imwrite(str(path), image)
    elif kind == "png16":
        cv2.imwrite(str(path), image.astype(np.uint16) * UINT16_PER_UINT8)
    elif kind == "dicom":
        write_dicom(path, image.astype(np.uint16) * UINT16_PER_UINT8)
    else:
        raise ValueError(f"unknown image kind {kind!r}, expected one of {XRAY_KINDS}")
    return path


def write_xray_pair(folder: Path, kind: str = "png8") -> tuple[Path, Path]:
    """An AP and a lateral synthetic X-ray file of one kind in ``folder`` (created)."""
    suffix = ".dcm" if kind == "dicom" else ".png"
    folder.mkdir(parents=True, exist_ok=True)
    ap = write_xray(folder / f"ap_{kind}{suffix}", synthetic_xray(), kind)
    lateral = write_xray(folder / f"lateral_{kind}{suffix}", synthetic_xray(lateral=True, seed=1), kind)
    return ap, lateral
