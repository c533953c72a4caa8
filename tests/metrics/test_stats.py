"""Dataset summaries: means, percentile-bootstrap CIs, NaN handling, reproducibility, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from x2ct.metrics import bootstrap_mean_ci, summarize

NORMAL_QUANTILE_95 = 1.959964


def rows_of(values: np.ndarray, name: str = "PSNR-3D") -> list[dict[str, float]]:
    return [{name: float(v)} for v in values]


def test_mean_and_ci_contain_the_mean_and_match_the_normal_approximation() -> None:
    values = np.random.default_rng(1).normal(loc=28.0, scale=2.0, size=400)
    stats = summarize(rows_of(values), n_boot=2000, ci=0.95, seed=0)["PSNR-3D"]
    assert stats["mean"] == pytest.approx(values.mean())
    assert stats["n"] == 400
    assert stats["n_nan"] == 0
    assert stats["ci_low"] < stats["mean"] < stats["ci_high"]
    half_width = NORMAL_QUANTILE_95 * values.std(ddof=1) / math.sqrt(values.size)
    assert (stats["ci_high"] - stats["ci_low"]) / 2 == pytest.approx(half_width, rel=0.1)


def test_ci_shrinks_with_more_volumes() -> None:
    rng = np.random.default_rng(2)
    small = summarize(rows_of(rng.normal(size=20)))["PSNR-3D"]
    large = summarize(rows_of(rng.normal(size=2000)))["PSNR-3D"]
    assert (large["ci_high"] - large["ci_low"]) < (small["ci_high"] - small["ci_low"]) / 5  # ~ sqrt(100) = 10x


def test_wider_coverage_gives_a_wider_interval() -> None:
    values = np.random.default_rng(3).normal(size=50)
    narrow = summarize(rows_of(values), ci=0.5)["PSNR-3D"]
    wide = summarize(rows_of(values), ci=0.99)["PSNR-3D"]
    assert wide["ci_low"] < narrow["ci_low"] < narrow["ci_high"] < wide["ci_high"]


def test_reproducible_by_seed() -> None:
    rows = rows_of(np.random.default_rng(4).normal(size=30))
    assert summarize(rows, seed=7) == summarize(rows, seed=7)
    assert summarize(rows, seed=7)["PSNR-3D"]["ci_low"] != summarize(rows, seed=8)["PSNR-3D"]["ci_low"]
    low, high = bootstrap_mean_ci(np.array([r["PSNR-3D"] for r in rows]), n_boot=1000, ci=0.95, seed=7)
    assert summarize(rows, seed=7)["PSNR-3D"]["ci_low"] == low
    assert summarize(rows, seed=7)["PSNR-3D"]["ci_high"] == high


def test_nan_values_are_left_out_per_metric_and_counted() -> None:
    rows = [
        {"Dice-bone": 0.8, "HD95-mm": 2.0},
        {"Dice-bone": 0.6, "HD95-mm": math.nan},
        {"Dice-bone": 0.7, "HD95-mm": 4.0},
    ]
    summary = summarize(rows)
    assert list(summary) == ["Dice-bone", "HD95-mm"]
    assert summary["Dice-bone"]["mean"] == pytest.approx(0.7)
    assert summary["Dice-bone"]["n"] == 3
    assert summary["HD95-mm"]["mean"] == pytest.approx(3.0)
    assert (summary["HD95-mm"]["n"], summary["HD95-mm"]["n_nan"]) == (2, 1)
    assert 2.0 <= summary["HD95-mm"]["ci_low"] <= summary["HD95-mm"]["ci_high"] <= 4.0


def test_all_nan_metric_and_single_volume() -> None:
    summary = summarize([{"ASSD-mm": math.nan, "MAE": 5.0}, {"ASSD-mm": math.nan, "MAE": math.nan}])
    assert summary["ASSD-mm"]["n"] == 0
    assert math.isnan(summary["ASSD-mm"]["mean"]) and math.isnan(summary["ASSD-mm"]["ci_low"])
    assert summary["MAE"] == {"mean": 5.0, "ci_low": 5.0, "ci_high": 5.0, "n": 1, "n_nan": 1}


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([], {}, "at least one row"),
        ([{"a": 1.0}, {"b": 1.0}], {}, "same keys"),
        ([{"a": 1.0}, {"a": math.inf}], {}, "infinite values in rows \\[1\\]"),
        ([{"a": "x"}], {}, "non-numeric"),
        ([{"a": 1.0}], {"ci": 1.0}, "ci must lie"),
        ([{"a": 1.0}], {"n_boot": 0}, "n_boot"),
    ],
)
def test_bad_input_raises(rows: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        summarize(rows, **kwargs)
