"""The evaluation loop: a checkpoint's test (or validation) cases -> per-case metrics -> summary with bootstrap
CIs -> result files and figures (:mod:`x2ct.evaluation.writers`).

Runs on one device with batch 1, so the numbers do not depend on how many GPUs trained the model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate
from tqdm import tqdm

from x2ct.data.datamodule import X2CTDataModule
from x2ct.data.normalization import ct_to_hu, resampled_spacing
from x2ct.errors import InvalidOptionError
from x2ct.evaluation.writers import RANKING_METRIC, write_figures, write_outputs
from x2ct.inference.checkpoint import load_x2ct_checkpoint
from x2ct.inference.data_mismatch import evaluation_description, training_description, warn_data_mismatches
from x2ct.io.hdf5 import read_spacing
from x2ct.io.nifti import save_volume_nifti
from x2ct.io.volume import Volume, canonical_affine
from x2ct.metrics import legacy_x2ct_metrics, modern_metrics, official_rule_keeps, summarize
from x2ct.models.gan_module import X2CTGANModule
from x2ct.utils.output_paths import check_output_folder
from x2ct.viz.figures import DISPLAY_HU_WINDOW

log = logging.getLogger(__name__)

DEFAULT_SPACING_MM = 1.0  # official files carry no spacing: the paper's 1 mm grid
SPLITS: tuple[str, ...] = ("test", "val")
WINDOW_LENGTH = 2  # figure_hu_window: [low, high]

__all__ = ["RANKING_METRIC", "EvaluationResult", "EvaluationSettings", "evaluate_checkpoint", "load_checkpoint"]


def to_device(batch: Mapping[str, Any], device: str) -> dict[str, Any]:
    """The batch with its tensors on ``device`` (case ids and other values as they are)."""
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


@dataclass
class EvaluationResult:
    """Per-case rows (case_id plus every metric), dataset summary, and where the files went."""

    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, float]]
    metrics: dict[str, Any]
    out_dir: Path


def load_checkpoint(
    ckpt_path: str | Path, data_overrides: Mapping[str, Any], device: str
) -> tuple[X2CTGANModule, X2CTDataModule]:
    """The model of an x2ct-train checkpoint and its data module (trained settings, ``data_overrides`` on top).

    The checkpoint is read once, with torch's ``weights_only`` loader, and checked to be an X2CT-GAN checkpoint;
    errors name the file."""
    loaded = load_x2ct_checkpoint(ckpt_path, device=device)
    params = loaded.datamodule_params | {key: value for key, value in data_overrides.items() if value is not None}
    if "root" not in params:
        raise InvalidOptionError(f"{ckpt_path} does not say which data it was trained on: pass data.root=...")
    params["num_workers"] = 0
    datamodule = X2CTDataModule(**params)
    warn_data_mismatches(training_description(loaded), evaluation_description(datamodule))  # once per run
    return loaded.model, datamodule


def evaluation_set(datamodule: X2CTDataModule, split: str) -> Any:
    """The test set, or the validation hold-out of train.txt."""
    if split == "test":
        datamodule.setup("test")
        return datamodule.test_set
    if split == "val":
        datamodule.setup("fit")
        return datamodule.val_set
    raise InvalidOptionError(f"split must be 'test' or 'val', got {split!r}")


@dataclass
class EvaluationSettings:
    """What to compute and write (see conf/eval.yaml)."""

    split: str = "test"
    device: str = "cpu"
    bone_threshold_hu: float = 250.0
    n_boot: int = 1000
    ci: float = 0.95
    seed: int = 0
    figures: bool = True
    figure_hu_window: tuple[float, float] = DISPLAY_HU_WINDOW
    save_nifti: bool = False

    def __post_init__(self) -> None:
        """Every value checked before any work starts; InvalidOptionError names the option."""
        if self.split not in SPLITS:
            raise InvalidOptionError(f"split must be 'test' or 'val', got {self.split!r}")
        _check_device(self.device)
        _finite(self.bone_threshold_hu, "bone_threshold_hu")
        for name, minimum in (("n_boot", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise InvalidOptionError(f"{name} must be a whole number >= {minimum}, got {value!r}")
        if not 0.0 < _finite(self.ci, "ci") < 1.0:
            raise InvalidOptionError(f"ci must lie strictly between 0 and 1 (e.g. 0.95), got {self.ci!r}")
        for name in ("figures", "save_nifti"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidOptionError(f"{name} must be true or false, got {getattr(self, name)!r}")
        window = self.figure_hu_window
        if (
            isinstance(window, str)
            or len(window) != WINDOW_LENGTH
            or not _finite(window[0], "figure_hu_window") < _finite(window[1], "figure_hu_window")
        ):
            raise InvalidOptionError(f"figure_hu_window must be [low, high] HU with low < high, got {window!r}")


def _finite(value: Any, option: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidOptionError(f"{option} must be a finite number, got {value!r}")
    return float(value)


def _check_device(device: Any) -> None:
    """``device`` names a torch device that exists here (``cpu``, ``cuda``, ``cuda:1``); else InvalidOptionError."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:  # torch rejects an unknown device string with RuntimeError
        raise InvalidOptionError(f"device must be cpu or cuda, got {device!r}") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidOptionError(f"device={device} but no CUDA device is available (use device=cpu)")


def evaluate_checkpoint(
    ckpt_path: str | Path, data_overrides: Mapping[str, Any], out_dir: Path, settings: EvaluationSettings
) -> EvaluationResult:
    """Evaluate ``ckpt_path`` on its test (or validation) cases and write the result files into ``out_dir``."""
    device = settings.device
    check_output_folder(out_dir, "out_dir")
    model, datamodule = load_checkpoint(ckpt_path, data_overrides, device)
    dataset = evaluation_set(datamodule, settings.split)
    if dataset is None or len(dataset) == 0:
        raise InvalidOptionError(f"no {settings.split} cases to evaluate in {datamodule.hparams.root}")
    window = datamodule.window
    rows: list[dict[str, Any]] = []
    loader = DataLoader(dataset, batch_size=1, shuffle=False)
    for batch in tqdm(loader, desc=f"eval {settings.split}", unit="case"):
        case_id = batch["case_id"][0]
        case = predict_case(model, batch, device)
        spacing = _spacing(dataset, case_id, datamodule.cube)
        row: dict[str, Any] = {"case_id": case_id}
        row |= legacy_x2ct_metrics(case["real"], case["fake"])
        row |= modern_metrics(
            case["real"],
            case["fake"],
            spacing_mm=spacing,
            ct_window_hu=(window.low_hu, window.high_hu),
            bone_threshold_hu=settings.bone_threshold_hu,
        )
        rows.append(row)
        if settings.save_nifti:
            hu = ct_to_hu(case["fake"].numpy(), window).astype(np.float32)
            volume = Volume(hu=hu, labels=None, spacing=spacing, affine=canonical_affine(spacing), case_id=case_id)
            save_volume_nifti(volume, out_dir / "volumes" / f"{case_id}.nii.gz", what="ct")
    valid = [row for row in rows if official_rule_keeps(row)]
    skipped = sorted(row["case_id"] for row in rows if not official_rule_keeps(row))
    if skipped:
        log.warning(
            "skipping %d case(s) whose cosine similarity is NaN or > 1 (official rule): %s", len(skipped), skipped
        )
    if not valid:
        raise ValueError(f"every case of {ckpt_path} was skipped by the cosine rule: {skipped}")
    names = [name for name in rows[0] if name != "case_id"]
    summary = summarize(
        [{n: float(r[n]) for n in names} for r in valid], n_boot=settings.n_boot, ci=settings.ci, seed=settings.seed
    )
    metrics: dict[str, Any] = {name: summary[name]["mean"] for name in names}
    metrics |= {"n_cases": len(valid), "lateral_angle": datamodule.lateral_angle}
    extra = {
        "ckpt_path": str(ckpt_path),
        "split": settings.split,
        "skipped_cases": skipped,
        "ci": settings.ci,
        "n_boot": settings.n_boot,
    }
    write_outputs(out_dir, rows, summary, metrics, extra)
    if settings.figures:
        # Only the figures' cases are predicted again: keeping every case's volumes would cost
        # 4 x cube^3 floats per case (1.4 GiB for the paper's 88 cases at 128^3).
        def picked_case(case_id: str) -> dict[str, torch.Tensor]:
            sample = dataset[dataset.case_ids.index(case_id)]
            return predict_case(model, default_collate([sample]), device)

        ct_window = (window.low_hu, window.high_hu)
        write_figures(out_dir / "figures", valid, picked_case, settings.figure_hu_window, ct_window)
    return EvaluationResult(rows=rows, summary=summary, metrics=metrics, out_dir=out_dir)


def predict_case(model: X2CTGANModule, batch: Mapping[str, Any], device: str) -> dict[str, torch.Tensor]:
    """The model's prediction for a batch of one case: ``real`` and ``fake`` (D, H, W) in [0, 1], ``xray1`` and
    ``xray2`` (S, S), all on the CPU."""
    with torch.no_grad():
        fake = model.reconstruct_batch(to_device(batch, device)).cpu()
    return {"real": batch["ct"][0, 0], "fake": fake[0, 0], "xray1": batch["xray1"][0, 0], "xray2": batch["xray2"][0, 0]}


def _spacing(dataset: Any, case_id: str, cube: int) -> tuple[float, float, float]:
    """The case's voxel size on the model's cube (its prepared spacing, 1 mm for official files, resampled).
    Reads only the file's attributes and the CT's shape, not its data."""
    stored, shape = read_spacing(dataset.path_of(case_id))
    spacing = stored if stored is not None else (DEFAULT_SPACING_MM,) * 3
    return tuple(float(s) for s in resampled_spacing(spacing, shape, cube))  # type: ignore[return-value]
