"""MODEL_CARD.md of an exported model: data, DRR geometry and X-ray mode, training angles, metrics, intended use
and limitations.

Metrics come from the run's evaluation when it lies next to the checkpoint: ``x2ct-train evaluation.enabled=true``
writes ``<run>/eval/metrics.json`` and ``summary.json`` beside ``<run>/checkpoints/``; ``summary.json`` names the
checkpoint evaluated, so the card says whether the numbers belong to the exported checkpoint or to another one of
the same run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVAL_FOLDER = "eval"
METRICS_FILENAME = "metrics.json"
SUMMARY_FILENAME = "summary.json"
# The card's metrics, in order, with what each one is (both PSNR definitions: the legacy one of the X2CT-GAN
# code and papers, and the true-peak one).
CARD_METRICS: dict[str, str] = {
    "PSNR-3D": "legacy X2CT PSNR (dB): CT scaled to 0-2500, peak 4095 (the papers' number; not a true PSNR)",
    "PSNR-true": "PSNR (dB) with the true peak: 10 log10(1 / MSE) on the model's [0, 1] scale",
    "SSIM-avg": "legacy X2CT SSIM: mean of the 2D SSIMs over slices along D, H, W",
    "SSIM-3D-gauss": "3D SSIM (Gaussian window 11^3)",
    "MAE0": "mean absolute error on the [0, 1] scale",
    "MAE-HU": "mean absolute error (HU)",
    "Dice-bone": "Dice of bone (HU above the bone threshold)",
    "HD95-mm": "95th percentile Hausdorff distance of the bone surfaces (mm)",
}


@dataclass(frozen=True)
class EvalResults:
    """An x2ct-eval result folder: dataset means (metrics.json) and, when present, CIs (summary.json)."""

    folder: Path
    metrics: dict[str, Any]
    summary: dict[str, Any]
    same_checkpoint: bool | None  # None: summary.json does not say which checkpoint was evaluated

    def record(self) -> dict[str, Any]:
        """What config.json keeps: the card's metrics, the number of cases, the angle and the split."""
        kept = {name: self.metrics[name] for name in CARD_METRICS if name in self.metrics}
        return {
            "metrics": kept,
            "n_cases": self.metrics.get("n_cases"),
            "lateral_angle": self.metrics.get("lateral_angle"),
            "split": self.summary.get("split"),
            "evaluated_checkpoint": Path(str(self.summary["ckpt_path"])).name if "ckpt_path" in self.summary else None,
            "same_checkpoint": self.same_checkpoint,
        }


def find_eval_results(ckpt_path: Path) -> EvalResults | None:
    """The run's ``eval/`` results next to ``ckpt_path`` (``<run>/checkpoints/x.ckpt`` -> ``<run>/eval``, or an
    ``eval/`` beside the file), or None."""
    for folder in (ckpt_path.parent.parent / EVAL_FOLDER, ckpt_path.parent / EVAL_FOLDER):
        metrics_file = folder / METRICS_FILENAME
        if not metrics_file.is_file():
            continue
        try:
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            summary_file = folder / SUMMARY_FILENAME
            summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(metrics, dict) or not isinstance(summary, dict):
            continue
        evaluated = summary.get("ckpt_path")
        same = None if evaluated is None else _same_file(Path(str(evaluated)), ckpt_path, folder)
        return EvalResults(folder, metrics, summary, same)
    return None


def _same_file(evaluated: Path, ckpt_path: Path, eval_folder: Path) -> bool:
    candidates = [evaluated] if evaluated.is_absolute() else [evaluated, eval_folder.parent / evaluated]
    return any(c.exists() and c.resolve() == ckpt_path.resolve() for c in candidates)


def _value(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "n/a"
    if isinstance(value, list):
        return " x ".join(_value(v) for v in value)
    return str(value)


def _geometry_lines(geometry: Mapping[str, Any] | None) -> list[str]:
    if not geometry:
        return ["- The training triplets were not reachable at export: the DRR geometry is not recorded."]
    attrs = geometry.get("attributes", {})
    beam = attrs.get("drr.geometry")
    lines = [
        f"- Beam: {beam or 'aligned parallel (no geometry recorded)'}",
        f"- DRR mode: {_value(attrs.get('drr.mode'))} (physical: attenuation line integrals; slicer: 3D Slicer look)",
    ]
    for key, what in (("drr.sid_mm", "source-detector distance (mm)"), ("drr.sod_mm", "source-isocentre (mm)")):
        if attrs.get(key) is not None:
            lines.append(f"- {what}: {_value(attrs[key])}")
    lines.append(f"- Training CT grid: {_value(geometry.get('ct_shape'))} voxels (D, H, W)")
    return lines


def _metric_lines(results: EvalResults | None) -> list[str]:
    if results is None:
        return [
            "No evaluation was found next to the checkpoint (`<run>/eval/metrics.json`, written by",
            "`x2ct-train evaluation.enabled=true` or `x2ct-eval ... out_dir=<run>/eval`).",
        ]
    metrics, summary = results.metrics, results.summary.get("metrics", {})
    which = {True: "this checkpoint", False: "another checkpoint of the same run", None: "a checkpoint of this run"}
    evaluated = results.summary.get("ckpt_path")
    lines = [
        f"x2ct-eval on {_value(metrics.get('n_cases'))} {results.summary.get('split', 'test')} cases, lateral view at "
        f"{_value(metrics.get('lateral_angle'))} degrees; evaluated: {which[results.same_checkpoint]}"
        + (f" (`{Path(str(evaluated)).name}`)" if evaluated else "")
        + ".",
        "",
        "| metric | mean | CI | definition |",
        "|---|---|---|---|",
    ]
    for name, definition in CARD_METRICS.items():
        if name not in metrics:
            continue
        stats = summary.get(name, {})
        ci = f"[{_value(stats.get('ci_low'))}, {_value(stats.get('ci_high'))}]" if "ci_low" in stats else "-"
        lines.append(f"| {name} | {_value(metrics[name])} | {ci} | {definition} |")
    return lines


def model_card(config: Mapping[str, Any], results: EvalResults | None) -> str:
    """The markdown card of an exported model from its ``config.json`` content and evaluation."""
    data, weights, source = config["data"], config["weights"], config.get("source", {})
    generator = config["generator"]
    angles = data.get("train_lateral_angles")
    window = data["ct_window_hu"]
    lines = [
        f"# x2ct model: {str(generator.get('_target_', '?')).rsplit('.', 1)[-1]}",
        "",
        "Reconstructs a 3D CT of the spine from two X-rays (AP and lateral) with a GAN generator (X2CT-GAN family).",
        f"Exported by x2ct {source.get('x2ct_version', '?')} from `{source.get('checkpoint', '?')}` (epoch "
        f"{_value(source.get('epoch'))}, step {_value(source.get('global_step'))}).",
        "",
        "## Files",
        f"- `model.safetensors`: the generator's weights ({_value(weights.get('n_parameters'))} parameters; "
        + ("the exponential moving average of the weights" if weights.get("ema") else "the trained weights")
        + ").",
        "- `config.json`: the generator's config and the data settings below; loads without pickle:",
        "  `x2ct-predict ckpt_path=<this folder> ...`, `x2ct-eval ckpt_path=<this folder> data.root=...`.",
        "",
        "## Data",
        f"- Output volume: {data['cube']}^3 voxels (D, H, W = superior->inferior, anterior->posterior, right->left),"
        f" voxel size {_value(data.get('spacing_mm'))} mm.",
        f"- CT window: [{_value(window[0])}, {_value(window[1])}] HU mapped to [0, 1] ({data.get('normalization')}).",
        f"- Input X-rays: {data['xray_size']} x {data['xray_size']} px, X-ray mode {_value(data.get('xray_mode'))} "
        "(aligned: DRRs pixel-aligned with the CT; paper: the paper's contour crop / pad / resize).",
        f"- Training data folder: {_value(data.get('training_root'))}.",
        "",
        "## DRR geometry and mode",
        *_geometry_lines(config.get("training_geometry")),
        "",
        "## Training angles",
        f"- Lateral view at {_value(data['lateral_angle'])} degrees from AP (evaluation angle).",
        (
            f"- Each training case's lateral view drawn from {_value(angles[0])}-{_value(angles[1])} degrees."
            if angles
            else "- Trained at that single angle."
        ),
        "",
        "## Metrics",
        *_metric_lines(results),
        "",
        "## Intended use",
        "Research on CT reconstruction from biplanar radiographs: reproducing and comparing methods, studies of the",
        "lateral angle and of the data. Inputs should resemble the training X-rays (DRR mode, geometry, size).",
        "",
        "## Limitations",
        "- **Research use only. Not a medical device; not for diagnosis, treatment or any clinical decision.**",
        "- The volume is a plausible synthesis from two projections, not a measurement: anatomy the X-rays do not",
        "  show (and pathology absent from the training data) can be missing or invented.",
        "- Trained on synthetic X-rays (DRRs) of the data above; real radiographs differ in contrast, noise, scatter",
        "  and geometry, and results on them are not validated here.",
        "- Metrics are dataset means on the evaluation cases named above and do not transfer to other data.",
        "",
    ]
    return "\n".join(lines)
