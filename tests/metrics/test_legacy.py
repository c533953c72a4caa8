"""Legacy X2CT metrics: exact values, the torch SSIM against scikit-image, batching, errors, dataset rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from x2ct.metrics import (
    LEGACY_METRIC_NAMES,
    legacy_dataset_means,
    legacy_x2ct_metrics,
    legacy_x2ct_metrics_batch,
    official_rule_keeps,
    ssim_slice_means,
)
from x2ct.metrics.legacy import legacy_integer_volume
from x2ct.metrics.legacy_reference import legacy_x2ct_metrics_reference

SSIM_TOLERANCE = 1e-6
REFERENCE_TOLERANCE = 1e-9


def random_pair(shape: tuple[int, ...], seed: int, noise: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.random(shape).astype(np.float32)
    fake = (real + noise * rng.standard_normal(shape)).astype(np.float32)  # partly outside [0, 1]: clamped
    return real, fake


def structured_pair(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth blobs plus a sharp-edged box (a crude vertebra) and a blurred, shifted prediction."""
    rng = np.random.default_rng(seed)
    real = gaussian_filter(rng.random(shape), sigma=2.0)
    real = (real - real.min()) / (real.max() - real.min()) * 0.4
    d, h, w = shape
    real[d // 4 : 3 * d // 4, h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] = 0.9
    fake = np.roll(gaussian_filter(real, sigma=1.0), shift=1, axis=1) + 0.02 * rng.standard_normal(shape)
    return real.astype(np.float32), fake.astype(np.float32)


def skimage_slice_mean(real: np.ndarray, fake: np.ndarray, axis: int) -> float:
    real64 = np.moveaxis(real.astype(np.float64), axis, 0)
    fake64 = np.moveaxis(np.clip(fake, 0, 1).astype(np.float64), axis, 0)
    return float(np.mean([structural_similarity(r, f, data_range=1.0) for r, f in zip(real64, fake64, strict=True)]))


def two_level_volume(shape: tuple[int, int, int] = (16, 16, 16)) -> np.ndarray:
    real = np.zeros(shape, dtype=np.float32)
    real[:, :, shape[2] // 2 :] = 0.5
    return real


# ------------------------------------------------------------------------------------------ exact values


def test_constant_offset_gives_hand_computed_values() -> None:
    real = two_level_volume()
    fake = real + np.float32(0.1)  # int scale: 0 -> 250 and 1250 -> 1500, a difference of 250 everywhere
    metrics = legacy_x2ct_metrics(real, fake)
    assert list(metrics) == list(LEGACY_METRIC_NAMES)
    assert metrics["MAE0"] == pytest.approx(0.1, abs=1e-6)
    assert metrics["MSE0"] == pytest.approx(0.01, abs=1e-6)
    assert metrics["MAE"] == 250.0
    assert metrics["MSE"] == 62500.0
    expected_psnr = 20 * math.log10(4095 / 250)
    for name in ("PSNR-3D", "PSNR-1", "PSNR-2", "PSNR-3", "PSNR-avg"):
        assert metrics[name] == pytest.approx(expected_psnr, abs=1e-12), name
    # cosine: <R, R + 0.1> / (|R + 0.1| |R|) with half the voxels 0 and half 0.5 (fake 0.1 and 0.6)
    expected_cosine = 0.3 / (0.5 * math.sqrt(0.37))
    assert metrics["CosineSimilarity"] == pytest.approx(expected_cosine, abs=1e-6)


def test_identical_volumes_give_100_db_and_ssim_one() -> None:
    real, _ = structured_pair((16, 20, 24), seed=1)
    metrics = legacy_x2ct_metrics(real, real.copy())
    for name in ("MAE0", "MSE0", "MAE", "MSE"):
        assert metrics[name] == 0.0
    for name in ("PSNR-3D", "PSNR-1", "PSNR-2", "PSNR-3", "PSNR-avg"):
        assert metrics[name] == 100.0
    for name in ("SSIM-1", "SSIM-2", "SSIM-3", "SSIM-avg"):
        assert metrics[name] == pytest.approx(1.0, abs=1e-12)
    assert metrics["CosineSimilarity"] == pytest.approx(1.0, abs=1e-12)


def test_integer_scale_truncates_and_only_some_slices_can_be_perfect() -> None:
    real = two_level_volume()
    fake = real.copy()
    fake[0] += np.float32(0.9 / 2500)  # 0.9 on the int scale: truncated away
    fake[1] += np.float32(1.9 / 2500)  # 1.9: truncated to 1 in the slice D = 1
    metrics = legacy_x2ct_metrics(real, fake)
    assert metrics["MAE0"] > 0
    n_slices = real.shape[0]
    assert metrics["MAE"] == pytest.approx(1 / n_slices)  # one slice of 16 differs by 1
    assert metrics["PSNR-3D"] == pytest.approx(20 * math.log10(4095 / math.sqrt(1 / n_slices)))
    # along D: 15 perfect slices (100 dB) and one with MSE 1; along H and W every slice has MSE 1/16
    assert metrics["PSNR-1"] == pytest.approx((15 * 100 + 20 * math.log10(4095)) / n_slices)
    assert metrics["PSNR-2"] == pytest.approx(20 * math.log10(4095 / math.sqrt(1 / n_slices)))


def test_integer_scale_uses_the_float32_product_of_the_official_script() -> None:
    grid = (np.arange(2501, dtype=np.float32) / np.float32(2500)).astype(np.float32)
    official = (grid * np.float32(2500)).astype(np.int32)
    ours = legacy_integer_volume(torch.from_numpy(grid)).numpy()
    np.testing.assert_array_equal(ours, official)
    # float64 scaling would truncate many exact grid values k / 2500 to k - 1: the choice matters
    assert ((grid.astype(np.float64) * 2500).astype(np.int32) != official).mean() > 0.3
    # float64 input is scaled in float32 too
    ours64 = legacy_integer_volume(torch.from_numpy(grid.astype(np.float64))).numpy()
    np.testing.assert_array_equal(ours64, official)


def test_fake_is_clamped_to_unit_range() -> None:
    real = two_level_volume()
    over = legacy_x2ct_metrics(real, real + 5.0)
    at_one = legacy_x2ct_metrics(real, np.ones_like(real))
    assert over == at_one
    assert at_one["MAE"] == pytest.approx((2500 + 1250) / 2)


def test_consistency_check_of_the_paper_mae_over_2500_is_mae0() -> None:
    real, fake = structured_pair((24, 32, 40), seed=3)
    metrics = legacy_x2ct_metrics(real, fake)
    assert abs(metrics["MAE"] / 2500 - metrics["MAE0"]) <= 1 / 2500  # truncation moves each voxel by < 1
    assert metrics["MSE"] / 2500**2 == pytest.approx(metrics["MSE0"], rel=0.02)


# ------------------------------------------------------------------------------ SSIM against scikit-image


@pytest.mark.parametrize("shape", [(7, 7, 7), (16, 16, 16), (24, 32, 40), (40, 9, 17)])
@pytest.mark.parametrize("kind", ["random", "structured"])
def test_torch_ssim_matches_the_skimage_slice_loop_on_every_axis(shape: tuple[int, int, int], kind: str) -> None:
    real, fake = random_pair(shape, seed=sum(shape)) if kind == "random" else structured_pair(shape, seed=sum(shape))
    metrics = legacy_x2ct_metrics(real, fake)
    for axis, name in enumerate(("SSIM-1", "SSIM-2", "SSIM-3")):
        assert metrics[name] == pytest.approx(skimage_slice_mean(real, fake, axis), abs=SSIM_TOLERANCE), name


def test_ssim_slice_means_of_a_batch_match_per_volume_skimage() -> None:
    volumes = [random_pair((12, 14, 16), seed=seed) for seed in range(3)]
    x = torch.from_numpy(np.stack([v[0] for v in volumes])).double()
    y = torch.from_numpy(np.stack([np.clip(v[1], 0, 1) for v in volumes])).double()
    ssim = ssim_slice_means(x, y)
    assert ssim.shape == (3, 3)
    for n, (real, fake) in enumerate(volumes):
        for axis in range(3):
            assert ssim[n, axis].item() == pytest.approx(skimage_slice_mean(real, fake, axis), abs=1e-10)


@pytest.mark.parametrize("chunk_slices", [1, 3, 5, 8, 100])
def test_chunking_along_d_does_not_change_ssim(chunk_slices: int) -> None:
    real, fake = structured_pair((17, 12, 9), seed=21)
    x = torch.from_numpy(real).double()[None]
    y = torch.from_numpy(np.clip(fake, 0, 1)).double()[None]
    whole = ssim_slice_means(x, y, chunk_slices=17)
    assert torch.allclose(ssim_slice_means(x, y, chunk_slices=chunk_slices), whole, rtol=0, atol=1e-13)
    for axis in range(3):
        assert whole[0, axis].item() == pytest.approx(skimage_slice_mean(real, fake, axis), abs=1e-12)


def test_ssim_slice_means_rejects_bad_arguments() -> None:
    x = torch.rand(1, 8, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="chunk_slices"):
        ssim_slice_means(x, x, chunk_slices=0)
    with pytest.raises(ValueError, match="odd"):
        ssim_slice_means(x, x, win_size=4)
    with pytest.raises(ValueError, match="equal shape"):
        ssim_slice_means(x, x[:, :7])


def test_ssim1_is_the_mean_of_per_slice_values() -> None:
    """A change in the fake volume of one slice along D changes SSIM-1 by 1/D of that slice's drop only."""
    real, _ = structured_pair((16, 16, 16), seed=5)
    fake = real.copy()
    fake[3] = 0.0
    metrics = legacy_x2ct_metrics(real, fake)
    slice_ssim = structural_similarity(real[3].astype(np.float64), fake[3].astype(np.float64), data_range=1.0)
    assert metrics["SSIM-1"] == pytest.approx((15 + slice_ssim) / 16, abs=1e-12)


# --------------------------------------------------------------------------- reference and batching


@pytest.mark.parametrize("shape", [(24, 32, 40), (16, 16, 16)])
def test_all_metrics_match_the_numpy_skimage_reference(shape: tuple[int, int, int]) -> None:
    real, fake = structured_pair(shape, seed=7)
    ours = legacy_x2ct_metrics(real, fake)
    reference = legacy_x2ct_metrics_reference(real, fake)
    for name in LEGACY_METRIC_NAMES:
        assert ours[name] == pytest.approx(reference[name], rel=REFERENCE_TOLERANCE, abs=REFERENCE_TOLERANCE), name


def test_batched_equals_per_volume() -> None:
    pairs = [random_pair((10, 12, 14), seed=s) for s in range(2)] + [structured_pair((10, 12, 14), seed=9)]
    real = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
    fake = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None]
    batch = legacy_x2ct_metrics_batch(real, fake)
    assert list(batch) == list(LEGACY_METRIC_NAMES)
    for n, (r, f) in enumerate(pairs):
        single = legacy_x2ct_metrics(r, f)
        for name in LEGACY_METRIC_NAMES:
            assert batch[name].shape == (3,)
            assert batch[name][n].item() == pytest.approx(single[name], abs=1e-12), name


def test_numpy_torch_and_float64_inputs_agree() -> None:
    real, fake = structured_pair((12, 12, 12), seed=11)
    from_numpy = legacy_x2ct_metrics(real, fake)
    from_torch = legacy_x2ct_metrics(torch.from_numpy(real), torch.from_numpy(fake))
    from_float64 = legacy_x2ct_metrics(real.astype(np.float64), fake.astype(np.float64))
    assert from_numpy == from_torch
    for name in LEGACY_METRIC_NAMES:
        assert from_float64[name] == pytest.approx(from_numpy[name], abs=1e-9)


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    real, fake = structured_pair((24, 32, 40), seed=13)
    cpu = legacy_x2ct_metrics(real, fake)
    cuda = legacy_x2ct_metrics(real, fake, device="cuda")
    batch = legacy_x2ct_metrics_batch(
        torch.from_numpy(real)[None, None].cuda(), torch.from_numpy(fake)[None, None].cuda()
    )
    assert batch["SSIM-avg"].device.type == "cuda"
    for name in LEGACY_METRIC_NAMES:
        assert cuda[name] == pytest.approx(cpu[name], abs=1e-9), name


# --------------------------------------------------------------------------------------------- errors


def test_all_zero_fake_has_nan_cosine_and_the_dataset_rule_skips_it() -> None:
    real = two_level_volume()
    metrics = legacy_x2ct_metrics(real, np.zeros_like(real) - 1.0)  # clamped to all zero
    assert math.isnan(metrics["CosineSimilarity"])
    assert metrics["MAE"] == pytest.approx(625.0)
    assert not official_rule_keeps(metrics)


@pytest.mark.parametrize(
    ("real", "fake", "message"),
    [
        (np.zeros((8, 8, 8), np.float32), np.zeros((8, 8, 9), np.float32), "differ in shape"),
        (np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32), r"\(D, H, W\)"),
        (np.zeros((1, 1, 8, 8, 8), np.float32), np.zeros((1, 1, 8, 8, 8), np.float32), "legacy_x2ct_metrics_batch"),
        (np.zeros((0, 8, 8), np.float32), np.zeros((0, 8, 8), np.float32), "empty volume"),
        (np.zeros((8, 8, 8), np.float32), np.zeros((8, 8, 8), np.float32), "constant"),
        (np.full((8, 8, 8), 0.5, np.float32), np.zeros((8, 8, 8), np.float32), "constant"),
        (np.zeros((8, 8, 8), np.int32), np.zeros((8, 8, 8), np.int32), "floating-point"),
        ([[0.0]], [[0.0]], "numpy array or a torch tensor"),
    ],
)
def test_bad_input_raises_a_clear_error(real: object, fake: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        legacy_x2ct_metrics(real, fake)  # type: ignore[arg-type]


def test_nan_inf_out_of_range_and_too_small_inputs_raise() -> None:
    real = two_level_volume((8, 8, 8))
    bad_fake = real.copy()
    bad_fake[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="fake volume contains NaN or inf"):
        legacy_x2ct_metrics(real, bad_fake)
    bad_real = real.copy()
    bad_real[1, 1, 1] = np.inf
    with pytest.raises(ValueError, match="real volume contains NaN or inf"):
        legacy_x2ct_metrics(bad_real, real)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        legacy_x2ct_metrics(real + 0.6, real)
    small = two_level_volume((8, 6, 8))
    with pytest.raises(ValueError, match="too small"):
        legacy_x2ct_metrics(small, small)


def test_batch_needs_5d_single_channel() -> None:
    real = torch.from_numpy(two_level_volume((8, 8, 8)))
    with pytest.raises(ValueError, match=r"\(N, 1, D, H, W\)"):
        legacy_x2ct_metrics_batch(real, real)
    two_channels = real[None].expand(2, 8, 8, 8)[None]
    with pytest.raises(ValueError, match="one channel"):
        legacy_x2ct_metrics_batch(two_channels, two_channels)


# -------------------------------------------------------------------------------------- dataset rule


def test_dataset_means_skip_nan_and_above_one_cosines() -> None:
    base = dict.fromkeys(LEGACY_METRIC_NAMES, 1.0)
    rows = [
        base | {"MAE": 10.0, "CosineSimilarity": 0.5},
        base | {"MAE": 20.0, "CosineSimilarity": 0.7},
        base | {"MAE": 1000.0, "CosineSimilarity": math.nan},
        base | {"MAE": 1000.0, "CosineSimilarity": 1.0 + 2e-16 * 2},
        base | {"MAE": 30.0, "CosineSimilarity": 1.0},
    ]
    means, skipped = legacy_dataset_means(rows)
    assert skipped == [2, 3]
    assert means["MAE"] == pytest.approx(20.0)
    assert means["CosineSimilarity"] == pytest.approx((0.5 + 0.7 + 1.0) / 3)
    with pytest.raises(ValueError, match="every one of the 2 rows"):
        legacy_dataset_means(rows[2:4])
    with pytest.raises(ValueError, match="no rows"):
        legacy_dataset_means([])
