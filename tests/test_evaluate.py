"""``x2ct-eval``: contract files of an evaluation, on a tiny checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.helpers import compose_config
from tests.inference.helpers import write_tiny_checkpoint
from x2ct.evaluate import evaluate
from x2ct.metrics import LEGACY_METRIC_NAMES, MODERN_METRIC_NAMES

N_TEST = 3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), n_test=N_TEST)


def run_eval(ckpt: Path, out_dir: Path, *extra: str) -> dict:
    cfg = compose_config("eval", [f"ckpt_path={ckpt}", f"out_dir={out_dir}", "n_boot=200", *extra])
    evaluate(cfg)
    return json.loads((out_dir / "metrics.json").read_text())


def test_writes_the_contract_files(checkpoint: Path, tmp_path: Path) -> None:
    metrics = run_eval(checkpoint, tmp_path, "save_nifti=true")
    keys = list(metrics)
    assert keys[: len(LEGACY_METRIC_NAMES)] == list(LEGACY_METRIC_NAMES)
    assert keys[len(LEGACY_METRIC_NAMES) : -2] == list(MODERN_METRIC_NAMES)
    assert keys[-2:] == ["n_cases", "lateral_angle"] and metrics["n_cases"] == N_TEST
    assert metrics["lateral_angle"] == 90
    rows = list(csv.DictReader((tmp_path / "per_case.csv").open()))
    assert len(rows) == N_TEST
    mean_psnr = np.mean([float(r["PSNR-3D"]) for r in rows])
    assert metrics["PSNR-3D"] == pytest.approx(mean_psnr)
    summary = json.loads((tmp_path / "summary.json").read_text())["metrics"]
    assert summary["PSNR-3D"]["ci_low"] <= metrics["PSNR-3D"] <= summary["PSNR-3D"]["ci_high"]
    table = (tmp_path / "metrics.md").read_text()
    assert "| PSNR-3D |" in table and "27.432" in table  # the paper's value beside ours
    assert len(list((tmp_path / "figures").glob("*.png"))) == 6  # best/median/worst x slices/projections
    volumes = sorted((tmp_path / "volumes").glob("*.nii.gz"))
    assert len(volumes) == N_TEST
    image = nib.load(volumes[0])
    data = np.asarray(image.dataobj)
    assert data.shape == (32, 32, 32) and data.min() >= -1024.5 and data.max() <= 1476.5
    assert nib.aff2axcodes(image.affine) == ("I", "P", "L")
    assert np.allclose(image.header.get_zooms(), (4.0, 4.0, 4.0))


def test_angle_override_and_missing_angle(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="85"):
        run_eval(checkpoint, tmp_path, "data.lateral_angle=85")


def test_errors_name_the_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.ckpt"):
        run_eval(tmp_path / "nowhere.ckpt", tmp_path)
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_text("not a checkpoint")
    with pytest.raises(Exception, match=r"bogus\.ckpt"):
        run_eval(bogus, tmp_path)
