"""Dataset summaries of per-volume metrics: mean and percentile-bootstrap confidence interval of the mean.

NaN values (a metric undefined for a volume, e.g. HD95 with an empty bone mask) are left out of that metric's
mean and counted in ``n_nan``; the other metrics of the same volume still count. Infinite values are an error.
The bootstrap resamples volumes with replacement ``n_boot`` times from a generator seeded with ``seed`` for
every metric, so metrics with the same valid volumes are resampled identically (paired) and the result does
not depend on the order of the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_N_BOOT = 1000
DEFAULT_CI = 0.95
DEFAULT_SEED = 0
PERCENT = 100.0


def bootstrap_mean_ci(
    values: np.ndarray, n_boot: int = DEFAULT_N_BOOT, ci: float = DEFAULT_CI, seed: int = DEFAULT_SEED
) -> tuple[float, float]:
    """Percentile-bootstrap ``ci`` interval (low, high) of the mean of 1D finite ``values`` (n >= 1)."""
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"bootstrap needs a non-empty 1D array of values, got shape {values.shape}")
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, values.size, size=(n_boot, values.size))
    means = values[indices].mean(axis=1)
    tail = PERCENT * (1.0 - ci) / 2.0
    low, high = np.percentile(means, [tail, PERCENT - tail])
    return float(low), float(high)


def _metric_names(rows: Sequence[Mapping[str, float]]) -> list[str]:
    names = list(rows[0])
    for index, row in enumerate(rows):
        if set(row) != set(names):
            raise ValueError(
                f"row {index} has metrics {sorted(row)} but row 0 has {sorted(names)}: every row needs the same keys"
            )
    return names


def summarize(
    rows: Sequence[Mapping[str, float]],
    n_boot: int = DEFAULT_N_BOOT,
    ci: float = DEFAULT_CI,
    seed: int = DEFAULT_SEED,
) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "ci_low", "ci_high", "n", "n_nan"}}`` over per-volume ``rows`` (metric -> value).

    Metric order follows the first row. ``n``: volumes with a non-NaN value; when ``n == 0`` the mean and CI are
    NaN. ``ci``: coverage in (0, 1); ``n_boot``: bootstrap resamples (>= 1); ``seed``: reproducibility.
    Raises ValueError for no rows, rows with different keys, non-numeric or infinite values, bad parameters.
    """
    if not rows:
        raise ValueError("summarize needs at least one row of metrics")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie strictly between 0 and 1, got {ci}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    summary: dict[str, dict[str, float]] = {}
    for name in _metric_names(rows):
        try:
            values = np.array([float(row[name]) for row in rows], dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"metric {name!r} has a non-numeric value: {error}") from error
        if np.isinf(values).any():
            raise ValueError(f"metric {name!r} has infinite values in rows {np.flatnonzero(np.isinf(values)).tolist()}")
        valid = values[~np.isnan(values)]
        if valid.size == 0:
            mean = low = high = math.nan
        else:
            mean = float(valid.mean())
            low, high = bootstrap_mean_ci(valid, n_boot=n_boot, ci=ci, seed=seed)
        summary[name] = {
            "mean": mean,
            "ci_low": low,
            "ci_high": high,
            "n": valid.size,
            "n_nan": values.size - valid.size,
        }
    return summary
