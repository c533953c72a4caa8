"""2D SSIM of every slice along every axis of a batch of volumes at once, in torch (CPU or GPU).

Reproduces ``skimage.metrics.structural_similarity`` with its defaults, applied slice by slice: a
``win_size x win_size`` uniform window, ``K1 = 0.01``, ``K2 = 0.03``, sample covariance (``NP / (NP - 1)`` with
``NP = win_size**2``), and the mean of the SSIM map after cropping ``(win_size - 1) // 2`` pixels on every side.
Inside that crop every window lies wholly in the image, so scikit-image's reflect padding never matters and the
box sums are taken over the "valid" region only, one axis at a time (sums of shifted views).

The three slice directions share work: the in-plane window of a slice along D is the box over (H, W), along H
the box over (D, W), along W the box over (D, H). All slices of one direction have the same size, so the mean
of the per-slice means is the mean of the direction's whole SSIM map. The volume is processed in chunks of
``chunk_slices`` slices along D (plus a ``win_size - 1`` halo) so that on a CPU the intermediates stay in cache.
"""

from __future__ import annotations

import torch

from x2ct.metrics.inputs import check_min_size

SSIM_WIN_SIZE = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_DATA_RANGE = 1.0
SLICE_AXES = ("D", "H", "W")
CPU_CHUNK_SLICES = 8  # D-slices per chunk on a CPU (GPU: the whole volume at once)
N_PRODUCTS = 5  # x, y, x*x, y*y, x*y


def box_sum_valid(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Sum over every run of ``size`` consecutive samples along ``dim`` ("valid": the dim shrinks by size - 1)."""
    length = x.shape[dim] - size + 1
    total = x.narrow(dim, 0, length).clone()
    for offset in range(1, size):
        total += x.narrow(dim, offset, length)
    return total


def ssim_map_from_sums(
    sums: torch.Tensor, data_range: float, win_size: int, k1: float, k2: float, n_window_dims: int = 2
) -> torch.Tensor:
    """SSIM map from the stacked window sums of ``(x, y, x*x, y*y, x*y)`` along dim 0 (scikit-image's formula)."""
    n_pixels = win_size**n_window_dims
    ux, uy, uxx, uyy, uxy = (sums / n_pixels).unbind(0)
    cov_norm = n_pixels / (n_pixels - 1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    a1 = 2 * ux * uy + c1
    a2 = 2 * vxy + c2
    b1 = ux**2 + uy**2 + c1
    b2 = vx + vy + c2
    return (a1 * a2) / (b1 * b2)


def _products(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    products = torch.empty((N_PRODUCTS, *x.shape), dtype=x.dtype, device=x.device)
    products[0], products[1] = x, y
    torch.mul(x, x, out=products[2])
    torch.mul(y, y, out=products[3])
    torch.mul(x, y, out=products[4])
    return products


def ssim_slice_means(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = SSIM_DATA_RANGE,
    win_size: int = SSIM_WIN_SIZE,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
    chunk_slices: int | None = None,
) -> torch.Tensor:
    """Mean 2D SSIM over the slices along D, H and W: (N, 3) from two (N, D, H, W) batches.

    Computed in the input dtype (pass float64 to match scikit-image to ~1e-13). Column ``a`` is the mean over
    the slices ``x[n, i, :, :]`` (a = 0), ``x[n, :, i, :]`` (a = 1) or ``x[n, :, :, i]`` (a = 2) of
    ``structural_similarity(x_slice, y_slice, data_range=data_range)``; ``x`` plays scikit-image's ``im1``.
    Every side must be at least ``win_size``. ``chunk_slices``: D-slices per chunk (None: 8 on a CPU, all on
    a GPU); the result does not depend on it beyond rounding.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (N, D, H, W) batches of equal shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    if win_size < 1 or win_size % 2 == 0:
        raise ValueError(f"win_size must be a positive odd number, got {win_size}")
    check_min_size(tuple(x.shape[1:]), win_size, f"a {win_size}x{win_size} SSIM window")
    n_volumes, depth, height, width = x.shape
    if chunk_slices is None:
        chunk_slices = depth if x.is_cuda else CPU_CHUNK_SLICES
    if chunk_slices < 1:
        raise ValueError(f"chunk_slices must be >= 1, got {chunk_slices}")
    halo = win_size - 1
    map_sums = torch.zeros((3, n_volumes), dtype=x.dtype, device=x.device)
    for start in range(0, depth, chunk_slices):
        stop = min(start + chunk_slices, depth)
        rows_end = min(stop + halo, depth)
        products = _products(x[:, start:rows_end], y[:, start:rows_end])  # (5, N, rows, H, W)
        along_w = box_sum_valid(products, dim=4, size=win_size)
        window_d = box_sum_valid(along_w[:, :, : stop - start], dim=3, size=win_size)  # box over (H, W)
        map_sums[0] += ssim_map_from_sums(window_d, data_range, win_size, k1, k2).sum(dim=(1, 2, 3))
        if rows_end - start <= halo:  # no full window along D starts in this chunk
            continue
        window_h = box_sum_valid(along_w, dim=2, size=win_size)  # box over (D, W)
        map_sums[1] += ssim_map_from_sums(window_h, data_range, win_size, k1, k2).sum(dim=(1, 2, 3))
        along_h = box_sum_valid(products, dim=3, size=win_size)
        window_w = box_sum_valid(along_h, dim=2, size=win_size)  # box over (D, H)
        map_sums[2] += ssim_map_from_sums(window_w, data_range, win_size, k1, k2).sum(dim=(1, 2, 3))
    cropped = (depth - halo, height - halo, width - halo)
    counts = torch.tensor(
        [depth * cropped[1] * cropped[2], cropped[0] * height * cropped[2], cropped[0] * cropped[1] * width],
        dtype=x.dtype,
        device=x.device,
    )
    return (map_sums / counts[:, None]).T
