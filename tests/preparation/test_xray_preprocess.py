"""The paper's contour-crop preprocessing and the aligned resize, on a synthetic radiograph."""

from __future__ import annotations

import numpy as np
import pytest

from x2ct.errors import CaseError
from x2ct.preparation.xray_preprocess import (
    PaperPreprocessConfig,
    XrayPreprocessError,
    foreground_mask,
    largest_contour_box,
    pad_to_square,
    paper_preprocess,
    resize_xray,
    to_uint8,
)

ROWS, COLS = 96, 120
BAND_ROWS = (10, 86)  # the spine-like band, end-exclusive, offset to the right of the field
BAND_COLS = (70, 90)
BACKGROUND = 0.05
BAND_LOW, BAND_HIGH = 0.6, 0.8  # the band brightens from top to bottom
SPECKLES = ((20, 10), (60, 30), (80, 110))  # top-left corners of 2x2 bright specks in the dark field


def synthetic_radiograph(seed: int = 0) -> np.ndarray:
    """float32 (ROWS, COLS) in [0, 1]: dark noisy field, a bright vertical band, a few 2x2 bright specks."""
    rng = np.random.default_rng(seed)
    image = BACKGROUND + rng.uniform(-0.03, 0.03, size=(ROWS, COLS))
    band_height = BAND_ROWS[1] - BAND_ROWS[0]
    gradient = np.linspace(BAND_LOW, BAND_HIGH, band_height)[:, None]
    image[BAND_ROWS[0] : BAND_ROWS[1], BAND_COLS[0] : BAND_COLS[1]] = gradient
    for row, col in SPECKLES:
        image[row : row + 2, col : col + 2] = 1.0
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def bright_columns(output: np.ndarray, level: int = 100) -> np.ndarray:
    """Indices of the output columns whose mean grey level exceeds ``level``."""
    return np.flatnonzero(output.mean(axis=0) > level)


def test_output_is_square_uint8_with_full_range() -> None:
    output = paper_preprocess(synthetic_radiograph())
    assert output.shape == (128, 128) and output.dtype == np.uint8
    assert output.min() == 0 and output.max() == 255


def test_band_is_centred_after_crop_and_pad() -> None:
    output = paper_preprocess(synthetic_radiograph())
    columns = bright_columns(output)
    # crop 76 x 20 -> padded to 76 x 76 -> band 20/76 of 128 = 33.7 px, centred on 63.5
    assert columns.mean() == pytest.approx(63.5, abs=1.0)
    assert len(columns) == pytest.approx(20 / 76 * 128, abs=2)
    assert np.all(output[:, :40] == 0) and np.all(output[:, -40:] == 0)  # black padding, no background crop
    # the band fills the height; min-max maps its dim top to 0, its bright bottom to 255, the middle to ~127
    centre_column = output[:, 64].astype(int)
    assert centre_column[0] == 0 and centre_column[-1] == 255
    assert centre_column[64] == pytest.approx(127, abs=4) and np.all(np.diff(centre_column) >= 0)


def test_crop_box_is_the_band() -> None:
    gray = to_uint8(synthetic_radiograph())
    assert largest_contour_box(foreground_mask(gray, PaperPreprocessConfig())) == (*BAND_ROWS, *BAND_COLS)


def test_opening_removes_specks() -> None:
    gray = to_uint8(synthetic_radiograph())
    with_opening = foreground_mask(gray, PaperPreprocessConfig())
    without_opening = foreground_mask(gray, PaperPreprocessConfig(open_iterations=0))
    for row, col in SPECKLES:
        assert with_opening[row, col] == 0
        assert without_opening[row, col] == 255


def test_opening_cuts_a_thin_wire_off_the_crop() -> None:
    image = synthetic_radiograph()
    image[40, BAND_COLS[1] :] = 0.9  # a 1-px bright wire from the band to the right border
    assert bright_columns(paper_preprocess(image)).mean() == pytest.approx(63.5, abs=1.0)
    gray = to_uint8(image)
    box = largest_contour_box(foreground_mask(gray, PaperPreprocessConfig(open_iterations=0)))
    assert box[3] == COLS  # without the opening, the wire drags the crop to the border


def test_closing_fills_a_gap_inside_the_band() -> None:
    image = synthetic_radiograph()
    image[50, BAND_COLS[0] : BAND_COLS[1]] = BACKGROUND  # a 1-px dark line splits the band in two
    gray = to_uint8(image)
    closed = largest_contour_box(foreground_mask(gray, PaperPreprocessConfig()))
    not_closed = largest_contour_box(foreground_mask(gray, PaperPreprocessConfig(close_iterations=0)))
    assert closed[:2] == BAND_ROWS
    assert not_closed[:2] == (10, 50)  # the upper half (40 rows) beats the lower half (35 rows)


def test_kernel_shape_and_size_change_what_survives_the_opening() -> None:
    gray = np.zeros((32, 32), np.uint8)
    gray[10:13, 10:13] = 255  # one 3x3 square
    rect = foreground_mask(gray, PaperPreprocessConfig(kernel_shape="rect", kernel_size=3, close_iterations=0))
    cross = foreground_mask(gray, PaperPreprocessConfig(kernel_shape="cross", kernel_size=3, close_iterations=0))
    bigger = foreground_mask(gray, PaperPreprocessConfig(kernel_shape="rect", kernel_size=5, close_iterations=0))
    assert np.count_nonzero(rect) == 9  # the square fits the 3x3 square kernel
    assert np.count_nonzero(cross) == 5  # only a cross survives the cross kernel
    assert np.count_nonzero(bigger) == 0  # too small for a 5x5 kernel


def test_fixed_threshold() -> None:
    image = synthetic_radiograph()
    gray = to_uint8(image)
    above_band = PaperPreprocessConfig(threshold_method="fixed", threshold_value=128)
    assert largest_contour_box(foreground_mask(gray, above_band)) == (*BAND_ROWS, *BAND_COLS)
    below_background = PaperPreprocessConfig(threshold_method="fixed", threshold_value=0)
    assert largest_contour_box(foreground_mask(gray, below_background)) == (0, ROWS, 0, COLS)
    with pytest.raises(XrayPreprocessError, match="no bright structure"):
        paper_preprocess(image, PaperPreprocessConfig(threshold_method="fixed", threshold_value=254))


def test_margin_widens_the_crop() -> None:
    output = paper_preprocess(synthetic_radiograph(), PaperPreprocessConfig(margin=10))
    # crop rows 0:96 (clipped), cols 60:100 -> 96 x 96 square, band 20/96 of 128 = 26.7 px
    assert len(bright_columns(output)) == pytest.approx(20 / 96 * 128, abs=2)
    # rows 0:10 above the band are now in the crop: dim background, not black padding
    assert 0 < output[:5, 54:74].mean() < 40


def test_normalization_none_keeps_grey_levels() -> None:
    output = paper_preprocess(synthetic_radiograph(), PaperPreprocessConfig(normalization="none"))
    assert output.max() == pytest.approx(round(BAND_HIGH * 255), abs=2)
    assert output[:, 64].min() == pytest.approx(round(BAND_LOW * 255), abs=3)


def test_pad_value_and_output_size() -> None:
    output = paper_preprocess(synthetic_radiograph(), PaperPreprocessConfig(pad_value=255, output_size=64))
    assert output.shape == (64, 64)
    assert np.all(output[:, :15] == 255) and np.all(output[:, -15:] == 255)


def test_interpolation_nearest_only_copies_pixels() -> None:
    image = synthetic_radiograph()
    nearest = paper_preprocess(image, PaperPreprocessConfig(interpolation="nearest"))
    area = paper_preprocess(image, PaperPreprocessConfig(interpolation="area"))
    assert not np.array_equal(nearest, area)
    assert set(np.unique(nearest)) <= set(np.unique(paper_preprocess(image, PaperPreprocessConfig(output_size=76))))


def test_pad_to_square_centres_the_short_side() -> None:
    padded = pad_to_square(np.full((4, 7), 9, np.uint8), pad_value=1)
    assert padded.shape == (7, 7)
    assert np.all(padded[1:5] == 9) and np.all(padded[0] == 1) and np.all(padded[5:] == 1)


def test_uint8_and_float_inputs_agree() -> None:
    image = synthetic_radiograph()
    np.testing.assert_array_equal(paper_preprocess(image), paper_preprocess(to_uint8(image)))


def test_errors() -> None:
    with pytest.raises(XrayPreprocessError, match="blank"):
        paper_preprocess(np.full((32, 32), 0.5, np.float32))
    with pytest.raises(XrayPreprocessError, match=r"\[0, 1\]"):
        paper_preprocess(synthetic_radiograph() * 2)
    with pytest.raises(XrayPreprocessError, match="2D"):
        paper_preprocess(np.zeros((4, 32, 32), np.float32))
    with pytest.raises(XrayPreprocessError, match="dtype"):
        paper_preprocess(np.zeros((32, 32), np.int32))
    square = np.zeros((32, 32), np.uint8)
    square[8:24, 8:24] = 200  # a uniform block: the crop is constant, min-max cannot stretch it
    with pytest.raises(XrayPreprocessError, match="constant") as info:
        paper_preprocess(square)
    assert isinstance(info.value, CaseError)
    assert paper_preprocess(square, PaperPreprocessConfig(normalization="none")).max() == 200


@pytest.mark.parametrize(
    "bad",
    [
        {"output_size": 0},
        {"threshold_method": "mean"},
        {"threshold_value": 300},
        {"kernel_shape": "disk"},
        {"kernel_size": 0},
        {"open_iterations": -1},
        {"close_iterations": -1},
        {"margin": -2},
        {"normalization": "zscore"},
        {"pad_value": -1},
        {"interpolation": "bilinear"},
    ],
)
def test_config_validation(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        PaperPreprocessConfig(**bad)


def test_resize_xray_keeps_the_whole_field() -> None:
    image = np.zeros((64, 64), np.float32)
    image[:32, :32] = 1.0  # bright top-left quadrant
    output = resize_xray(image, 32)
    assert output.shape == (32, 32) and output.dtype == np.uint8
    assert np.all(output[:16, :16] == 255) and np.all(output[16:, :] == 0) and np.all(output[:, 16:] == 0)
    stretched = resize_xray(np.zeros((20, 40), np.uint8), 16)
    assert stretched.shape == (16, 16)
    same = to_uint8(image)
    assert np.array_equal(resize_xray(same, 64), same)
    with pytest.raises(ValueError, match="size"):
        resize_xray(image, 0)
