"""Evaluation: the loop over a checkpoint's cases, the result files and tables."""

from x2ct.evaluation.loop import EvaluationResult, EvaluationSettings, evaluate_checkpoint, load_checkpoint
from x2ct.evaluation.settings import evaluation_settings
from x2ct.evaluation.writers import PAPER_TABLE1, RANKING_METRIC, format_table

__all__ = [
    "PAPER_TABLE1",
    "RANKING_METRIC",
    "EvaluationResult",
    "EvaluationSettings",
    "evaluate_checkpoint",
    "evaluation_settings",
    "format_table",
    "load_checkpoint",
]
