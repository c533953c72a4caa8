"""Evaluation outputs: metrics.json, summary.json, per_case.csv, metrics.md (the paper's Table 1 layout with
CIs) and the best/median/worst figures."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from x2ct.metrics import LEGACY_METRIC_NAMES
from x2ct.utils.atomic import atomic_write_text
from x2ct.viz.figures import reprojection_figure, save_png, triplanar_figure

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


def figure_picks(rows: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The worst, median and best row by PSNR-3D (the cases shown as figures)."""
    ranked = sorted(rows, key=lambda row: float(row[RANKING_METRIC]))
    return {"worst": ranked[0], "median": ranked[len(ranked) // 2], "best": ranked[-1]}


def write_figures(
    folder: Path,
    rows: Sequence[Mapping[str, Any]],
    case_tensors: Callable[[str], Mapping[str, torch.Tensor]],
    hu_window: tuple[float, float],
    ct_window_hu: tuple[float, float],
) -> None:
    """Tri-planar slices and projections of the best, median and worst case by PSNR-3D.

    ``case_tensors(case_id)`` gives a picked case's ``real`` and ``fake`` (D, H, W) in [0, 1] and its ``xray1``,
    ``xray2`` (S, S); it is called once per figure case, so only one case's volumes are held at a time.
    ``hu_window`` is the display window, ``ct_window_hu`` the model normalization's window of the volumes.
    """
    for label, row in figure_picks(rows).items():
        case = case_tensors(row["case_id"])
        title = f"{label}: {row['case_id']} (PSNR-3D {float(row[RANKING_METRIC]):.2f} dB)"
        save_png(
            triplanar_figure(
                case["real"], case["fake"], hu_window=hu_window, suptitle=title, ct_window_hu=ct_window_hu
            ),
            folder / f"{label}_{row['case_id']}_slices.png",
        )
        save_png(
            reprojection_figure(case["xray1"], case["xray2"], case["fake"], suptitle=title),
            folder / f"{label}_{row['case_id']}_projections.png",
        )
