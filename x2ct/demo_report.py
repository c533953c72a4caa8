"""Compare a trained run with the mean-volume baseline on the test cases, at several lateral angles, with figures.

    python -m x2ct.demo_report --run-dir outputs/demo/train [--data-root data/demo] [--out outputs/demo/report]
                               [--angles 90 75]

Writes to ``--out``: ``report.json`` and ``report.md`` (the model against the mean-volume baseline; the model at each
lateral angle with PSNR-3D, 3D SSIM, bone Dice and HD95 from x2ct-eval's own loop, beside the paper-faithful
X2CT-GAN's numbers on the same demo data from the committed angle study), ``angle_<a>/`` (x2ct-eval's files per
angle) and ``<case>_slices_<a>deg.png`` (tri-planar real / reconstructed / difference). Used by ``make demo``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import default_collate

from x2ct.data.datamodule import X2CTDataModule
from x2ct.evaluation import EvaluationSettings, evaluate_checkpoint, load_checkpoint
from x2ct.io.hdf5 import stored_lateral_angles
from x2ct.models.baseline import MeanVolumeBaseline
from x2ct.models.gan_module import X2CTGANModule
from x2ct.utils.atomic import atomic_write_text
from x2ct.viz.figures import DISPLAY_HU_WINDOW, save_png, triplanar_figure

CHECKPOINT_NAMES = ("last.ckpt",)
DEFAULT_ANGLES: tuple[float, ...] = (90.0, 75.0)
ANGLE_METRICS = ("PSNR-3D", "SSIM-3D-gauss", "Dice-bone", "HD95-mm")
ANGLE_BOOTSTRAP = 200  # bootstrap resamples of the per-angle CIs (the demo's 12 cases)
# The paper-faithful X2CT-GAN (experiment=demo_paper, 12 epochs at 90 degrees) on the same demo data, evaluated at
# each lateral angle: the committed robustness study (experiments/angle_study).
PAPER_MODEL_RESULTS = Path(__file__).resolve().parents[1] / "experiments/angle_study/results/robustness/results.csv"
METRICS = ("MAE0", "PSNR-3D", "SSIM-3D")
HIGHER_IS_BETTER = {"MAE0": False, "PSNR-3D": True, "SSIM-3D": True}


def find_checkpoint(run_dir: Path) -> Path:
    """``<run_dir>/checkpoints/last.ckpt``; FileNotFoundError naming the folder if it is missing."""
    for name in CHECKPOINT_NAMES:
        path = run_dir / "checkpoints" / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"no checkpoint {CHECKPOINT_NAMES} under {run_dir / 'checkpoints'}")


def _test_trainer() -> L.Trainer:
    """A single-device CPU trainer for exact test metrics (one per model: logged keys must not clash)."""
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def compare(
    run_dir: Path,
    data_root: Path | None,
    out_dir: Path,
    n_figures: int = 2,
    angles: tuple[float, ...] = DEFAULT_ANGLES,
) -> dict[str, Any]:
    """Test metrics of the run's model and of the mean-volume baseline; the model at each lateral angle (those the
    test files store); figures of the first test cases at each angle."""
    ckpt = find_checkpoint(run_dir)
    model, datamodule = load_checkpoint(ckpt, {"root": None if data_root is None else str(data_root)}, "cpu")
    model_metrics = _test_trainer().test(model, datamodule=datamodule, verbose=False)[0]
    baseline = MeanVolumeBaseline().fit_training_mean(datamodule)
    baseline_metrics = _test_trainer().test(baseline, datamodule=datamodule, verbose=False)[0]
    names = [name for name in METRICS if f"test/{name}" in model_metrics]  # SSIM-3D only when the model has val_ssim

    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(datamodule.hparams.root)
    stored = stored_lateral_angles(datamodule.test_set.path_of(datamodule.test_set.case_ids[0]))
    by_angle: dict[str, dict[str, float]] = {}
    skipped: list[float] = []
    figures = []
    for angle in angles:
        if float(angle) not in stored:
            skipped.append(float(angle))
            continue
        settings = EvaluationSettings(figures=False, n_boot=ANGLE_BOOTSTRAP)
        overrides = {"root": str(root), "lateral_angle": float(angle)}
        result = evaluate_checkpoint(ckpt, overrides, out_dir / f"angle_{angle:g}", settings)
        by_angle[f"{angle:g}"] = {name: float(result.metrics[name]) for name in ANGLE_METRICS if name in result.metrics}
        figures += _slice_figures(model, datamodule, out_dir, float(angle), n_figures)
    report = {
        "checkpoint": str(ckpt),
        "data_root": str(root),
        "n_test_cases": len(datamodule.test_set),
        "lateral_angle": datamodule.lateral_angle,
        "model": {name: model_metrics[f"test/{name}"] for name in names},
        "mean_volume_baseline": {name: baseline_metrics[f"test/{name}"] for name in names},
        "model_by_angle": by_angle,
        "angles_not_stored": skipped,
        "paper_model_by_angle": paper_model_results(PAPER_MODEL_RESULTS, [float(a) for a in by_angle]),
        "figures": figures,
    }
    report["model_beats_baseline"] = {
        name: (report["model"][name] > report["mean_volume_baseline"][name]) == HIGHER_IS_BETTER[name] for name in names
    }
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", format_report(report))
    return report


def _slice_figures(
    model: X2CTGANModule, trained: X2CTDataModule, out_dir: Path, angle: float, n_figures: int
) -> list[str]:
    """Tri-planar real / reconstructed figures of the first ``n_figures`` test cases with the lateral view at
    ``angle`` (the run's data settings otherwise)."""
    datamodule = X2CTDataModule(**{**dict(trained.hparams), "lateral_angle": angle})
    datamodule.setup("test")
    paths = []
    for index in range(min(n_figures, len(datamodule.test_set))):
        sample = datamodule.test_set[index]
        fake = model.reconstruct_batch(default_collate([sample]))[0, 0]
        rgb = triplanar_figure(
            sample["ct"][0],
            fake,
            titles=("real", "reconstructed"),
            hu_window=DISPLAY_HU_WINDOW,
            suptitle=f"{sample['case_id']} (test case), lateral view at {angle:g} degrees",
            ct_window_hu=(datamodule.window.low_hu, datamodule.window.high_hu),
        )
        path = out_dir / f"{sample['case_id']}_slices_{angle:g}deg.png"
        save_png(rgb, path)
        paths.append(str(path))
    return paths


def paper_model_results(path: Path, angles: list[float]) -> dict[str, dict[str, float]]:
    """The paper model's means per angle from a study's ``results.csv`` (``data.lateral_angle``, ``metric``,
    ``mean`` columns); empty when the file is absent (e.g. an installed package without the repository)."""
    if not path.is_file():
        return {}
    out: dict[str, dict[str, float]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            angle = float(row["data.lateral_angle"])
            if angle in angles and row["metric"] in ANGLE_METRICS:
                out.setdefault(f"{angle:g}", {})[row["metric"]] = float(row["mean"])
    return out


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"Test cases: {report['n_test_cases']} ({report['data_root']}); checkpoint {report['checkpoint']}",
        "",
        f"Model against the mean-volume baseline (lateral view at {report['lateral_angle']:g} degrees):",
        "",
        "| metric | model | mean-volume baseline | better |",
        "|---|---|---|---|",
    ]
    for name in report["model"]:
        better = "model" if report["model_beats_baseline"][name] else "baseline"
        lines.append(
            f"| {name} | {report['model'][name]:.4f} | {report['mean_volume_baseline'][name]:.4f} | {better} |"
        )
    if report["model_by_angle"]:
        paper = report["paper_model_by_angle"]
        lines += [
            "",
            "This model at each lateral angle (x2ct-eval's metrics; bone = HU > 250)"
            + (", beside the paper-faithful X2CT-GAN trained at 90 degrees on the same demo data" if paper else "")
            + ":",
            "",
            "| angle | "
            + " | ".join(ANGLE_METRICS)
            + (" | paper model: " + " / ".join(ANGLE_METRICS) if paper else "")
            + " |",
            "|---" * (1 + len(ANGLE_METRICS) + (1 if paper else 0)) + "|",
        ]
        for angle, values in report["model_by_angle"].items():
            cells = [f"{values[name]:.4g}" if name in values else "-" for name in ANGLE_METRICS]
            if paper:
                reference = paper.get(angle, {})
                cells.append(" / ".join(f"{reference[n]:.4g}" if n in reference else "-" for n in ANGLE_METRICS))
            lines.append(f"| {angle} | " + " | ".join(cells) + " |")
    if report["angles_not_stored"]:
        shown = ", ".join(f"{a:g}" for a in report["angles_not_stored"])
        lines += ["", f"Not evaluated (the test files store no lateral view at {shown} degrees)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True, help="x2ct-train output folder")
    parser.add_argument("--data-root", type=Path, default=None, help="triplet folder (default: the run's)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: <run-dir>/report)")
    parser.add_argument("--figures", type=int, default=2, help="test cases shown as slice figures (per angle)")
    parser.add_argument(
        "--angles", type=float, nargs="+", default=list(DEFAULT_ANGLES), help="lateral angles to evaluate (degrees)"
    )
    args = parser.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    out_dir = args.out or args.run_dir / "report"
    report = compare(args.run_dir, args.data_root, out_dir, args.figures, tuple(args.angles))
    print(format_report(report))
    print(f"checkpoints: {Path(report['checkpoint']).parent}")
    print(f"metrics:     {out_dir / 'report.json'} and {out_dir / 'report.md'}")
    print(f"figures:     {', '.join(report['figures'])}")
    print(f"training curves: {args.run_dir / 'csv'} (CSV); W&B offline runs under {args.run_dir / 'wandb'} if enabled")


if __name__ == "__main__":
    main()
