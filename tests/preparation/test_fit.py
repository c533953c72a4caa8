"""Crop / levels / mask / resample / fit of canonical volumes, with exact affines."""

from __future__ import annotations

import numpy as np
import pytest

from x2ct.errors import CaseError
from x2ct.io.volume import Volume, canonical_affine
from x2ct.preparation.fit import (
    VolumeFitConfig,
    centred_start,
    crop_to_mask,
    fit_volume,
    mask_bounding_box,
    resample_volume,
)

_GRADIENT = np.array([3.0, 5.0, 7.0])  # HU per RAS mm: the HU of a voxel encodes its world position
_OFFSET_HU = 3000.0  # keeps the field far from the padding value


def _world(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def _field_volume(shape, spacing, labels: np.ndarray, origin=(12.0, -7.0, 30.0)) -> Volume:
    affine = canonical_affine(spacing, origin)
    hu = (_world(affine, shape) @ _GRADIENT + _OFFSET_HU).astype(np.float32)
    return Volume(hu=hu, labels=labels.astype(np.int16), spacing=spacing, affine=affine, case_id="synthetic")


def _assert_affine_exact(vol: Volume, pad_hu: float = -1000.0) -> None:
    """Every non-padded voxel holds the HU of its world position (linear interpolation of a linear field)."""
    expected = _world(vol.affine, vol.shape) @ _GRADIENT + _OFFSET_HU
    data = vol.hu != pad_hu
    assert data.sum() > 0
    np.testing.assert_allclose(vol.hu[data], expected[data], atol=0.05)


def _box_volume() -> tuple[Volume, np.ndarray]:
    """A 20 mm labelled cube at spacing (2.5, 0.8, 1.25) mm; returns the volume and the box centre (RAS)."""
    shape, spacing = (40, 60, 36), (2.5, 0.8, 1.25)
    labels = np.zeros(shape, np.int16)
    labels[6:14, 10:35, 8:24] = 20  # 8 x 2.5, 25 x 0.8, 16 x 1.25 mm = 20 mm each way
    vol = _field_volume(shape, spacing, labels)
    centre_idx = np.array([(6 + 13) / 2, (10 + 34) / 2, (8 + 23) / 2, 1.0])
    return vol, (vol.affine @ centre_idx)[:3]


def test_box_has_right_size_is_centred_and_keeps_its_world_position() -> None:
    vol, centre_ras = _box_volume()
    out = fit_volume(vol, VolumeFitConfig(margin_mm=5.0, cube=64, spacing_mm=1.0))
    assert out.shape == (64, 64, 64) and out.spacing == (1.0, 1.0, 1.0)
    assert out.hu.dtype == np.float32 and out.labels.dtype == np.int16
    low, high = mask_bounding_box(out.labels)
    extent = high - low + 1
    assert np.all(np.abs(extent - 20) <= 1), extent
    box_centre = (low + high) / 2
    assert np.all(np.abs(box_centre - 31.5) <= 1.0), box_centre
    centre_ras_after = (out.affine @ np.append(box_centre, 1.0))[:3]
    np.testing.assert_allclose(centre_ras_after, centre_ras, atol=1.0)
    _assert_affine_exact(out)
    assert np.all(out.hu[out.labels == 0][:10] == -1000.0)  # padding is air (the cube exceeds the crop)
    fit = out.meta["fit"]
    assert fit["cropped_axes"] == [] and fit["rescale_factor"] == 1.0 and fit["levels_cut"] == []
    assert fit["crop_shape"] == [8 + 2 * 2, 25 + 2 * 7, 16 + 2 * 4]  # margin 5 mm = 2, 7, 4 voxels


def test_non_cubic_cube_and_list_config_values() -> None:
    vol, _ = _box_volume()
    out = fit_volume(vol, VolumeFitConfig(cube=[48, 40, 32], spacing_mm=[1.0, 0.5, 2.0]))
    assert out.shape == (48, 40, 32) and out.spacing == (1.0, 0.5, 2.0)
    low, high = mask_bounding_box(out.labels)
    assert np.all(np.abs((high - low + 1) - np.array([20, 40, 10])) <= 1)
    _assert_affine_exact(out)


def _long_spine() -> Volume:
    """L1..L5 stacked along D, 30 voxels each at 1 mm: a 150 mm spine, longer than a 64 cube."""
    shape = (170, 40, 40)
    labels = np.zeros(shape, np.int16)
    for i, label in enumerate(range(20, 25)):
        labels[10 + 30 * i : 40 + 30 * i, 12:28, 14:26] = label
    return _field_volume(shape, (1.0, 1.0, 1.0), labels)


def test_crop_mode_centres_on_focus_levels() -> None:
    vol = _long_spine()
    out = fit_volume(vol, VolumeFitConfig(cube=64, fit_mode="crop", focus_levels=["L3"], margin_mm=4.0))
    assert out.shape == (64, 64, 64) and out.spacing == (1.0, 1.0, 1.0)
    l3_low, l3_high = mask_bounding_box(out.labels, [22])
    assert (l3_low[0] + l3_high[0]) / 2 == pytest.approx(31.5, abs=0.5)
    assert np.count_nonzero(out.labels == 22) == 30 * 16 * 12  # the focus level is complete
    fit = out.meta["fit"]
    assert fit["cropped_axes"] == ["D"]
    assert fit["levels_cut"] == ["L2", "L4"] and fit["levels_lost"] == ["L1", "L5"]
    assert fit["levels_in_output"] == ["L2", "L3", "L4"]
    _assert_affine_exact(out)


def test_crop_mode_without_focus_centres_on_the_mask() -> None:
    out = fit_volume(_long_spine(), VolumeFitConfig(cube=64, margin_mm=0.0))
    assert out.meta["fit"]["levels_in_output"] == ["L2", "L3", "L4"]
    low, high = mask_bounding_box(out.labels, [22])
    assert (low[0] + high[0]) / 2 == pytest.approx(31.5, abs=0.5)  # L3 is the middle of L1-L5


def test_rescale_mode_keeps_the_whole_spine() -> None:
    vol = _long_spine()
    margin = 4.0
    out = fit_volume(vol, VolumeFitConfig(cube=64, fit_mode="rescale", margin_mm=margin))
    fit = out.meta["fit"]
    expected_factor = (149 + 2 * margin) / (64 - 2)
    assert fit["rescale_factor"] == pytest.approx(expected_factor)
    assert out.spacing == pytest.approx((expected_factor,) * 3)
    assert fit["spacing_mm"] == pytest.approx([expected_factor] * 3)
    assert fit["levels_in_output"] == ["L1", "L2", "L3", "L4", "L5"] and fit["levels_cut"] == []
    low, high = mask_bounding_box(out.labels)
    assert low[0] >= 1 and high[0] <= 62  # the margin keeps the spine off the cube faces
    assert (low[0] + high[0]) / 2 == pytest.approx(31.5, abs=1.0)
    _assert_affine_exact(out)


def test_rescale_mode_does_nothing_when_the_spine_fits() -> None:
    vol, _ = _box_volume()
    out = fit_volume(vol, VolumeFitConfig(cube=64, fit_mode="rescale"))
    assert out.meta["fit"]["rescale_factor"] == 1.0 and out.spacing == (1.0, 1.0, 1.0)


def test_levels_filter_and_crop_follow_the_kept_levels() -> None:
    vol = _long_spine()
    out = fit_volume(vol, VolumeFitConfig(cube=96, levels="L2-L3", margin_mm=5.0))
    assert np.unique(out.labels).tolist() == [0, 21, 22]
    fit = out.meta["fit"]
    assert fit["crop_shape"][0] == 60 + 2 * 5  # L2-L3 span 60 slices, plus the margin
    assert fit["crop_start"][0] == 40 - 5  # L2 starts at slice 40 of the input
    assert fit["levels_requested"] == ["L2", "L3"] and fit["levels_in_input"] == ["L1", "L2", "L3", "L4", "L5"]
    assert np.count_nonzero(out.labels == 21) == 30 * 16 * 12
    with pytest.raises(CaseError, match=r"none of the levels \['C1', 'C2'\] is present.*'L1'"):
        fit_volume(vol, VolumeFitConfig(levels=["C1", "C2"]))


def test_mask_to_vertebrae_sets_other_voxels_to_air() -> None:
    vol = _long_spine()
    out = fit_volume(vol, VolumeFitConfig(cube=64, levels=["L3"], mask_to_vertebrae=True, margin_mm=3.0))
    assert np.all(out.hu[out.labels == 0] == -1000.0)
    assert np.all(out.hu[out.labels > 0] > 0)  # the field is > 2000 HU everywhere inside
    # L2 and L4 voxels (other levels) are masked out as well: only L3 remains, with its exact HU
    assert np.unique(out.labels).tolist() == [0, 22]
    assert np.count_nonzero(out.hu != -1000.0) == 30 * 16 * 12
    _assert_affine_exact(out)
    assert vol.hu.min() > 0  # the input was not modified


def test_resample_is_exact_on_a_linear_field() -> None:
    vol, _ = _box_volume()
    out = resample_volume(vol, (1.0, 1.0, 1.0))
    assert out.shape == (int((40 - 1) * 2.5) + 1, int((60 - 1) * 0.8) + 1, int((36 - 1) * 1.25) + 1)
    assert out.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(out.affine[:3, 3], vol.affine[:3, 3])  # the first voxel centre is kept
    _assert_affine_exact(out)
    assert set(np.unique(out.labels).tolist()) == {0, 20}  # nearest neighbour: no mixed labels


def test_crop_to_mask_clamps_the_margin_to_the_array() -> None:
    labels = np.zeros((20, 20, 20), np.int16)
    labels[0:3, 10:12, 17:20] = 5
    vol = _field_volume((20, 20, 20), (1.0, 2.0, 1.0), labels)
    cropped, start = crop_to_mask(vol, margin_mm=4.0)
    assert start.tolist() == [0, 8, 13]
    assert cropped.shape == (3 + 4, 2 + 2 * 2, 3 + 4)
    _assert_affine_exact(cropped)


def test_centred_start() -> None:
    assert centred_start(10, 19, 10) == 10
    assert centred_start(10, 18, 10) == 9
    assert centred_start(0, 149, 64) == 43


def test_errors() -> None:
    vol, _ = _box_volume()
    empty = Volume(vol.hu, np.zeros_like(vol.labels), vol.spacing, vol.affine, "empty")
    with pytest.raises(CaseError, match="'empty': empty vertebra mask"):
        fit_volume(empty, VolumeFitConfig())
    unlabelled = Volume(vol.hu, None, vol.spacing, vol.affine, "nolabels")
    with pytest.raises(CaseError, match="'nolabels': no vertebra labels"):
        fit_volume(unlabelled, VolumeFitConfig())
    with pytest.raises(CaseError, match=r"focus levels \['T12'\] are not present"):
        fit_volume(_long_spine(), VolumeFitConfig(cube=64, focus_levels="T12"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fit_mode": "squash"}, "fit_mode"),
        ({"cube": 0}, "cube"),
        ({"cube": (64, 64)}, "cube"),
        ({"spacing_mm": -1.0}, "spacing_mm"),
        ({"margin_mm": -2.0}, "margin_mm"),
        ({"levels": "L1-L2", "focus_levels": "L4"}, "focus_levels"),
        ({"levels": "L9"}, "unknown vertebra level"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VolumeFitConfig(**kwargs)


def test_fit_of_a_300_cube() -> None:
    shape = (300, 300, 300)
    labels = np.zeros(shape, np.int16)
    labels[10:290, 10:290, 10:290] = 20
    hu = np.broadcast_to(np.linspace(-1000, 1000, 300, dtype=np.float32), shape).copy()
    vol = Volume(hu, labels, (0.8, 0.7, 0.7), canonical_affine((0.8, 0.7, 0.7)), "big")
    out = fit_volume(vol, VolumeFitConfig(cube=128, spacing_mm=1.0, fit_mode="crop"))
    assert out.shape == (128, 128, 128)
    # the 10 mm margin reaches the array edges: 300 slices at 0.8 / 0.7 mm -> floor(299 * 0.8) + 1 at 1 mm, ...
    assert out.meta["fit"]["resampled_shape"] == [240, 210, 210]


def test_cropped_long_spine_stays_centred_across() -> None:
    """A bent spine longer than the cube: after cropping along D, W is centred on the mask that is kept."""
    shape = (160, 40, 100)
    labels = np.zeros(shape, np.int16)
    for d in range(10, 150):  # straight, then bending 50 voxels to the patient's left below d = 100
        w = 10 + max(d - 100, 0)
        labels[d, 15:25, w : w + 10] = 20 + min((d - 10) // 30, 4)
    vol = _field_volume(shape, (1.0, 1.0, 1.0), labels)
    out = fit_volume(vol, VolumeFitConfig(margin_mm=0.0, cube=(64, 64, 64), spacing_mm=1.0))
    low, high = mask_bounding_box(out.labels)
    assert out.meta["fit"]["cropped_axes"] == ["D"]
    assert abs((low[2] + high[2]) / 2 - 31.5) <= 1.0  # centred in W on what stayed in the cube
    _assert_affine_exact(out)
