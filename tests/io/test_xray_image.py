"""Reading X-ray files: PNG 8/16-bit, JPEG, colour, float TIFF, DICOM (MONOCHROME1/2, rescale, window), errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from x2ct.errors import CaseError
from x2ct.io.xray_image import XrayNotFoundError, XrayReadError, read_xray_image

ROWS, COLS = 24, 32
WriteDicom = Callable[..., Path]  # the write_dicom fixture


def ramp(dtype: type[np.integer], high: int) -> np.ndarray:
    """(ROWS, COLS) image whose values rise from 0 to ``high`` along the columns."""
    return np.tile(np.linspace(0, high, COLS).round().astype(dtype), (ROWS, 1))


def test_png_8bit_is_divided_by_255(tmp_path: Path) -> None:
    pixels = ramp(np.uint8, 255)
    cv2.imwrite(str(tmp_path / "a.png"), pixels)
    image = read_xray_image(tmp_path / "a.png")
    assert image.dtype == np.float32 and image.shape == (ROWS, COLS)
    np.testing.assert_allclose(image, pixels / 255.0, atol=1e-7)


def test_png_16bit_is_divided_by_65535(tmp_path: Path) -> None:
    pixels = ramp(np.uint16, 4095)  # a 12-bit detector stored in 16 bits stays dim: documented
    cv2.imwrite(str(tmp_path / "a.png"), pixels)
    image = read_xray_image(tmp_path / "a.png")
    np.testing.assert_allclose(image, pixels / 65535.0, atol=1e-7)
    assert image.max() == pytest.approx(4095 / 65535)


def test_jpeg_is_read_close_to_the_original(tmp_path: Path) -> None:
    pixels = ramp(np.uint8, 255)
    cv2.imwrite(str(tmp_path / "a.jpg"), pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
    image = read_xray_image(tmp_path / "a.jpg")
    assert image.shape == (ROWS, COLS)
    assert np.abs(image - pixels / 255.0).mean() < 0.02


def test_colour_png_becomes_luma(tmp_path: Path) -> None:
    bgr = np.zeros((ROWS, COLS, 3), np.uint8)
    bgr[:, : COLS // 2] = (0, 0, 255)  # pure red in OpenCV's BGR order
    bgr[:, COLS // 2 :] = (255, 255, 255)
    cv2.imwrite(str(tmp_path / "rgb.png"), bgr)
    image = read_xray_image(tmp_path / "rgb.png")
    assert image[0, 0] == pytest.approx(round(0.299 * 255) / 255, abs=1 / 255)
    assert image[0, -1] == pytest.approx(1.0)


def test_rgba_png_ignores_alpha(tmp_path: Path) -> None:
    bgra = np.zeros((ROWS, COLS, 4), np.uint8)
    bgra[..., :3] = ramp(np.uint8, 255)[..., None]
    bgra[..., 3] = 0  # fully transparent: the grey values must still come through
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    image = read_xray_image(tmp_path / "rgba.png")
    np.testing.assert_allclose(image, ramp(np.uint8, 255) / 255.0, atol=1 / 255)


def test_invert_flips_polarity(tmp_path: Path) -> None:
    pixels = ramp(np.uint8, 255)
    cv2.imwrite(str(tmp_path / "a.png"), pixels)
    np.testing.assert_allclose(read_xray_image(tmp_path / "a.png", invert=True), 1.0 - pixels / 255.0, atol=1e-6)


def test_float_tiff_outside_unit_range_is_rejected(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "f.tiff"), ramp(np.uint8, 255).astype(np.float32))  # values up to 255.0
    with pytest.raises(XrayReadError, match=r"f\.tiff.*float image"):
        read_xray_image(tmp_path / "f.tiff")


def test_dicom_rescale_then_min_max_without_window(tmp_path: Path, write_dicom: WriteDicom) -> None:
    stored = ramp(np.uint16, 1000)
    path = write_dicom(tmp_path / "a.dcm", stored, slope=2.0, intercept=-500.0)
    image = read_xray_image(path)
    values = stored * 2.0 - 500.0
    expected = (values - values.min()) / (values.max() - values.min())
    np.testing.assert_allclose(image, expected, atol=1e-6)


def test_dicom_window_clips_and_scales_modality_values(tmp_path: Path, write_dicom: WriteDicom) -> None:
    stored = ramp(np.uint16, 1000)
    path = write_dicom(tmp_path / "a.dcm", stored, slope=2.0, intercept=-500.0, window=(500.0, 1000.0))
    image = read_xray_image(path)
    values = stored * 2.0 - 500.0  # -500 .. 1500; window [0, 1000]
    np.testing.assert_allclose(image, np.clip(values / 1000.0, 0.0, 1.0), atol=1e-6)
    # and the window can be switched off
    np.testing.assert_allclose(read_xray_image(path, use_dicom_window=False).max(), 1.0)
    assert read_xray_image(path, use_dicom_window=False)[0, 0] == 0.0


def test_dicom_monochrome1_is_inverted(tmp_path: Path, write_dicom: WriteDicom) -> None:
    stored = ramp(np.uint16, 1000)
    mono2 = read_xray_image(write_dicom(tmp_path / "m2.dcm", stored))
    mono1 = read_xray_image(write_dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1"))
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)
    assert mono1[0, 0] == 1.0  # lowest stored value is the brightest on MONOCHROME1


def test_dicom_without_suffix_is_detected_by_its_marker(tmp_path: Path, write_dicom: WriteDicom) -> None:
    path = write_dicom(tmp_path / "IM0001", ramp(np.uint16, 1000))
    assert read_xray_image(path).max() == 1.0


def test_multiframe_dicom_has_wrong_dimensionality(tmp_path: Path, write_dicom: WriteDicom) -> None:
    frames = np.stack([ramp(np.uint16, 1000)] * 2)
    path = write_dicom(tmp_path / "multi.dcm", frames)
    with pytest.raises(XrayReadError, match=r"multi\.dcm.*2D"):
        read_xray_image(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(XrayNotFoundError, match=r"nope\.png") as info:
        read_xray_image(tmp_path / "nope.png")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CaseError)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(XrayReadError, match=r"empty\.png.*empty"):
        read_xray_image(tmp_path / "empty.png")


def test_text_renamed_png_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("this is not an image\n")
    with pytest.raises(XrayReadError, match=r"notes\.png.*not a readable image"):
        read_xray_image(tmp_path / "notes.png")


def test_text_renamed_dcm_is_not_dicom(tmp_path: Path) -> None:
    (tmp_path / "notes.dcm").write_text("this is not a DICOM file\n")
    with pytest.raises(XrayReadError, match=r"notes\.dcm.*DICOM"):
        read_xray_image(tmp_path / "notes.dcm")


def test_blank_images_are_rejected(tmp_path: Path, write_dicom: WriteDicom) -> None:
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((ROWS, COLS), 128, np.uint8))
    with pytest.raises(XrayReadError, match=r"blank\.png.*blank"):
        read_xray_image(tmp_path / "blank.png")
    path = write_dicom(tmp_path / "blank.dcm", np.full((ROWS, COLS), 7, np.uint16))
    with pytest.raises(XrayReadError, match=r"blank\.dcm.*blank"):
        read_xray_image(path)
