"""Tests of the fast Gaussian noise used by the phantom generator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from x2ct.phantom.noise import add_gaussian_noise


def test_noise_has_the_requested_mean_std_and_gaussian_shape() -> None:
    volume = np.full((40, 64, 64), 100.0, dtype=np.float32)
    add_gaussian_noise(volume, 15.0, np.random.default_rng(0))
    noise = (volume - 100.0).ravel()
    assert noise.mean() == pytest.approx(0.0, abs=0.1)
    assert noise.std() == pytest.approx(15.0, rel=0.01)
    assert abs(stats.skew(noise)) < 0.02 and abs(stats.kurtosis(noise)) < 0.05
    # slabs get different noise (no repeated buffer)
    assert not np.allclose(volume[0], volume[1])


def test_noise_is_reproducible_and_zero_std_is_a_no_op() -> None:
    a = np.zeros((3, 500, 700), dtype=np.float32)  # several slabs
    b = np.zeros_like(a)
    add_gaussian_noise(a, 5.0, np.random.default_rng(7))
    add_gaussian_noise(b, 5.0, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    c = np.zeros((2, 3, 4), dtype=np.float32)
    add_gaussian_noise(c, 0.0, np.random.default_rng(0))
    assert not c.any()


def test_noise_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="float32"):
        add_gaussian_noise(np.zeros((2, 2, 2)), 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="standard deviation"):
        add_gaussian_noise(np.zeros((2, 2, 2), dtype=np.float32), -1.0, np.random.default_rng(0))
