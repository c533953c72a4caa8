"""The demo report: a run's checkpoint against the mean-volume baseline on the test cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from x2ct import demo_report
from x2ct.demo_report import compare
from x2ct.evaluation import load_checkpoint
from x2ct.metrics import legacy_x2ct_metrics
from x2ct.models.baseline import MeanVolumeBaseline
from x2ct.viz import DISPLAY_HU_WINDOW

REPORTED = ("MAE0", "PSNR-3D")  # the tiny model has no 3D SSIM (val_ssim=false)


def _mean_metrics(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Dataset means of the legacy metrics over (real, fake) (D, H, W) pairs."""
    per_case = [legacy_x2ct_metrics(real, fake) for real, fake in pairs]
    return {name: sum(case[name] for case in per_case) / len(per_case) for name in REPORTED}


def _expected(ckpt: Path) -> tuple[dict[str, float], dict[str, float]]:
    """The model's and the mean-volume baseline's test metrics, computed here case by case."""
    model, datamodule = load_checkpoint(ckpt, {}, "cpu")
    datamodule.setup("fit")
    train_cts = torch.stack([sample["ct"][0] for sample in datamodule.train_set])
    mean_volume = train_cts.double().mean(dim=0).float()
    datamodule.setup("test")
    model_pairs, baseline_pairs = [], []
    for batch in DataLoader(datamodule.test_set, batch_size=1):
        real = batch["ct"][0, 0]
        with torch.no_grad():
            model_pairs.append((real, model.reconstruct(batch["xray1"], batch["xray2"])[0, 0]))
        baseline_pairs.append((real, mean_volume))
    return _mean_metrics(model_pairs), _mean_metrics(baseline_pairs)


def test_report_compares_model_and_baseline(tiny_checkpoint: Any, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    ckpt = shutil.copy(tiny_checkpoint.path, run_dir / "checkpoints" / "last.ckpt")
    report = compare(run_dir, None, tmp_path / "report", n_figures=1)
    assert report["n_test_cases"] == tiny_checkpoint.n_test
    assert Path(report["data_root"]) == tiny_checkpoint.triplets
    expected_model, expected_baseline = _expected(Path(ckpt))
    assert list(report["model"]) == list(REPORTED)
    for name in REPORTED:
        assert report["model"][name] == pytest.approx(expected_model[name], rel=1e-4), name
        assert report["mean_volume_baseline"][name] == pytest.approx(expected_baseline[name], rel=1e-4), name
    # lower MAE0 and higher PSNR-3D are better
    assert report["model_beats_baseline"]["MAE0"] == (expected_model["MAE0"] < expected_baseline["MAE0"])
    assert report["model_beats_baseline"]["PSNR-3D"] == (expected_model["PSNR-3D"] > expected_baseline["PSNR-3D"])
    assert json.loads((tmp_path / "report" / "report.json").read_text())["model"] == pytest.approx(report["model"])
    markdown = (tmp_path / "report" / "report.md").read_text()
    psnr_model, psnr_baseline = report["model"]["PSNR-3D"], report["mean_volume_baseline"]["PSNR-3D"]
    assert f"| PSNR-3D | {psnr_model:.4f} | {psnr_baseline:.4f} |" in markdown
    assert len(report["figures"]) == 1 and Path(report["figures"][0]).is_file()
    # per angle: x2ct-eval's own numbers at the stored angles; 75 degrees is not stored in the tiny triplets
    assert list(report["model_by_angle"]) == ["90"] and report["angles_not_stored"] == [75.0]
    evaluated = json.loads((tmp_path / "report" / "angle_90" / "metrics.json").read_text())
    for name in demo_report.ANGLE_METRICS:
        assert report["model_by_angle"]["90"][name] == pytest.approx(evaluated[name]), name
    assert "no lateral view at 75 degrees" in markdown


def test_paper_model_reference_comes_from_the_committed_study(tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    results.write_text(
        "data.lateral_angle,metric,mean,ci_low,ci_high,n,job\n90,PSNR-3D,28.5,28,29,12,a\n75,Dice-bone,0.3,0.2,0.4,12,b\n"
        "75,MAE,9,8,10,12,b\n"
    )
    assert demo_report.paper_model_results(results, [90.0, 75.0]) == {"90": {"PSNR-3D": 28.5}, "75": {"Dice-bone": 0.3}}
    assert demo_report.paper_model_results(tmp_path / "absent.csv", [90.0]) == {}
    committed = demo_report.paper_model_results(demo_report.PAPER_MODEL_RESULTS, [90.0, 75.0])
    assert set(committed) == {"90", "75"} and set(committed["90"]) == set(demo_report.ANGLE_METRICS)


def test_missing_checkpoint_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoints"):
        compare(tmp_path, None, tmp_path / "report")


def _run_dir(folder: Path, ckpt: Path, **datamodule_params: Any) -> Path:
    """A run folder whose ``checkpoints/last.ckpt`` is ``ckpt`` with ``datamodule_params`` changed."""
    run_dir = folder / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    checkpoint["datamodule_hyper_parameters"].update(datamodule_params)
    torch.save(checkpoint, run_dir / "checkpoints" / "last.ckpt")
    return run_dir


def test_figures_use_the_checkpoint_ct_window(
    tiny_checkpoint: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    original = demo_report.triplanar_figure

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(demo_report, "triplanar_figure", spy)
    run_dir = _run_dir(tmp_path, tiny_checkpoint.path, ct_window_hu=[-1000.0, 1000.0])
    compare(run_dir, None, tmp_path / "report", n_figures=1)
    assert [tuple(call["ct_window_hu"]) for call in calls] == [(-1000.0, 1000.0)]
    assert [tuple(call["hu_window"]) for call in calls] == [DISPLAY_HU_WINDOW]


def test_baseline_mean_ignores_the_training_augmentation(
    tiny_checkpoint: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint trained with augmentation (every CT flipped here) gets the mean of the stored training CTs."""
    fitted: list[torch.Tensor] = []
    original = MeanVolumeBaseline.fit_mean

    def spy(self: MeanVolumeBaseline, batches: Any) -> MeanVolumeBaseline:
        result = original(self, batches)
        fitted.append(self.mean_volume.clone())
        return result

    monkeypatch.setattr(MeanVolumeBaseline, "fit_mean", spy)
    run_dir = _run_dir(tmp_path, tiny_checkpoint.path, augment={"flip_lr": 1.0})
    compare(run_dir, None, tmp_path / "report", n_figures=0)
    _, plain = load_checkpoint(tiny_checkpoint.path, {}, "cpu")
    plain.setup("fit")
    stored_mean = torch.stack([sample["ct"] for sample in plain.train_set]).double().mean(dim=0, keepdim=True)
    assert len(fitted) == 1
    assert not torch.allclose(stored_mean.float(), stored_mean.flip(-1).float())  # the flip would show
    torch.testing.assert_close(fitted[0], stored_mean.float())


def test_report_of_a_ray_lifting_run(tiny_ray_lifting_checkpoint: Any, tmp_path: Path) -> None:
    """The geometry-aware model through the report's Lightning test loop (inference-mode batches) and figures."""
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_ray_lifting_checkpoint.path, run_dir / "checkpoints" / "last.ckpt")
    report = compare(run_dir, None, tmp_path / "report", n_figures=1)
    assert report["n_test_cases"] == tiny_ray_lifting_checkpoint.n_test
    assert all(torch.isfinite(torch.tensor(value)) for value in report["model"].values())
    assert list((tmp_path / "report").glob("*_slices_*deg.png"))
