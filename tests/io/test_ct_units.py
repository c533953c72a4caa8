"""CT value units: HU is recognised, HU + 1024 / normalised / raw padded storage is caught or converted."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from x2ct.errors import CaseError
from x2ct.io.ct_units import (
    BONE_LEVEL_MIN_HU,
    CONVERTED_FROM_HU_PLUS_1024,
    DARK_LEVEL_MAX_HU,
    HU_PLUS_1024_OFFSET,
    ct_value_stats,
    to_hu,
)

RAW_PADDING = -2000.0  # GE-style padding outside the reconstruction circle, stored without the intercept


@pytest.fixture
def spine(tiny_spine_ct: Callable[..., object]) -> tuple[np.ndarray, np.ndarray]:
    case = tiny_spine_ct()
    return case.hu, case.labels


def test_hu_ct_passes_unchanged(spine: tuple[np.ndarray, np.ndarray]) -> None:
    hu, labels = spine
    for units in ("hu", "auto"):
        out, decision, stats = to_hu(hu, labels, units, "ct.nii.gz")
        assert out is hu and decision == "hu"
        assert stats.dark_level < DARK_LEVEL_MAX_HU and stats.bone_level > BONE_LEVEL_MIN_HU


def test_stored_0_to_4095_fails_with_a_hint_and_converts_on_request(spine: tuple[np.ndarray, np.ndarray]) -> None:
    hu, labels = spine
    stored = hu + np.float32(HU_PLUS_1024_OFFSET)
    assert stored.min() > -HU_PLUS_1024_OFFSET / 2  # air near 0, as such files hold
    with pytest.raises(CaseError, match=r"ct\.nii\.gz: values are not HU: .*source\.ct_units=hu_plus_1024"):
        to_hu(stored, labels, "hu", "ct.nii.gz")
    for units in ("hu_plus_1024", "auto"):
        out, decision, _ = to_hu(stored, labels, units, "ct.nii.gz")
        assert decision == CONVERTED_FROM_HU_PLUS_1024 and out.dtype == np.float32
        np.testing.assert_allclose(out, hu, atol=1e-3)


def test_raw_data_with_negative_padding_is_not_taken_for_hu(spine: tuple[np.ndarray, np.ndarray]) -> None:
    """Raw 0..4095 values padded with -2000 outside the circle: the padding is no air."""
    hu, labels = spine
    raw = hu + np.float32(HU_PLUS_1024_OFFSET)
    raw[:, :4, :] = RAW_PADDING
    with pytest.raises(CaseError, match="padding at -2000 left out"):
        to_hu(raw, labels, "hu", "raw.nii.gz")
    out, decision, _ = to_hu(raw, labels, "auto", "raw.nii.gz")
    assert decision == CONVERTED_FROM_HU_PLUS_1024
    np.testing.assert_allclose(out[:, 4:, :], hu[:, 4:, :], atol=1e-3)


def test_hu_with_padding_below_air_passes(spine: tuple[np.ndarray, np.ndarray]) -> None:
    hu, labels = spine
    padded = hu.copy()
    padded[:, :4, :] = -3024.0
    assert to_hu(padded, labels, "hu", "ct")[1] == "hu"


def test_body_only_crop_is_judged_by_its_fat(spine: tuple[np.ndarray, np.ndarray]) -> None:
    """A CT cropped to the body has no air; its fat (-100 HU) still tells HU from HU + 1024."""
    hu, labels = spine
    body = (slice(None), slice(7, 25), slice(7, 25))  # 4 % of it is the fat rim
    cropped, cropped_labels = hu[body], labels[body]
    assert cropped.min() > -500  # no air left
    assert to_hu(cropped, cropped_labels, "hu", "crop")[1] == "hu"
    with pytest.raises(CaseError, match="not HU"):
        to_hu(cropped + np.float32(HU_PLUS_1024_OFFSET), cropped_labels, "hu", "crop")
    assert to_hu(cropped + np.float32(HU_PLUS_1024_OFFSET), cropped_labels, "auto", "crop")[1] == (
        CONVERTED_FROM_HU_PLUS_1024
    )


def test_normalised_values_fail_in_every_checked_mode(spine: tuple[np.ndarray, np.ndarray]) -> None:
    hu, labels = spine
    scaled = np.clip((hu + 1024) / 4095, 0, 1).astype(np.float32)
    with pytest.raises(CaseError, match="look normalised"):
        to_hu(scaled, labels, "hu", "n.nii.gz")
    with pytest.raises(CaseError, match="neither HU nor HU \\+ 1024"):
        to_hu(scaled, labels, "auto", "n.nii.gz")
    with pytest.raises(CaseError, match="after subtracting 1024"):
        to_hu(scaled, labels, "hu_plus_1024", "n.nii.gz")


def test_forced_conversion_of_a_hu_ct_fails(spine: tuple[np.ndarray, np.ndarray]) -> None:
    hu, labels = spine
    with pytest.raises(CaseError, match=r"covers no bone.*already in HU \(source\.ct_units=hu\)"):
        to_hu(hu, labels, "hu_plus_1024", "ct")


def test_mask_on_soft_tissue_fails_as_a_mask_problem(spine: tuple[np.ndarray, np.ndarray]) -> None:
    """A mask of another scan on the same grid: it lies on soft tissue, not bone."""
    hu, labels = spine
    shifted = np.roll(labels, 8, axis=2)
    assert ct_value_stats(hu, shifted).bone_level < BONE_LEVEL_MIN_HU
    with pytest.raises(CaseError, match=r"vertebra mask covers no bone.*hu_unchecked skips this check"):
        to_hu(hu, shifted, "hu", "ct")
    with pytest.raises(CaseError, match="covers no bone"):
        to_hu(hu, shifted, "auto", "ct")


def test_unchecked_keeps_anything_and_unknown_units_are_refused(spine: tuple[np.ndarray, np.ndarray]) -> None:
    hu, labels = spine
    stored = hu + np.float32(HU_PLUS_1024_OFFSET)
    out, decision, stats = to_hu(stored, labels, "hu_unchecked", "ct")
    assert out is stored and decision == "hu_unchecked" and stats is None
    with pytest.raises(ValueError, match="ct_units must be one of"):
        to_hu(hu, labels, "HU", "ct")
