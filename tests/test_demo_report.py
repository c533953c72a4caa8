"""The demo report: a run's checkpoint against the mean-volume baseline on the test cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.inference.helpers import write_tiny_checkpoint
from x2ct.demo_report import METRICS, compare


def test_report_compares_model_and_baseline(tmp_path: Path) -> None:
    ckpt = write_tiny_checkpoint(tmp_path / "run", n_test=2)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir()
    ckpt.rename(run_dir / "checkpoints" / "last.ckpt")
    report = compare(run_dir, None, tmp_path / "report", n_figures=1)
    assert report["n_test_cases"] == 2
    assert list(report["model"]) == [m for m in METRICS if m != "SSIM-3D"]  # the tiny model skips 3D SSIM
    for name in report["model"]:
        model, baseline = report["model"][name], report["mean_volume_baseline"][name]
        assert model != baseline  # two different predictions
        assert report["model_beats_baseline"][name] == ((model > baseline) == (name != "MAE0"))
    assert json.loads((tmp_path / "report" / "report.json").read_text())["model"] == pytest.approx(report["model"])
    assert len(report["figures"]) == 1 and Path(report["figures"][0]).is_file()


def test_missing_checkpoint_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoints"):
        compare(tmp_path, None, tmp_path / "report")
