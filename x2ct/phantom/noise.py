"""Fast additive Gaussian image noise.

Drawing tens of millions of normal variates with numpy's generator costs about 9 ns each; this module draws
uniform 16-bit integers instead (about 1 ns) and maps them through a table of the normal distribution's
quantiles (inverse-transform sampling). The result is Gaussian to within the 16-bit quantization (tails cut
at about 4.3 sigma). Noise is added slab by slab with a small reused buffer so no second volume-sized
array is allocated.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

TABLE_BITS: int = 16
SLAB_VOXELS: int = 1 << 20
"""Voxels per slab (about 4 MB of float32), small enough to stay in cache."""

_QUANTILES: np.ndarray = ndtri((np.arange(1 << TABLE_BITS) + 0.5) / (1 << TABLE_BITS)).astype(np.float32)
"""Standard-normal quantiles at the centres of 2^16 equal-probability bins (mean 0, std ~1)."""


def add_gaussian_noise(volume: np.ndarray, std: float, rng: np.random.Generator) -> None:
    """Add zero-mean Gaussian noise of standard deviation ``std`` to the float32 ``volume`` in place
    (any shape; processed in slabs along axis 0)."""
    if volume.dtype != np.float32:
        raise ValueError(f"noise is added to float32 volumes, got {volume.dtype}")
    if std < 0:
        raise ValueError(f"noise standard deviation must be >= 0, got {std}")
    if std == 0 or volume.size == 0:
        return
    table = _QUANTILES * np.float32(std)
    plane = int(np.prod(volume.shape[1:], dtype=np.int64))
    step = max(1, SLAB_VOXELS // max(plane, 1))
    for start in range(0, volume.shape[0], step):
        slab = volume[start : start + step]
        index = np.frombuffer(rng.bytes(2 * slab.size), dtype=np.uint16).reshape(slab.shape)
        slab += table[index]
