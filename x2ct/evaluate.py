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

from pathlib import Path

import hydra
from omegaconf import DictConfig

from x2ct.cli import report_user_errors, run_console_script
from x2ct.config_dir import CONFIG_DIR
from x2ct.evaluation import RANKING_METRIC, EvaluationResult, evaluate_checkpoint, evaluation_settings, format_table


def evaluate(cfg: DictConfig) -> EvaluationResult:
    """Run the evaluation described by a composed ``eval`` config and write its files (the settings: the
    ``conf/evaluation`` group's keys at the top level)."""
    return evaluate_checkpoint(cfg.ckpt_path, dict(cfg.data), Path(cfg.out_dir), evaluation_settings(cfg))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
@report_user_errors("x2ct-eval")
def _main(cfg: DictConfig) -> float:
    result = evaluate(cfg)
    print(format_table(result.summary, result.metrics, cfg.ci))
    print(f"results: {result.out_dir}")
    return float(result.metrics[RANKING_METRIC])


def main() -> None:
    """Console-script entry point."""
    run_console_script("x2ct-eval", _main)


if __name__ == "__main__":
    main()
