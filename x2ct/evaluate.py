"""``x2ct-eval``: evaluate a checkpoint on the test cases with the paper's metrics and modern ones.

    x2ct-eval ckpt_path=outputs/train/runs/<run>/checkpoints/last.ckpt
    x2ct-eval ckpt_path=... data.root=data/colonog data.lateral_angle=85
    x2ct-eval -m ckpt_path=... data.lateral_angle=90,85,80,75          # robustness to the lateral angle

Writes to the run's output folder: ``metrics.json`` (dataset means: the legacy X2CT names first, then the modern
metrics, then ``n_cases`` and ``lateral_angle``), ``summary.json`` (mean, bootstrap CI and n per metric),
``per_case.csv``, ``metrics.md`` (a table laid out like the paper's Table 1, with CIs), ``figures/`` (best, median
and worst case by PSNR-3D) and optionally ``volumes/<case_id>.nii.gz`` (predictions in HU).
Runs on one device with batch 1, so the numbers do not depend on how many GPUs trained the model.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from tqdm import tqdm

from x2ct.config_dir import CONFIG_DIR
from x2ct.data.datamodule import X2CTDataModule
from x2ct.data.nifti_io import save_volume_nifti
from x2ct.data.normalization import ct_to_hu, resampled_spacing
from x2ct.data.volume import Volume, canonical_affine
from x2ct.inference.checkpoint import load_x2ct_checkpoint
from x2ct.metrics import (
    LEGACY_METRIC_NAMES,
    legacy_x2ct_metrics,
    modern_metrics,
    official_rule_keeps,
    summarize,
)
from x2ct.models.gan_module import X2CTGANModule
from x2ct.utils.atomic import atomic_write_text
from x2ct.viz.figures import reprojection_figure, save_png, triplanar_figure

log = logging.getLogger(__name__)

DEFAULT_SPACING_MM = 1.0  # official files carry no spacing: the paper's 1 mm grid
RANKING_METRIC = "PSNR-3D"
# The paper's Table 1 (n = 88 COLONOG test CTs, 3D Slicer DRRs): a reference column, not a target for phantoms.
PAPER_TABLE1: dict[str, float] = {
    "MAE0": 0.0342,
    "MSE0": 0.005,
    "MAE": 85.359,
    "MSE": 31439.027,
    "CosineSimilarity": 0.4840,
    "PSNR-3D": 27.432,
    "PSNR-1": 28.812,
    "PSNR-2": 28.764,
    "PSNR-3": 27.599,
    "PSNR-avg": 28.394,
    "SSIM-avg": 0.468,
}


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
        raise ValueError(f"{ckpt_path} does not say which data it was trained on: pass data.root=...")
    params["num_workers"] = 0
    return loaded.model, X2CTDataModule(**params)


def evaluation_set(datamodule: X2CTDataModule, split: str) -> Any:
    """The test set, or the validation hold-out of train.txt."""
    if split == "test":
        datamodule.setup("test")
        return datamodule.test_set
    if split == "val":
        datamodule.setup("fit")
        return datamodule.val_set
    raise ValueError(f"split must be 'test' or 'val', got {split!r}")


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
    figure_hu_window: tuple[float, float] = (-400.0, 1200.0)
    save_nifti: bool = False


def evaluate(cfg: DictConfig) -> EvaluationResult:
    """Run the evaluation described by a composed ``eval`` config and write its files."""
    settings = EvaluationSettings(
        split=cfg.split,
        device=cfg.device,
        bone_threshold_hu=cfg.bone_threshold_hu,
        n_boot=cfg.n_boot,
        ci=cfg.ci,
        seed=cfg.seed,
        figures=cfg.figures,
        figure_hu_window=tuple(cfg.figure_hu_window),
        save_nifti=cfg.save_nifti,
    )
    return evaluate_checkpoint(cfg.ckpt_path, dict(cfg.data), Path(cfg.out_dir), settings)


def evaluate_checkpoint(
    ckpt_path: str | Path, data_overrides: Mapping[str, Any], out_dir: Path, settings: EvaluationSettings
) -> EvaluationResult:
    """Evaluate ``ckpt_path`` on its test (or validation) cases and write the result files into ``out_dir``."""
    device = settings.device
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA device is available")
    model, datamodule = load_checkpoint(ckpt_path, data_overrides, device)
    dataset = evaluation_set(datamodule, settings.split)
    if dataset is None or len(dataset) == 0:
        raise ValueError(f"no {settings.split} cases to evaluate in {datamodule.hparams.root}")
    window = datamodule.window
    rows: list[dict[str, Any]] = []
    kept: dict[str, dict[str, torch.Tensor]] = {}
    loader = DataLoader(dataset, batch_size=1, shuffle=False)
    for batch in tqdm(loader, desc=f"eval {settings.split}", unit="case"):
        case_id = batch["case_id"][0]
        with torch.no_grad():
            fake = model.reconstruct(batch["xray1"].to(device), batch["xray2"].to(device)).cpu()
        real = batch["ct"]
        spacing = _spacing(dataset, case_id, datamodule.cube)
        row: dict[str, Any] = {"case_id": case_id}
        row |= legacy_x2ct_metrics(real[0, 0], fake[0, 0])
        row |= modern_metrics(
            real[0, 0],
            fake[0, 0],
            spacing_mm=spacing,
            ct_window_hu=(window.low_hu, window.high_hu),
            bone_threshold_hu=settings.bone_threshold_hu,
        )
        rows.append(row)
        kept[case_id] = {
            "real": real[0, 0],
            "fake": fake[0, 0],
            "xray1": batch["xray1"][0, 0],
            "xray2": batch["xray2"][0, 0],
        }
        if settings.save_nifti:
            hu = ct_to_hu(fake[0, 0].numpy(), window).astype(np.float32)
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
        write_figures(out_dir / "figures", valid, kept, settings.figure_hu_window)
    return EvaluationResult(rows=rows, summary=summary, metrics=metrics, out_dir=out_dir)


def _spacing(dataset: Any, case_id: str, cube: int) -> tuple[float, float, float]:
    """The case's voxel size on the model's cube (its prepared spacing, 1 mm for official files, resampled).
    Reads only the file's attributes and the CT's shape, not its data."""
    with h5py.File(dataset.path_of(case_id), "r") as h5:
        stored = h5.attrs.get("spacing_mm")
        shape = h5["ct"].shape
    spacing = stored if stored is not None else [DEFAULT_SPACING_MM] * 3
    return tuple(float(s) for s in resampled_spacing(spacing, shape, cube))  # type: ignore[return-value]


def write_outputs(
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Mapping[str, float]],
    metrics: Mapping[str, Any],
    extra: Mapping[str, Any],
) -> None:
    """metrics.json, summary.json (with ``extra`` provenance), per_case.csv and metrics.md, each atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(out_dir / "summary.json", json.dumps({**extra, "metrics": summary}, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / "per_case.csv", buffer.getvalue())
    atomic_write_text(out_dir / "metrics.md", format_table(summary, metrics, float(extra["ci"])))


def format_table(summary: Mapping[str, Mapping[str, float]], metrics: Mapping[str, Any], ci: float) -> str:
    """Markdown: the legacy metrics laid out like the paper's Table 1 (with CIs and the paper's values), then
    the modern metrics."""
    percent = round(100 * ci)
    lines = [
        f"Test cases: {metrics['n_cases']}, lateral view at {metrics['lateral_angle']:g} degrees.",
        "",
        f"| Metric | Mean | {percent}% CI | Paper (Table 1, n=88) |",
        "|---|---|---|---|",
    ]
    for name in LEGACY_METRIC_NAMES:
        if name in summary:
            lines.append(_table_row(name, summary[name], PAPER_TABLE1.get(name)))
    modern = [name for name in summary if name not in LEGACY_METRIC_NAMES]
    if modern:
        lines += [
            "",
            "Modern metrics (true peak, HU, 3D SSIM, bone morphology):",
            "",
            f"| Metric | Mean | {percent}% CI | n |",
            "|---|---|---|---|",
        ]
        lines += [_table_row(name, summary[name], None, with_n=True) for name in modern]
    return "\n".join(lines) + "\n"


def _table_row(name: str, stats: Mapping[str, float], paper: float | None, with_n: bool = False) -> str:
    last = str(int(stats["n"])) if with_n else ("" if paper is None else f"{paper:g}")
    return f"| {name} | {stats['mean']:.4f} | [{stats['ci_low']:.4f}, {stats['ci_high']:.4f}] | {last} |"


def write_figures(
    folder: Path,
    rows: Sequence[Mapping[str, Any]],
    kept: Mapping[str, Mapping[str, torch.Tensor]],
    hu_window: tuple[float, float],
) -> None:
    """Tri-planar slices and projections of the best, median and worst case by PSNR-3D."""
    ranked = sorted(rows, key=lambda row: float(row[RANKING_METRIC]))
    picks = {"worst": ranked[0], "median": ranked[len(ranked) // 2], "best": ranked[-1]}
    for label, row in picks.items():
        case = kept[row["case_id"]]
        title = f"{label}: {row['case_id']} (PSNR-3D {float(row[RANKING_METRIC]):.2f} dB)"
        save_png(
            triplanar_figure(case["real"], case["fake"], hu_window=hu_window, suptitle=title),
            folder / f"{label}_{row['case_id']}_slices.png",
        )
        save_png(
            reprojection_figure(case["xray1"], case["xray2"], case["fake"], suptitle=title),
            folder / f"{label}_{row['case_id']}_projections.png",
        )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def _main(cfg: DictConfig) -> float:
    result = evaluate(cfg)
    print(format_table(result.summary, result.metrics, cfg.ci))
    print(f"results: {result.out_dir}")
    return float(result.metrics[RANKING_METRIC])


def main() -> None:
    """Console-script entry point."""
    _main()


if __name__ == "__main__":
    main()
