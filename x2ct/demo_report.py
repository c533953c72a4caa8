"""Compare a trained run with the mean-volume baseline on the test cases, with a figure of real vs reconstructed.

    python -m x2ct.demo_report --run-dir outputs/demo/train [--data-root data/demo] [--out outputs/demo/report]

Writes ``report.json``, ``report.md`` and ``<case>_slices.png`` (tri-planar real / reconstructed / difference) to
``--out`` and prints where they are. Used by ``make demo``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import default_collate

from x2ct.evaluation import load_checkpoint
from x2ct.models.baseline import MeanVolumeBaseline
from x2ct.utils.atomic import atomic_write_text
from x2ct.viz.figures import DISPLAY_HU_WINDOW, save_png, triplanar_figure

CHECKPOINT_NAMES = ("last.ckpt",)
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


def compare(run_dir: Path, data_root: Path | None, out_dir: Path, n_figures: int = 2) -> dict[str, Any]:
    """Test metrics of the run's model and of the mean-volume baseline; figures of the first test cases."""
    ckpt = find_checkpoint(run_dir)
    model, datamodule = load_checkpoint(ckpt, {"root": None if data_root is None else str(data_root)}, "cpu")
    model_metrics = _test_trainer().test(model, datamodule=datamodule, verbose=False)[0]
    baseline = MeanVolumeBaseline().fit_training_mean(datamodule)
    baseline_metrics = _test_trainer().test(baseline, datamodule=datamodule, verbose=False)[0]
    names = [name for name in METRICS if f"test/{name}" in model_metrics]  # SSIM-3D only when the model has val_ssim

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for index in range(min(n_figures, len(datamodule.test_set))):
        sample = datamodule.test_set[index]
        fake = model.reconstruct_batch(default_collate([sample]))[0, 0]
        rgb = triplanar_figure(
            sample["ct"][0],
            fake,
            titles=("real", "reconstructed"),
            hu_window=DISPLAY_HU_WINDOW,
            suptitle=f"{sample['case_id']} (test case)",
            ct_window_hu=(datamodule.window.low_hu, datamodule.window.high_hu),
        )
        path = out_dir / f"{sample['case_id']}_slices.png"
        save_png(rgb, path)
        figures.append(str(path))
    report = {
        "checkpoint": str(ckpt),
        "data_root": str(datamodule.hparams.root),
        "n_test_cases": len(datamodule.test_set),
        "model": {name: model_metrics[f"test/{name}"] for name in names},
        "mean_volume_baseline": {name: baseline_metrics[f"test/{name}"] for name in names},
        "figures": figures,
    }
    report["model_beats_baseline"] = {
        name: (report["model"][name] > report["mean_volume_baseline"][name]) == HIGHER_IS_BETTER[name] for name in names
    }
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", format_report(report))
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"Test cases: {report['n_test_cases']} ({report['data_root']}); checkpoint {report['checkpoint']}",
        "",
        "| metric | model | mean-volume baseline | better |",
        "|---|---|---|---|",
    ]
    for name in report["model"]:
        better = "model" if report["model_beats_baseline"][name] else "baseline"
        lines.append(
            f"| {name} | {report['model'][name]:.4f} | {report['mean_volume_baseline'][name]:.4f} | {better} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True, help="x2ct-train output folder")
    parser.add_argument("--data-root", type=Path, default=None, help="triplet folder (default: the run's)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: <run-dir>/report)")
    parser.add_argument("--figures", type=int, default=2, help="test cases shown as slice figures")
    args = parser.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    out_dir = args.out or args.run_dir / "report"
    report = compare(args.run_dir, args.data_root, out_dir, args.figures)
    print(format_report(report))
    print(f"checkpoints: {Path(report['checkpoint']).parent}")
    print(f"metrics:     {out_dir / 'report.json'} and {out_dir / 'report.md'}")
    print(f"figures:     {', '.join(report['figures'])}")
    print(f"training curves: {args.run_dir / 'csv'} (CSV); W&B offline runs under {args.run_dir / 'wandb'} if enabled")


if __name__ == "__main__":
    main()
