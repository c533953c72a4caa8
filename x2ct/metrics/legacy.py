"""The metrics of the official X2CT-GAN test script (``3DGAN/test.py``), reproduced exactly, in torch.

Inputs: ground truth ``real`` and prediction ``fake``, CT volumes on the model's [0, 1] scale (the HU window
[-1024, 1476] mapped linearly), array order (D, H, W). ``fake`` is clamped to [0, 1] as the script does.

Per volume, in float64 unless stated (the script saw float32 network output; float64 inputs are used as given
for the float metrics):

* ``MAE0``, ``MSE0``: mean |R - F| and mean (R - F)^2 on [0, 1].
* ``CosineSimilarity``: <R, F> / (||F|| ||R||) of the flattened volumes.
* ``MAE``, ``MSE``: on the integer volumes R' = int32(2500 R), F' = int32(2500 F). The product is taken in
  float32 and truncated toward zero, as in the script, whose network output is float32 (scaling in float64
  instead would move about half of the exact grid values k / 2500 down by one).
* ``PSNR-3D`` = 20 log10(4095 / sqrt(MSE)), 100 when MSE = 0. The peak is 4095, not 2500.
* ``PSNR-1/2/3``: mean over the slices along D / H / W of the per-slice PSNR of R', F' (peak 4095, a slice with
  zero MSE counts 100 dB); ``PSNR-avg`` = their mean.
* ``SSIM-1/2/3``: mean over the slices along D / H / W of scikit-image's default 2D SSIM (7x7 uniform window,
  K1 0.01, K2 0.03, sample covariance, 3-pixel border cropped) on the **[0, 1] float volumes** (R and the
  clamped F, not the integer ones) with ``data_range = 1.0``, as the script calls it; ``SSIM-avg`` = their mean
  (the paper's "SSIM").

Degenerate input: a constant ``real`` volume raises ValueError (an all-zero one makes the cosine 0 / 0, and a
constant CT means every voxel fell outside the window: a data error). An all-zero (after clamping) ``fake``
gives ``CosineSimilarity = NaN`` (every other metric is defined); the dataset rule below then skips it.

Dataset figure: the arithmetic mean over volumes, skipping a volume whose cosine is NaN or > 1 (the script's
rule; note that rounding can put the cosine of a perfect reconstruction a hair above 1, which the rule skips).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from x2ct.metrics.inputs import VolumeLike, as_float_tensor, check_min_size, check_pair, check_unit_range
from x2ct.metrics.ssim2d import SSIM_DATA_RANGE, SSIM_WIN_SIZE, ssim_slice_means

LEGACY_SCALE: float = 2500.0
LEGACY_PEAK: float = 4095.0
IDENTICAL_PSNR_DB: float = 100.0
LEGACY_SCALE_DTYPE = torch.float32  # dtype of the official script's 2500 * x product (its network output)
LEGACY_METRIC_NAMES: tuple[str, ...] = (
    "MAE0",
    "MSE0",
    "MAE",
    "MSE",
    "CosineSimilarity",
    "PSNR-3D",
    "PSNR-1",
    "PSNR-2",
    "PSNR-3",
    "PSNR-avg",
    "SSIM-1",
    "SSIM-2",
    "SSIM-3",
    "SSIM-avg",
)
COSINE_NAME = "CosineSimilarity"
COSINE_MAX = 1.0


def legacy_integer_volume(volume: torch.Tensor) -> torch.Tensor:
    """int32(2500 x) with the product in float32 (truncation toward zero), returned as float64; any shape."""
    return (volume.to(LEGACY_SCALE_DTYPE) * LEGACY_SCALE).to(torch.int32).to(torch.float64)


def legacy_psnr(mse: torch.Tensor) -> torch.Tensor:
    """20 log10(4095 / sqrt(mse)) elementwise, 100 dB where mse == 0; float64."""
    safe = torch.where(mse == 0, torch.ones_like(mse), mse)
    psnr = 20.0 * torch.log10(LEGACY_PEAK / torch.sqrt(safe))
    return torch.where(mse == 0, torch.full_like(psnr, IDENTICAL_PSNR_DB), psnr)


def _check_not_constant(real: torch.Tensor) -> None:
    flat = real.flatten(1)
    constant = (flat.amax(dim=1) == flat.amin(dim=1)).nonzero().flatten().tolist()
    if constant:
        value = float(flat[constant[0], 0])
        raise ValueError(
            f"real volume(s) {constant} of the batch are constant (value {value}): legacy metrics are undefined "
            "(cosine of an all-zero volume is 0/0) or meaningless (every voxel outside the CT window)"
        )


def legacy_x2ct_metrics_batch(real: VolumeLike, fake: VolumeLike) -> dict[str, torch.Tensor]:
    """The official X2CT metrics per volume: ``{name: float64 tensor (N,)}`` in ``LEGACY_METRIC_NAMES`` order.

    ``real``, ``fake``: (N, 1, D, H, W) on the [0, 1] scale, any float dtype, on CPU or GPU (the result stays on
    that device); every side >= 7 (the SSIM window). ``fake`` is clamped to [0, 1].
    Raises ValueError for a shape mismatch, another layout, an empty volume, NaN/inf, ``real`` outside [0, 1]
    or a constant ``real`` volume.
    """
    real_t = as_float_tensor(real, "real")
    fake_t = as_float_tensor(fake, "fake")
    check_pair(real_t, fake_t, ndim=5, layout="(N, 1, D, H, W)")
    if real_t.shape[1] != 1:
        raise ValueError(f"expected one channel (N, 1, D, H, W), got shape {tuple(real_t.shape)}")
    check_min_size(tuple(real_t.shape[2:]), SSIM_WIN_SIZE, f"the {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} SSIM window")
    check_unit_range(real_t)
    _check_not_constant(real_t[:, 0])
    real_t = real_t[:, 0]
    fake_t = fake_t[:, 0].clamp(0.0, 1.0)

    real64, fake64 = real_t.to(torch.float64), fake_t.to(torch.float64)
    diff = (real64 - fake64).flatten(1)
    real_flat, fake_flat = real64.flatten(1), fake64.flatten(1)
    cosine = (real_flat * fake_flat).sum(dim=1) / (
        torch.linalg.vector_norm(fake_flat, dim=1) * torch.linalg.vector_norm(real_flat, dim=1)
    )

    diff_int = legacy_integer_volume(real_t) - legacy_integer_volume(fake_t)  # (N, D, H, W)
    squared_int = diff_int.square()
    psnr_d = legacy_psnr(squared_int.mean(dim=(2, 3))).mean(dim=1)
    psnr_h = legacy_psnr(squared_int.mean(dim=(1, 3))).mean(dim=1)
    psnr_w = legacy_psnr(squared_int.mean(dim=(1, 2))).mean(dim=1)
    mse_int = squared_int.flatten(1).mean(dim=1)

    ssim = ssim_slice_means(real64, fake64, data_range=SSIM_DATA_RANGE, win_size=SSIM_WIN_SIZE)
    ssim_d, ssim_h, ssim_w = ssim.unbind(dim=1)
    return {
        "MAE0": diff.abs().mean(dim=1),
        "MSE0": diff.square().mean(dim=1),
        "MAE": diff_int.abs().flatten(1).mean(dim=1),
        "MSE": mse_int,
        "CosineSimilarity": cosine,
        "PSNR-3D": legacy_psnr(mse_int),
        "PSNR-1": psnr_d,
        "PSNR-2": psnr_h,
        "PSNR-3": psnr_w,
        "PSNR-avg": (psnr_h + psnr_d + psnr_w) / 3,  # the script's order of summation
        "SSIM-1": ssim_d,
        "SSIM-2": ssim_h,
        "SSIM-3": ssim_w,
        "SSIM-avg": (ssim_d + ssim_h + ssim_w) / 3,
    }


def legacy_x2ct_metrics(
    real: VolumeLike, fake: VolumeLike, device: str | torch.device | None = None
) -> dict[str, float]:
    """The official X2CT metrics of one (D, H, W) pair on the [0, 1] scale: ``{name: float}`` (see module doc).

    ``device``: where to compute (default: where ``real`` is; numpy input -> CPU). Same errors as
    ``legacy_x2ct_metrics_batch``; a 5D input is refused here (use the batch function).
    """
    real_t = as_float_tensor(real, "real")
    fake_t = as_float_tensor(fake, "fake")
    if real_t.ndim != 3 or fake_t.ndim != 3:
        raise ValueError(
            f"expected two (D, H, W) volumes, got shapes {tuple(real_t.shape)} and {tuple(fake_t.shape)}; "
            "use legacy_x2ct_metrics_batch for (N, 1, D, H, W) batches"
        )
    if device is not None:
        real_t, fake_t = real_t.to(device), fake_t.to(device)
    values = legacy_x2ct_metrics_batch(real_t[None, None], fake_t[None, None])
    return {name: float(value[0]) for name, value in values.items()}


def official_rule_keeps(row: Mapping[str, float]) -> bool:
    """The script's dataset rule: keep a volume unless its cosine similarity is NaN or > 1."""
    cosine = float(row[COSINE_NAME])
    return not (math.isnan(cosine) or cosine > COSINE_MAX)


def legacy_dataset_means(rows: Sequence[Mapping[str, float]]) -> tuple[dict[str, float], list[int]]:
    """Dataset figures of the script: means over the rows kept by ``official_rule_keeps``, and the skipped
    row indices. Raises ValueError when there is no row or every row is skipped."""
    if not rows:
        raise ValueError("no rows to average")
    keeps = [official_rule_keeps(row) for row in rows]
    skipped = [index for index, keep in enumerate(keeps) if not keep]
    kept = [row for row, keep in zip(rows, keeps, strict=True) if keep]
    if not kept:
        raise ValueError(f"every one of the {len(rows)} rows has a NaN or > 1 cosine similarity: nothing to average")
    means = {name: math.fsum(float(row[name]) for row in kept) / len(kept) for name in LEGACY_METRIC_NAMES}
    return means, skipped
