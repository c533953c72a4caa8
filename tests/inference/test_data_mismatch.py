"""Evaluating or predicting on data unlike the training data warns once per difference, naming both values."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from x2ct.evaluation import EvaluationSettings, evaluate_checkpoint
from x2ct.inference.data_mismatch import DataDescription, data_mismatches
from x2ct.inference.predictor import Predictor

OTHER_CUBE = 16  # the other data's stored grid (the tiny model's is 32^3)
OTHER_SPACING_MM = (4.0, 4.0, 4.0)  # stored; on the model's 32^3 grid 4 * 15 / 31 = 1.94 mm (training: 4 mm)
LOGGER = "x2ct.inference.data_mismatch"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def test_each_difference_is_one_line_naming_both_values() -> None:
    trained = DataDescription(
        "train.h5", (4.0, 4.0, 4.0), (32, 32, 32), {"xray_mode": "aligned", "drr.sod_mm": 850.0}, (60.0, 120.0)
    )
    same = DataDescription("same.h5", (4.0, 4.0, 4.0), (32, 32, 32), {"xray_mode": "aligned"}, (75.0, 75.0))
    assert data_mismatches(trained, same) == []
    other = DataDescription(
        "other.h5", (2.0, 2.0, 2.0), (64, 64, 64), {"xray_mode": "paper", "drr.sod_mm": 600.0}, (45.0, 45.0)
    )
    lines = data_mismatches(trained, other)
    expected = [("2x2x2 mm", "4x4x4 mm"), ("64x64x64", "32x32x32"), ("'paper'", "'aligned'"), ("600 mm", "850 mm")]
    expected.append(("45 degrees", "60-120 degrees"))
    assert len(lines) == len(expected)
    for line, (used, training) in zip(lines, expected, strict=True):
        assert used in line and training in line and "other.h5" in line and "train.h5" in line


@pytest.fixture
def other_data(tmp_path: Path, write_tiny_triplets: Callable[..., Path]) -> Path:
    """Triplets on another grid (16^3 at 4 mm) and in the paper's X-ray mode."""
    root = write_tiny_triplets(tmp_path / "other", n_train=2, n_test=2, cube=OTHER_CUBE)
    for path in root.glob("*/ct_xray_data.h5"):
        with h5py.File(path, "a") as h5:
            h5.attrs["spacing_mm"] = np.asarray(OTHER_SPACING_MM)
            h5.attrs["xray_mode"] = "paper"
    return root


def test_evaluating_other_data_warns_once_per_difference(
    tiny_checkpoint: Any, other_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = EvaluationSettings(n_boot=10, figures=False)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        evaluate_checkpoint(tiny_checkpoint.path, {"root": str(other_data)}, tmp_path / "eval", settings)
    lines = warnings_of(caplog)
    assert len(lines) == 3, lines  # voxel size, grid, X-ray mode: once each for the 2 test cases
    voxel = next(line for line in lines if "voxel size" in line)
    assert "1.93548x1.93548x1.93548 mm" in voxel and "4x4x4 mm" in voxel
    assert any("16x16x16" in line and "32x32x32" in line for line in lines)
    assert any("'paper'" in line and "'aligned'" in line for line in lines)


def test_evaluating_the_training_data_warns_nothing(
    tiny_checkpoint: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        evaluate_checkpoint(tiny_checkpoint.path, {}, tmp_path / "eval", EvaluationSettings(n_boot=10, figures=False))
    assert warnings_of(caplog) == []


def test_predicting_with_another_voxel_size_warns_naming_both(
    tiny_checkpoint: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        Predictor.from_checkpoint(tiny_checkpoint.path, spacing_mm=1.0, use_training_spacing=False)
    lines = warnings_of(caplog)
    assert len(lines) == 1 and "1x1x1 mm" in lines[0] and "4x4x4 mm" in lines[0], lines
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        Predictor.from_checkpoint(tiny_checkpoint.path)  # the training voxel size: nothing to say
    assert warnings_of(caplog) == []
