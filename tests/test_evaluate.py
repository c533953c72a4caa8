"""``x2ct-eval``: contract files of an evaluation, on a tiny checkpoint."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from x2ct.drr.matrix_projector import rotate_about_depth_axis
from x2ct.evaluate import evaluate
from x2ct.evaluation import load_checkpoint
from x2ct.inference.checkpoint import CheckpointError, CheckpointNotFoundError
from x2ct.io.hdf5 import TripletFileError
from x2ct.metrics import LEGACY_METRIC_NAMES, MODERN_METRIC_NAMES, legacy_x2ct_metrics

N_BOOT = 200  # fewer bootstrap resamples than the default, for speed
UINT8_MAX = 255


@pytest.fixture
def run_eval(compose_config: Callable[..., Any]) -> Callable[..., dict]:
    """``(ckpt, out_dir, *overrides) -> metrics.json`` of ``x2ct-eval ckpt_path=<ckpt> out_dir=<out_dir> ...``."""

    def run(ckpt: Path, out_dir: Path, *extra: str) -> dict:
        evaluate(compose_config("eval", [f"ckpt_path={ckpt}", f"out_dir={out_dir}", f"n_boot={N_BOOT}", *extra]))
        return json.loads((out_dir / "metrics.json").read_text())

    return run


def test_writes_the_contract_files(tiny_checkpoint: Any, run_eval: Callable[..., dict], tmp_path: Path) -> None:
    metrics = run_eval(tiny_checkpoint.path, tmp_path, "save_nifti=true")
    n_test = tiny_checkpoint.n_test
    keys = list(metrics)
    assert keys[: len(LEGACY_METRIC_NAMES)] == list(LEGACY_METRIC_NAMES)
    assert keys[len(LEGACY_METRIC_NAMES) : -2] == list(MODERN_METRIC_NAMES)
    assert keys[-2:] == ["n_cases", "lateral_angle"] and metrics["n_cases"] == n_test
    assert metrics["lateral_angle"] == 90
    rows = list(csv.DictReader((tmp_path / "per_case.csv").open()))
    assert len(rows) == n_test
    mean_psnr = np.mean([float(r["PSNR-3D"]) for r in rows])
    assert metrics["PSNR-3D"] == pytest.approx(mean_psnr)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["n_boot"], summary["ci"], summary["split"]) == (N_BOOT, 0.95, "test")
    psnr = summary["metrics"]["PSNR-3D"]
    assert psnr["ci_low"] <= metrics["PSNR-3D"] <= psnr["ci_high"]
    table = (tmp_path / "metrics.md").read_text()
    assert "| PSNR-3D |" in table and "27.432" in table  # the paper's value beside ours
    assert len(list((tmp_path / "figures").glob("*.png"))) == 6  # best/median/worst x slices/projections
    volumes = sorted((tmp_path / "volumes").glob("*.nii.gz"))
    assert len(volumes) == n_test
    image = nib.load(volumes[0])
    data = np.asarray(image.dataobj)
    assert data.shape == (tiny_checkpoint.cube,) * 3 and data.min() >= -1024.5 and data.max() <= 1476.5
    assert nib.aff2axcodes(image.affine) == ("I", "P", "L")
    assert np.allclose(image.header.get_zooms(), tiny_checkpoint.spacing_mm)


def test_settings_of_the_evaluation_group_are_used(
    tiny_checkpoint: Any, run_eval: Callable[..., dict], tmp_path: Path
) -> None:
    """The top-level keys of conf/evaluation reach the evaluation: CI level, bootstrap size, figures off."""
    run_eval(tiny_checkpoint.path, tmp_path, "ci=0.5", "n_boot=50", "figures=false")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["ci"], summary["n_boot"]) == (0.5, 50)
    assert "| Metric | Mean | 50% CI |" in (tmp_path / "metrics.md").read_text()
    assert not (tmp_path / "figures").exists()


def _with_lateral_at(triplets: Path, copy: Path, angle: int) -> Path:
    """A copy of a triplet folder whose cases also hold a lateral view at ``angle``: the 90-degree view
    inverted, a picture the model answers differently."""
    shutil.copytree(triplets, copy)
    for path in copy.glob("*/ct_xray_data.h5"):
        with h5py.File(path, "a") as h5:
            h5.create_dataset(f"xray2_{angle:03d}", data=UINT8_MAX - h5["xray2"][()])
    return copy


def test_angle_override_reads_that_lateral_view(
    tiny_checkpoint: Any, run_eval: Callable[..., dict], tmp_path: Path
) -> None:
    root = _with_lateral_at(tiny_checkpoint.triplets, tmp_path / "triplets", 85)
    at_90 = run_eval(tiny_checkpoint.path, tmp_path / "eval90", f"data.root={root}")
    at_85 = run_eval(tiny_checkpoint.path, tmp_path / "eval85", f"data.root={root}", "data.lateral_angle=85")
    assert (at_90["lateral_angle"], at_85["lateral_angle"]) == (90, 85)
    assert at_85["n_cases"] == at_90["n_cases"] == tiny_checkpoint.n_test
    assert at_85["MAE0"] != pytest.approx(at_90["MAE0"])  # another input view, another prediction


def test_missing_angle_names_the_angle(tiny_checkpoint: Any, run_eval: Callable[..., dict], tmp_path: Path) -> None:
    with pytest.raises(TripletFileError, match="no lateral view at 85 degrees"):
        run_eval(tiny_checkpoint.path, tmp_path, "data.lateral_angle=85")


def test_errors_name_the_checkpoint(run_eval: Callable[..., dict], tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match=r"nowhere\.ckpt does not exist"):
        run_eval(tmp_path / "nowhere.ckpt", tmp_path)
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"bogus\.ckpt is not a PyTorch checkpoint"):
        run_eval(bogus, tmp_path)
    assert not (tmp_path / "metrics.json").exists()


def test_a_ray_lifting_checkpoint_is_evaluated_with_each_case_geometry(
    tiny_ray_lifting_checkpoint: Any, run_eval: Callable[..., dict], tmp_path: Path
) -> None:
    """x2ct-eval feeds the batches' projection matrices to a geometry-aware model: its per-case PSNR equals a
    reconstruction made here with the same matrices, and differs from one made with the matrices' lateral view
    turned (so the matrices really reach the network)."""

    metrics = run_eval(tiny_ray_lifting_checkpoint.path, tmp_path, "figures=false")
    assert metrics["n_cases"] == tiny_ray_lifting_checkpoint.n_test
    rows = {row["case_id"]: float(row["PSNR-3D"]) for row in csv.DictReader((tmp_path / "per_case.csv").open())}
    model, datamodule = load_checkpoint(tiny_ray_lifting_checkpoint.path, {}, "cpu")
    datamodule.setup("test")
    for batch in DataLoader(datamodule.test_set, batch_size=1):
        fake = model.reconstruct_batch(batch)
        assert legacy_x2ct_metrics(batch["ct"][0, 0], fake[0, 0])["PSNR-3D"] == pytest.approx(rows[batch["case_id"][0]])
        turned = dict(batch, proj_xray2=rotate_about_depth_axis(batch["proj_xray2"], torch.tensor([20.0])))
        assert not torch.allclose(model.reconstruct_batch(turned), fake)
