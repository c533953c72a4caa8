"""How a real radiograph was taken: DICOM tags, options, fallbacks, errors, and its projection matrices."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataelem import DataElement

from x2ct.drr.projection import AP_VIEW, projection_matrix, triplet_projection_matrices
from x2ct.inference.prediction_geometry import (
    PredictionGeometry,
    crop_window_matrix,
    lateral_view,
    radiograph_projection_matrix,
)
from x2ct.inference.radiograph_geometry import (
    GeometryOptions,
    RadiographGeometry,
    SourcedValue,
    merge_geometry,
    read_dicom_geometry,
)
from x2ct.io.hdf5 import read_triplet
from x2ct.preparation.xray_preprocess import PaperPreprocessConfig, paper_crop_window, paper_preprocess

CUBE = 32
SPACING = (4.0, 4.0, 4.0)  # a 128 mm output grid
HALF_EXTENT_MM = CUBE * SPACING[0] / 2  # grid coordinate 1 is this far from the centre
SID, SOD = 1000.0, 800.0
PIXEL = (0.5, 0.4)  # (row, col) mm at the detector
IMAGE_SHAPE = (300, 400)  # (rows, cols)
SID_TAG, SOD_TAG, SPACING_TAG = (0x0018, 0x1110), (0x0018, 0x1111), (0x0018, 0x1164)
WriteDicom = Callable[..., Path]


def known(sid: float = SID, sod: float = SOD, pixel: tuple[float, float] = PIXEL) -> RadiographGeometry:
    return RadiographGeometry(SourcedValue(sid, "test"), SourcedValue(sod, "test"), SourcedValue(pixel, "test"))


def dicom_with(write_dicom: WriteDicom, path: Path, **elements: tuple[str, Any]) -> Path:
    """A small DICOM image with extra elements ``tag keyword -> (VR, value)`` (malformed VRs allowed)."""
    write_dicom(path, np.arange(12 * 10, dtype=np.uint16).reshape(12, 10))
    dataset = pydicom.dcmread(path)
    tags = {"sid": SID_TAG, "sod": SOD_TAG, "spacing": SPACING_TAG}
    for name, (vr, value) in elements.items():
        dataset[tags[name]] = DataElement(tags[name], vr, value)
    dataset.save_as(path)
    return path


# --------------------------------------------------------------------------------------------- DICOM tags
def test_dicom_tags_are_read_with_their_source(write_dicom: WriteDicom, tmp_path: Path) -> None:
    path = dicom_with(
        write_dicom, tmp_path / "ap.dcm", sid=("DS", "1100"), sod=("DS", "950.5"), spacing=("DS", ["0.15", "0.2"])
    )
    geometry = read_dicom_geometry(path)
    assert geometry.values() == {"sid_mm": 1100.0, "sod_mm": 950.5, "pixel_spacing_mm": (0.15, 0.2)}
    assert geometry.sources() == {
        "sid_mm": "DICOM DistanceSourceToDetector (0018,1110)",
        "sod_mm": "DICOM DistanceSourceToPatient (0018,1111)",
        "pixel_spacing_mm": "DICOM ImagerPixelSpacing (0018,1164)",
    }
    assert geometry.iso_pitch_mm() == pytest.approx((0.15 * 950.5 / 1100, 0.2 * 950.5 / 1100))


def test_raster_files_and_dicoms_without_tags_say_nothing(
    write_dicom: WriteDicom, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    png = tmp_path / "ap.png"
    cv2.imwrite(str(png), np.full((8, 8), 100, np.uint8))
    assert read_dicom_geometry(png).missing == ["sid_mm", "sod_mm", "pixel_spacing_mm"]
    with caplog.at_level(logging.INFO):
        bare = read_dicom_geometry(write_dicom(tmp_path / "bare.dcm", np.ones((4, 4), np.uint16)))
    assert not bare.sources() and "no DICOM tag DistanceSourceToPatient (0018,1111)" in caplog.text


def test_malformed_tags_count_as_absent_with_a_note(
    write_dicom: WriteDicom, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = dicom_with(
        write_dicom, tmp_path / "odd.dcm", sid=("LO", "about a metre"), sod=("DS", ""), spacing=("DS", "0.2")
    )
    with caplog.at_level(logging.INFO):
        geometry = read_dicom_geometry(path)
    assert geometry.missing == ["sid_mm", "sod_mm", "pixel_spacing_mm"]
    assert "DistanceSourceToDetector (0018,1110) is not numeric" in caplog.text
    assert "DistanceSourceToPatient (0018,1111) is empty" in caplog.text
    assert "ImagerPixelSpacing (0018,1164) holds 1 value(s), expected 2" in caplog.text


@pytest.mark.parametrize(
    ("elements", "message"),
    [
        ({"sid": ("DS", "-1000")}, r"bad\.dcm: DICOM tag DistanceSourceToDetector \(0018,1110\) must be a positive"),
        ({"spacing": ("DS", ["0.2", "0"])}, r"bad\.dcm: DICOM tag ImagerPixelSpacing \(0018,1164\) must be a positive"),
        (
            {"sid": ("DS", "900"), "sod": ("DS", "1000")},
            r"bad\.dcm: the source-to-patient distance 1000 mm \(DICOM DistanceSourceToPatient \(0018,1111\)\) must "
            r"be shorter than the source-to-detector distance 900 mm \(DICOM DistanceSourceToDetector",
        ),
    ],
)
def test_invalid_dicom_values_give_one_line_errors_naming_file_and_tag(
    write_dicom: WriteDicom, tmp_path: Path, elements: dict[str, tuple[str, Any]], message: str
) -> None:
    path = dicom_with(write_dicom, tmp_path / "bad.dcm", **elements)
    with pytest.raises(ValueError, match=message) as error:
        read_dicom_geometry(path)
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------------------------- options
def test_options_fill_in_and_override_dicom_values(
    write_dicom: WriteDicom, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = dicom_with(write_dicom, tmp_path / "ap.dcm", sid=("DS", "1100"), spacing=("DS", ["0.15", "0.2"]))
    options = GeometryOptions(sid_mm=1000, sod_mm=850)
    with caplog.at_level(logging.INFO):
        merged = merge_geometry(read_dicom_geometry(path), options, "AP X-ray ap.dcm")
    assert merged.values() == {"sid_mm": 1000.0, "sod_mm": 850.0, "pixel_spacing_mm": (0.15, 0.2)}
    assert merged.sources()["sid_mm"] == "option geometry.sid_mm"  # overrides the DICOM value ...
    assert merged.sources()["sod_mm"] == "option geometry.sod_mm"  # ... fills in the missing one ...
    assert merged.sources()["pixel_spacing_mm"].startswith("DICOM ImagerPixelSpacing")  # ... keeps the rest
    assert "option geometry.sid_mm = 1000.0 overrides 1100.0 from DICOM DistanceSourceToDetector" in caplog.text
    # an option and a file value that together put the source behind the detector
    with pytest.raises(ValueError, match=r"AP X-ray ap\.dcm: the source-to-patient distance 1200 mm \(option"):
        merge_geometry(read_dicom_geometry(path), GeometryOptions(sod_mm=1200), "AP X-ray ap.dcm")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sid_mm": -1}, r"geometry\.sid_mm must be a positive number"),
        ({"sod_mm": "far"}, r"geometry\.sod_mm must be a positive number"),
        ({"pixel_spacing_mm": [0.2, 0.2, 0.2]}, r"geometry\.pixel_spacing_mm must be two positive numbers"),
        ({"sid_mm": 800, "sod_mm": 800}, r"geometry options: the source-to-patient distance 800 mm"),
        ({"lateral_angle": 190}, r"geometry\.lateral_angle: lateral angle must lie strictly between 0 and 180"),
        ({"sdd_mm": 1000}, r"unknown geometry option\(s\) \['sdd_mm'\]"),
    ],
)
def test_bad_options(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GeometryOptions.from_mapping(values)


# ---------------------------------------------------------------------------------------------- matrices
def test_known_geometry_gives_projection_matrix_with_the_image_detector_and_iso_pitch() -> None:
    for view in (AP_VIEW, lateral_view(90.0), lateral_view(75.0)):
        matrix = radiograph_projection_matrix(view, known(), IMAGE_SHAPE, CUBE, SPACING)
        expected = projection_matrix(
            view,
            (CUBE,) * 3,
            SPACING,
            None,
            geometry="cone",
            sod_mm=SOD,
            detector_shape=IMAGE_SHAPE,
            detector_pitch_mm=(PIXEL[0] * SOD / SID, PIXEL[1] * SOD / SID),
        )
        np.testing.assert_allclose(matrix, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lateral", [False, True])
def test_a_point_lands_where_the_pinhole_model_puts_it_on_the_real_detector(lateral: bool) -> None:
    """Independent of the projection code: a point at (dD, dH, dW) mm from the isocentre is magnified by
    SID / (SOD + depth) onto the detector, whose pixels are PIXEL mm; normalized u = offset / (cols * pitch / 2)."""
    view = lateral_view(90.0) if lateral else AP_VIEW
    matrix = radiograph_projection_matrix(view, known(), IMAGE_SHAPE, CUBE, SPACING)
    grid = np.array([0.3, -0.2, 0.25])  # (x along W, y along H, z along D)
    d_w, d_h, d_d = grid * HALF_EXTENT_MM
    # AP: source anterior (beam +H), columns along +W; lateral 90: source on the right (beam +W), columns +H.
    depth, column_offset = (SOD + d_w, d_h) if lateral else (SOD + d_h, d_w)
    magnification = SID / depth
    u_expected = column_offset * magnification / (IMAGE_SHAPE[1] * PIXEL[1] / 2)
    v_expected = d_d * magnification / (IMAGE_SHAPE[0] * PIXEL[0] / 2)
    projected = matrix @ np.append(grid, 1.0)
    np.testing.assert_allclose(projected[:2] / projected[2], (u_expected, v_expected), rtol=1e-9)
    assert projected[2] == pytest.approx(depth / SOD)


def test_a_source_inside_the_output_grid_is_refused() -> None:
    with pytest.raises(ValueError, match=r"lat\.png: with SOD 50 mm \(test\) the source lies inside the 32\^3"):
        radiograph_projection_matrix(AP_VIEW, known(sod=50.0), IMAGE_SHAPE, CUBE, SPACING, "lat.png")


def test_crop_window_matrix_follows_the_paper_crop(synthetic_xray: Callable[..., np.ndarray]) -> None:
    """A marker planted where a point projects on the original image is found, after the paper preprocessing's
    crop, pad and resize, where the moved matrix says."""
    size = 128
    image = synthetic_xray(rows=160, cols=120).copy()
    matrix = radiograph_projection_matrix(AP_VIEW, known(pixel=(1.0, 1.0)), image.shape, CUBE, SPACING)
    projected = matrix @ np.array([0.35, 0.1, -0.3, 1.0])
    u, v = projected[:2] / projected[2]
    col, row = (u + 1) * image.shape[1] / 2 - 0.5, (v + 1) * image.shape[0] / 2 - 0.5  # pixel-centre indices
    r0, c0 = round(row), round(col)
    image[r0 - 1 : r0 + 2, c0 - 1 : c0 + 2] = 255  # a 3x3 marker inside the body
    config = PaperPreprocessConfig(output_size=size, normalization="none")
    window = paper_crop_window(image, config)
    assert window[2] < 0 or window[0] > 0  # the crop really moves the frame
    output = paper_preprocess(image, config)
    moved = crop_window_matrix(matrix, image.shape, window)
    projected = moved @ np.array([0.35, 0.1, -0.3, 1.0])
    u_new, v_new = projected[:2] / projected[2]
    expected = ((v_new + 1) * size / 2 - 0.5, (u_new + 1) * size / 2 - 0.5)
    marker = np.argwhere(output == output.max()).mean(axis=0)
    side = window[1] - window[0]
    tolerance = size / side  # one original pixel (the marker was rounded to the pixel grid)
    np.testing.assert_allclose(marker, expected, atol=tolerance)
    # the whole image as the window changes nothing
    np.testing.assert_allclose(crop_window_matrix(matrix, image.shape, (0, 160, 0, 120)), matrix, atol=1e-12)


# ---------------------------------------------------------------------------------------------- fallbacks
def test_unknown_geometry_falls_back_to_the_training_triplets_geometry(
    tiny_ray_lifting_checkpoint: Any, caplog: pytest.LogCaptureFixture
) -> None:
    training_file = tiny_ray_lifting_checkpoint.triplets / "case00" / "ct_xray_data.h5"
    planner = PredictionGeometry(GeometryOptions(sod_mm=700, lateral_angle=80), CUBE, SPACING, 90.0, training_file)
    found = (known(), RadiographGeometry())  # the AP view's file says everything, the lateral one nothing
    with caplog.at_level(logging.WARNING):
        ap, lateral = planner.views((IMAGE_SHAPE, (200, 100)), found, names=("ap.dcm", "lat.png"))
    triplet = read_triplet(training_file)
    _, expected_lateral = triplet_projection_matrices(triplet.attrs, triplet.ct_hu_plus_1024.shape, 80.0)
    np.testing.assert_allclose(lateral.matrix, expected_lateral)
    assert lateral.record["assumed"] == "training data" and lateral.record["beam"] == "cone"
    assert lateral.record["missing"] == ["sid_mm", "pixel_spacing_mm"]  # the SOD option alone is not enough
    assert "lat.png: SID, pixel spacing unknown" in caplog.text and str(training_file) in caplog.text
    # the AP view uses its own geometry, with the option's SOD over the file's
    expected_ap = radiograph_projection_matrix(AP_VIEW, known(sod=700.0), IMAGE_SHAPE, CUBE, SPACING)
    np.testing.assert_allclose(ap.matrix, expected_ap)
    assert ap.record["sources"]["sod_mm"] == "option geometry.sod_mm" and ap.record["assumed"] == "radiograph"
    record = planner.record((ap, lateral))
    assert record["lateral_angle_deg"] == 80.0 and record["lateral_angle_source"] == "option geometry.lateral_angle"
    assert record["summary"][0] == "geometry: lateral view at 80 degrees from AP [option geometry.lateral_angle]"


def test_without_training_data_the_aligned_parallel_geometry_is_used(caplog: pytest.LogCaptureFixture) -> None:
    planner = PredictionGeometry(GeometryOptions(), CUBE, SPACING, 90.0, training_file=None)
    with caplog.at_level(logging.WARNING):
        ap, lateral = planner.views(((64, 64), (64, 64)))
    np.testing.assert_allclose(ap.matrix, projection_matrix(AP_VIEW, (CUBE,) * 3, SPACING, geometry="parallel"))
    # X2CT convention: xray1 u = x, v = z; xray2 u = y, v = z (parallel: s = 1)
    np.testing.assert_allclose(ap.matrix, [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(lateral.matrix, [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], atol=1e-12)
    assert ap.record["assumed"] == lateral.record["assumed"] == "aligned default"
    assert "aligned parallel geometry of the X2CT convention (training data not reachable)" in lateral.summary
    assert "SID, SOD, pixel spacing unknown" in caplog.text
