"""Modern metrics: true-peak PSNR, MAE in HU, 3D SSIM, bone Dice, HD95 and ASSD in mm."""

from __future__ import annotations

import math

import numpy as np
import pytest

from x2ct.metrics import MODERN_METRIC_NAMES, dice, modern_metrics, surface_distances
from x2ct.metrics.modern import mask_surface

SHAPE = (24, 28, 32)
WINDOW_LOW, WINDOW_HIGH = -1024.0, 1476.0
ANISOTROPIC_SPACING = (2.0, 0.5, 1.25)


def to_unit(hu: np.ndarray) -> np.ndarray:
    return ((hu - WINDOW_LOW) / (WINDOW_HIGH - WINDOW_LOW)).astype(np.float32)


def box_volume(
    start: tuple[int, int, int], size: tuple[int, int, int], shape: tuple[int, int, int] = SHAPE
) -> np.ndarray:
    """Soft tissue (0 HU) with a bone box (1000 HU) in [0, 1] units."""
    hu = np.zeros(shape)
    hu[tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))] = 1000.0
    return to_unit(hu)


def box_mask(start: tuple[int, int, int], size: tuple[int, int, int]) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))] = True
    return mask


def test_identical_volumes() -> None:
    real = box_volume((4, 5, 6), (10, 8, 12))
    metrics = modern_metrics(real, real.copy(), spacing_mm=ANISOTROPIC_SPACING)
    assert list(metrics) == list(MODERN_METRIC_NAMES)
    assert metrics["PSNR-true"] == 100.0
    assert metrics["MAE-HU"] == 0.0
    # torchmetrics works in float32: variance cancellation in flat regions costs a few 1e-5
    assert metrics["SSIM-3D-gauss"] == pytest.approx(1.0, abs=1e-4)
    assert metrics["Dice-bone"] == 1.0
    assert metrics["HD95-mm"] == 0.0
    assert metrics["ASSD-mm"] == 0.0


def test_constant_offset_gives_true_psnr_and_hu_error() -> None:
    real = box_volume((4, 5, 6), (10, 8, 12)) * np.float32(0.5)
    metrics = modern_metrics(real, real + np.float32(0.1))
    assert metrics["PSNR-true"] == pytest.approx(20.0, abs=1e-5)  # 10 log10(1 / 0.01)
    assert metrics["MAE-HU"] == pytest.approx(250.0, abs=1e-3)  # 0.1 of a 2500 HU window
    narrow = modern_metrics(real, real + np.float32(0.1), ct_window_hu=(-1000.0, 1000.0))
    assert narrow["MAE-HU"] == pytest.approx(200.0, abs=1e-3)
    assert metrics["SSIM-3D-gauss"] < 1.0


def test_dice_of_two_known_boxes() -> None:
    real = box_volume((4, 5, 6), (10, 10, 10))
    fake = box_volume((6, 5, 6), (10, 10, 10))  # overlap 8 x 10 x 10
    assert modern_metrics(real, fake)["Dice-bone"] == pytest.approx(2 * 800 / 2000)
    assert dice(box_mask((0, 0, 0), (2, 2, 2)), box_mask((0, 0, 0), (2, 2, 4))) == pytest.approx(16 / 24)
    assert dice(box_mask((0, 0, 0), (2, 2, 2)), np.zeros(SHAPE, bool)) == 0.0
    assert math.isnan(dice(np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)))


def test_bone_threshold_is_a_parameter() -> None:
    hu = np.zeros(SHAPE)
    hu[4:14, 5:15, 6:16] = 1000.0
    hu[4:14, 5:15, 16:20] = 300.0  # bone at 250 HU, not at 500 HU
    real, fake = to_unit(hu), box_volume((4, 5, 6), (10, 10, 10))
    assert modern_metrics(real, fake, bone_threshold_hu=250.0)["Dice-bone"] == pytest.approx(2 * 1000 / 2400)
    assert modern_metrics(real, fake, bone_threshold_hu=500.0)["Dice-bone"] == 1.0


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("offset", [1, 3])
def test_hd95_and_assd_of_offset_plates_equal_offset_times_spacing(axis: int, offset: int) -> None:
    """Two one-voxel-thick plates offset by k voxels along their normal: every surface distance is k * spacing."""
    size = [12, 12, 12]
    size[axis] = 1
    start = [6, 6, 6]
    shifted = list(start)
    shifted[axis] += offset
    real = box_volume(tuple(start), tuple(size))
    fake = box_volume(tuple(shifted), tuple(size))
    metrics = modern_metrics(real, fake, spacing_mm=ANISOTROPIC_SPACING)
    expected = offset * ANISOTROPIC_SPACING[axis]
    assert metrics["HD95-mm"] == pytest.approx(expected)
    assert metrics["ASSD-mm"] == pytest.approx(expected)
    assert metrics["Dice-bone"] == 0.0


def test_thick_boxes_offset_by_k_voxels_bound_the_distances() -> None:
    """Solid boxes shifted by k along D: the farthest surface voxel is k * sd away, most are nearer."""
    real, fake = box_mask((4, 5, 6), (10, 10, 10)), box_mask((6, 5, 6), (10, 10, 10))
    hd95, assd = surface_distances(real, fake, ANISOTROPIC_SPACING)
    assert 0.0 < assd < hd95 <= 2 * ANISOTROPIC_SPACING[0]
    # the exact values: a brute-force nearest-surface-voxel search over all pairs
    surface_real, surface_fake = np.argwhere(mask_surface(real)), np.argwhere(mask_surface(fake))
    scale = np.asarray(ANISOTROPIC_SPACING)
    pairwise = np.linalg.norm((surface_real[:, None] - surface_fake[None]) * scale, axis=2)
    real_to_fake, fake_to_real = pairwise.min(axis=1), pairwise.min(axis=0)
    expected_hd95 = max(np.percentile(real_to_fake, 95), np.percentile(fake_to_real, 95))
    expected_assd = np.concatenate([real_to_fake, fake_to_real]).mean()
    assert hd95 == pytest.approx(expected_hd95)
    assert assd == pytest.approx(expected_assd)


def test_surface_includes_the_volume_border() -> None:
    full = np.ones((5, 5, 5), dtype=bool)
    surface = mask_surface(full)
    assert surface.sum() == 5**3 - 3**3
    assert not surface[2, 2, 2]


def test_an_empty_bone_mask_gives_nan_distances() -> None:
    real = box_volume((4, 5, 6), (10, 10, 10))
    no_bone = to_unit(np.zeros(SHAPE))
    metrics = modern_metrics(real, no_bone)
    assert metrics["Dice-bone"] == 0.0
    assert math.isnan(metrics["HD95-mm"])
    assert math.isnan(metrics["ASSD-mm"])
    both_empty = modern_metrics(no_bone + np.float32(0.01), no_bone)
    assert math.isnan(both_empty["Dice-bone"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spacing_mm": (1.0, 0.0, 1.0)}, "spacing_mm"),
        ({"spacing_mm": (1.0, 1.0)}, "spacing_mm"),
        ({"ct_window_hu": (100.0, -100.0)}, "ct_window_hu"),
        ({"bone_threshold_hu": math.nan}, "bone_threshold_hu"),
    ],
)
def test_bad_parameters_raise(kwargs: dict, message: str) -> None:
    real = box_volume((4, 5, 6), (10, 10, 10))
    with pytest.raises(ValueError, match=message):
        modern_metrics(real, real, **kwargs)


def test_bad_volumes_raise() -> None:
    real = box_volume((4, 5, 6), (10, 10, 10))
    with pytest.raises(ValueError, match="differ in shape"):
        modern_metrics(real, real[:-1])
    with pytest.raises(ValueError, match="too small"):
        modern_metrics(real[:8], real[:8])
    with pytest.raises(ValueError, match="NaN or inf"):
        modern_metrics(real, real * np.float32(np.nan))
    with pytest.raises(ValueError, match=r"\(D, H, W\)"):
        modern_metrics(real[None], real[None])
    with pytest.raises(ValueError, match="masks differ in shape"):
        surface_distances(np.ones((3, 3, 3), bool), np.ones((3, 3, 4), bool), (1.0, 1.0, 1.0))
