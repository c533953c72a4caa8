"""CT / X-ray scaling to [0, 1] exactly as the official X2CT-GAN code, its inverse, and the resizing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from x2ct.data.normalization import (
    DEFAULT_CT_WINDOW_HU,
    CTWindow,
    ct_to_hu,
    hu_to_unit,
    normalize_ct,
    normalize_xray,
    resize_image,
    resize_volume,
)

OFFICIAL_CT_MAX = 2500.0  # official CT_MIN_MAX = [0, 2500] on the stored HU + 1024 scale


def test_default_window_is_official_0_2500() -> None:
    window = CTWindow.from_pair(DEFAULT_CT_WINDOW_HU)
    assert (window.stored_low, window.stored_high, window.width_hu) == (0.0, OFFICIAL_CT_MAX, OFFICIAL_CT_MAX)


def test_ct_values_and_clipping_at_both_ends() -> None:
    stored = np.array([1024.0, 0.0, 2500.0, 1250.0, -50.0, 3000.0], dtype=np.float32).reshape(1, 2, 3)
    unit = normalize_ct(stored, cube=None).numpy()
    expected = np.array([1024 / 2500, 0.0, 1.0, 0.5, 0.0, 1.0], dtype=np.float32).reshape(1, 2, 3)
    np.testing.assert_allclose(unit, expected, rtol=0, atol=1e-7)
    assert unit.dtype == np.float32


def test_custom_window() -> None:
    # HU window [-1000, 1000]: stored 24 -> 0, stored 1024 (HU 0) -> 0.5, stored 2024 -> 1
    stored = np.array([24.0, 1024.0, 2024.0, 5000.0], dtype=np.float32).reshape(1, 1, 4)
    unit = normalize_ct(stored, cube=None, window=(-1000, 1000)).numpy().ravel()
    np.testing.assert_allclose(unit, [0.0, 0.5, 1.0, 1.0], atol=1e-7)


@pytest.mark.parametrize("window", [DEFAULT_CT_WINDOW_HU, (-1000.0, 2000.0)])
def test_inverse_round_trip(window: tuple[float, float]) -> None:
    hu = np.linspace(window[0], window[1], 101, dtype=np.float64)
    np.testing.assert_allclose(ct_to_hu(hu_to_unit(hu, window), window), hu, atol=1e-9)
    # the default inverse is the official x * 2500 - 1024, for numpy and torch
    assert ct_to_hu(torch.tensor([0.0, 1024 / 2500, 1.0])).tolist() == pytest.approx([-1024.0, 0.0, 1476.0], abs=1e-3)
    assert ct_to_hu(np.array([0.5]))[0] == pytest.approx(0.5 * 2500 - 1024)


def test_hu_to_unit_matches_normalize_ct() -> None:
    hu = np.random.default_rng(0).uniform(-1500, 2500, size=(4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(hu_to_unit(hu), normalize_ct(hu + 1024, cube=None).numpy(), atol=1e-6)


def test_resize_happens_before_clipping() -> None:
    # two voxels 0 and 5000 along W; resized to 3, the middle sample is 2500 -> 1.0 (clip first would give 0.5)
    stored = np.array([0.0, 5000.0], dtype=np.float32).reshape(1, 1, 2)
    resized = resize_volume(stored, (1, 1, 3))
    np.testing.assert_allclose(resized.numpy().ravel(), [0.0, 2500.0, 5000.0])
    stored_cube = np.zeros((2, 2, 2), dtype=np.float32)
    stored_cube[:, :, 1] = 5000.0
    unit = normalize_ct(stored_cube, cube=3).numpy()
    np.testing.assert_allclose(unit[:, :, 1], 1.0)


def test_resize_volume_matches_official_scipy_zoom_order_1() -> None:
    volume = np.random.default_rng(1).uniform(0, 2500, size=(20, 24, 28)).astype(np.float32)
    target = (16, 16, 16)
    official = ndimage.zoom(volume, np.array(target) / np.array(volume.shape), order=1)
    ours = resize_volume(volume, target).numpy()
    assert ours.shape == official.shape == target
    np.testing.assert_allclose(ours, official, atol=0.05)
    # corner-aligned: the first and last voxels stay where they are
    assert ours[0, 0, 0] == pytest.approx(volume[0, 0, 0]) and ours[-1, -1, -1] == pytest.approx(volume[-1, -1, -1])


def test_resize_image_matches_official_scipy_zoom_order_1() -> None:
    image = np.random.default_rng(2).integers(0, 256, size=(20, 30)).astype(np.uint8)
    official = ndimage.zoom(image.astype(np.float32), (16 / 20, 16 / 30), order=1)
    np.testing.assert_allclose(resize_image(image, (16, 16)).numpy(), official, atol=1e-3)


def test_resize_is_identity_for_the_same_shape() -> None:
    volume = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(resize_volume(volume, (2, 3, 4)).numpy(), volume)


def test_xray_scaling_and_resize() -> None:
    image = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    np.testing.assert_allclose(normalize_xray(image, size=None).numpy(), [[0.0, 1.0], [0.2, 0.4]], atol=1e-7)
    constant = np.full((8, 8), 51, dtype=np.uint8)
    resized = normalize_xray(constant, size=4).numpy()
    assert resized.shape == (4, 4)
    np.testing.assert_allclose(resized, 0.2, atol=1e-7)


@pytest.mark.parametrize("window", [(100.0, 100.0), (200.0, -100.0), (0.0, float("inf")), (1.0, 2.0, 3.0)])
def test_bad_window_raises(window: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="window"):
        CTWindow.from_pair(window)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="D, H, W"):
        resize_volume(np.zeros((4, 4)), (2, 2, 2))
    with pytest.raises(ValueError, match="positive integers"):
        resize_volume(np.zeros((4, 4, 4)), (2, 0, 2))
    with pytest.raises(ValueError, match="2D"):
        resize_image(np.zeros((4, 4, 4)), (2, 2))
