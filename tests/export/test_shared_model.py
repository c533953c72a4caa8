"""x2ct-export: a checkpoint -> model.safetensors + config.json + MODEL_CARD.md, loaded by x2ct-predict and
x2ct-eval without pickle and giving the checkpoint's volumes and metrics; EMA weights when present; the ray-lifting
model keeps its training geometry; bad folders and outputs are refused with one line."""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from x2ct import export_model
from x2ct.callbacks.ema import GENERATOR_EMA_KEY as EMA_KEY
from x2ct.evaluation import EvaluationSettings, evaluate_checkpoint
from x2ct.export.shared_model import TrainingDataNotFoundError, export_checkpoint
from x2ct.inference import prediction_geometry
from x2ct.inference.checkpoint import load_x2ct_checkpoint
from x2ct.inference.exported_model import (
    CONFIG_FILENAME,
    MODEL_CARD_FILENAME,
    WEIGHTS_FILENAME,
    ExportedModelError,
)
from x2ct.predict import predict

EVAL_SETTINGS = EvaluationSettings(n_boot=10, figures=False)


def run_export(ckpt_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Exit status of ``x2ct-export ckpt_path=... out=...`` run in-process through its console entry point."""
    monkeypatch.setattr(sys, "argv", ["x2ct-export", f"ckpt_path={ckpt_path}", f"out={out}"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    try:
        export_model.main()
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


def no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any unpickling fail for the rest of the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an exported model must load without pickle")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")):
        monkeypatch.setattr(module, name, refuse)


@pytest.fixture
def predict_volume(
    compose_config: Callable[..., Any], write_xray_pair: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> Callable[[Path], Any]:
    """``ckpt_path -> Prediction`` of x2ct-predict (aligned preprocessing) on one synthetic X-ray pair."""
    ap, lateral = write_xray_pair(tmp_path / "xrays")

    def run(ckpt_path: Path) -> Any:
        out = tmp_path / "predictions" / f"{ckpt_path.name}.nii.gz"
        overrides = [f"ckpt_path={ckpt_path}", f"ap={ap}", f"lateral={lateral}", f"out={out}", "preprocess=aligned"]
        return predict(compose_config("predict", overrides)).prediction

    return run


def test_export_then_predict_without_pickle_gives_the_checkpoint_volume(
    tiny_checkpoint: Any,
    predict_volume: Callable[[Path], Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    folder = tmp_path / "shared"
    assert run_export(tiny_checkpoint.path, folder, monkeypatch) == 0
    assert f"exported {folder}" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == sorted([WEIGHTS_FILENAME, CONFIG_FILENAME, MODEL_CARD_FILENAME])
    assert (folder / WEIGHTS_FILENAME).stat().st_mode == (folder / CONFIG_FILENAME).stat().st_mode  # umask, not 0600
    config = json.loads((folder / CONFIG_FILENAME).read_text())
    assert config["weights"]["source"] == "state_dict" and config["weights"]["ema"] is False
    assert config["generator"]["_target_"] == "x2ct.models.BiplanarGenerator"
    data = config["data"]
    assert data["cube"] == tiny_checkpoint.cube and data["xray_size"] == tiny_checkpoint.cube
    assert data["spacing_mm"] == list(tiny_checkpoint.spacing_mm) and data["xray_mode"] == "aligned"
    assert data["ct_window_hu"] == [-1024.0, 1476.0] and data["lateral_angle"] == 90.0
    card = (folder / MODEL_CARD_FILENAME).read_text()
    assert "not for diagnosis" in card and "Research use only" in card and "No evaluation was found" in card

    reference = predict_volume(tiny_checkpoint.path)
    no_pickle(monkeypatch)
    shared = predict_volume(folder)
    np.testing.assert_array_equal(shared.volume.hu, reference.volume.hu)
    assert shared.volume.spacing == pytest.approx(reference.volume.spacing)  # recorded, not read from the triplets


def test_eval_of_the_folder_matches_the_checkpoint_and_the_card_has_the_run_metrics(
    tiny_checkpoint: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run layout x2ct-train leaves: <run>/checkpoints/last.ckpt beside <run>/eval/ (metrics.json,
    summary.json); the card shows both PSNR definitions with CIs, for this very checkpoint."""
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    shutil.copy(tiny_checkpoint.path, checkpoint)
    reference = evaluate_checkpoint(checkpoint, {}, tmp_path / "run" / "eval", EVAL_SETTINGS)
    folder = tmp_path / "shared"
    assert run_export(checkpoint, folder, monkeypatch) == 0
    card = (folder / MODEL_CARD_FILENAME).read_text()
    assert "| PSNR-3D |" in card and "| PSNR-true |" in card and "peak 4095" in card and "true peak" in card
    assert "evaluated: this checkpoint (`last.ckpt`)" in card
    psnr = reference.summary["PSNR-3D"]
    assert f"| PSNR-3D | {psnr['mean']:.4g} | [{psnr['ci_low']:.4g}, {psnr['ci_high']:.4g}] |" in card
    recorded = json.loads((folder / CONFIG_FILENAME).read_text())["evaluation"]
    assert recorded["metrics"]["PSNR-true"] == pytest.approx(reference.metrics["PSNR-true"])

    shared = evaluate_checkpoint(folder, {}, tmp_path / "eval_shared", EVAL_SETTINGS)
    assert shared.metrics == pytest.approx(reference.metrics)


def test_the_ema_weights_are_exported_when_the_checkpoint_has_them(
    tiny_checkpoint: Any, predict_volume: Callable[[Path], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = torch.load(tiny_checkpoint.path, map_location="cpu", weights_only=True)
    prefix = "generator."
    generator = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    ema = {k: v + 0.01 if v.is_floating_point() else v.clone() for k, v in generator.items()}
    checkpoint[EMA_KEY] = ema
    path = tmp_path / "with_ema.ckpt"
    torch.save(checkpoint, path)
    folder = tmp_path / "shared"
    assert run_export(path, folder, monkeypatch) == 0

    weights = load_file(str(folder / WEIGHTS_FILENAME))
    assert weights.keys() == ema.keys()
    assert all(torch.equal(weights[k], ema[k]) for k in ema)
    assert any(not torch.equal(weights[k], generator[k]) for k in ema)  # not the trained weights
    config = json.loads((folder / CONFIG_FILENAME).read_text())
    assert config["weights"]["source"] == EMA_KEY and config["weights"]["ema"] is True
    assert "moving average" in (folder / MODEL_CARD_FILENAME).read_text()
    np.testing.assert_array_equal(predict_volume(folder).volume.hu, predict_volume(path).volume.hu)


def test_the_ray_lifting_model_keeps_its_training_geometry(
    tiny_ray_lifting_checkpoint: Any,
    predict_volume: Callable[[Path], Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The demo's kind of model: exported, it predicts what the checkpoint predicts, with the cone-beam geometry
    recorded in config.json and no training triplet read."""
    folder = tmp_path / "shared"
    assert run_export(tiny_ray_lifting_checkpoint.path, folder, monkeypatch) == 0
    config = json.loads((folder / CONFIG_FILENAME).read_text())
    assert config["generator"]["_target_"] == "x2ct.models.RayLiftingGenerator"
    attributes = config["training_geometry"]["attributes"]
    assert attributes["drr.geometry"] == "cone" and attributes["drr.sod_mm"] == 850.0
    assert "- Beam: cone" in (folder / MODEL_CARD_FILENAME).read_text()

    reference = predict_volume(tiny_ray_lifting_checkpoint.path)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an exported model must not read the training triplets")

    monkeypatch.setattr(prediction_geometry, "read_triplet", unreachable)
    shared = predict_volume(folder)
    np.testing.assert_array_equal(shared.volume.hu, reference.volume.hu)
    geometry = shared.volume.meta["geometry"]
    assert geometry["xray1"]["beam"] == "cone" and geometry["xray1"]["training_file"] == str(folder / CONFIG_FILENAME)


def test_a_ray_lifting_checkpoint_whose_training_data_moved_needs_data_root(
    tiny_ray_lifting_checkpoint: Any, tmp_path: Path
) -> None:
    """Without its training triplets the export would record no geometry and predictions would silently assume
    the aligned parallel one: refused, unless data_root says where the data went."""
    checkpoint = torch.load(tiny_ray_lifting_checkpoint.path, map_location="cpu", weights_only=True)
    checkpoint["datamodule_hyper_parameters"]["root"] = "moved/data"  # relative, as `make demo` wrote before
    moved = tmp_path / "moved.ckpt"
    torch.save(checkpoint, moved)
    with pytest.raises(TrainingDataNotFoundError, match=r"moved\.ckpt: the training triplets under moved/data"):
        export_checkpoint(moved, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    export_checkpoint(moved, tmp_path / "shared", data_root=tiny_ray_lifting_checkpoint.triplets)
    config = json.loads((tmp_path / "shared" / CONFIG_FILENAME).read_text())
    assert config["training_geometry"]["attributes"]["drr.geometry"] == "cone"


def test_a_file_as_out_is_refused_with_one_line(
    tiny_checkpoint: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    taken = tmp_path / "model"
    taken.write_text("a file")
    assert run_export(tiny_checkpoint.path, taken, monkeypatch) != 0
    assert capsys.readouterr().err.strip() == f"x2ct-export: error: out={taken} is a file: give a folder for " + (
        f"{WEIGHTS_FILENAME}, {CONFIG_FILENAME}, ..."
    )
    assert taken.read_text() == "a file"


def test_broken_or_foreign_folders_are_refused(tiny_checkpoint: Any, tmp_path: Path) -> None:
    with pytest.raises(ExportedModelError, match=rf"{tmp_path} is a folder without {CONFIG_FILENAME}"):
        load_x2ct_checkpoint(tmp_path)
    folder = tmp_path / "shared"
    export_checkpoint(tiny_checkpoint.path, folder)
    config_path = folder / CONFIG_FILENAME
    config = json.loads(config_path.read_text())

    weights = folder / WEIGHTS_FILENAME
    original = weights.read_bytes()
    weights.write_bytes(original[:-8])
    with pytest.raises(ExportedModelError, match=r"does not match the sha256 recorded in config.json"):
        load_x2ct_checkpoint(folder)
    weights.write_bytes(original)

    marker = tmp_path / "marker"
    config_path.write_text(json.dumps(config | {"generator": {"_target_": "os.mkdir", "path": str(marker)}}))
    with pytest.raises(ExportedModelError, match=rf"{config_path}: refused _target_ 'os.mkdir' at generator._target_"):
        load_x2ct_checkpoint(folder)
    assert not marker.exists()

    config_path.write_text(json.dumps(config | {"format_version": 99}))
    with pytest.raises(ExportedModelError, match=r"format_version 99; this x2ct reads 1"):
        load_x2ct_checkpoint(folder)
