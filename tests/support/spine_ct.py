"""A tiny synthetic spine CT in HU (32^3 at 2 mm) with a two-level vertebra mask, for the data checks' tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from x2ct.io.volume import canonical_affine

AIR_HU, FAT_HU, SOFT_TISSUE_HU = -1000.0, -100.0, 40.0
CANCELLOUS_HU, CORTEX_HU = 250.0, 900.0
NOISE_HU = 10.0
SPINE_SIZE = 32
SPINE_SPACING_MM = 2.0
BODY_RADIUS, FAT_WIDTH = 13, 2  # voxels (W, H plane)
L1, L2 = 20, 21  # project label ids


@dataclass(frozen=True)
class SpineCT:
    """``hu`` float32 (D, H, W) in HU, ``labels`` int16 (L1 above L2), ``affine`` canonical 4x4 (mm)."""

    hu: np.ndarray
    labels: np.ndarray
    affine: np.ndarray


def tiny_spine_ct(size: int = SPINE_SIZE, spacing_mm: float = SPINE_SPACING_MM, seed: int = 0) -> SpineCT:
    """Air around a body cylinder (soft tissue with a fat rim) holding a vertebral column: a cancellous core in
    a dense cortex, labelled L1 (upper half) and L2 (lower half); Gaussian noise of ``NOISE_HU``."""
    rng = np.random.default_rng(seed)
    d, h, w = np.meshgrid(*(np.arange(size),) * 3, indexing="ij")
    centre = (size - 1) / 2
    radius = np.hypot(h - centre, w - centre)
    hu = np.full((size,) * 3, AIR_HU, np.float32)
    hu[radius <= BODY_RADIUS] = FAT_HU
    hu[radius <= BODY_RADIUS - FAT_WIDTH] = SOFT_TISSUE_HU
    column = (d >= size // 8) & (d < size - size // 8) & (np.abs(h - centre) <= 3) & (np.abs(w - centre) <= 3)
    hu[column] = CORTEX_HU
    core = column & (np.abs(h - centre) <= 2) & (np.abs(w - centre) <= 2)
    hu[core] = CANCELLOUS_HU
    hu += rng.normal(0.0, NOISE_HU, hu.shape).astype(np.float32)
    labels = np.zeros((size,) * 3, np.int16)
    labels[column & (d < size // 2)] = L1
    labels[column & (d >= size // 2)] = L2
    return SpineCT(hu=hu, labels=labels, affine=canonical_affine((spacing_mm,) * 3))
