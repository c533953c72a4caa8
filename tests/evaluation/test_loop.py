"""The evaluation loop: what reaches the figures (the model's CT window, only the picked cases)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from x2ct.evaluation import EvaluationSettings, evaluate_checkpoint, writers

N_BOOT = 50  # fewer bootstrap resamples than the default, for speed
WINDOW = (-1000.0, 1000.0)  # not the default (-1024, 1476)


def test_figures_use_the_data_window(tiny_checkpoint: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tri-planar figures read the volumes through the evaluated data's CT window, not the default one."""
    calls: list[dict[str, Any]] = []
    original = writers.triplanar_figure

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(writers, "triplanar_figure", spy)
    settings = EvaluationSettings(n_boot=N_BOOT)
    evaluate_checkpoint(tiny_checkpoint.path, {"ct_window_hu": list(WINDOW)}, tmp_path, settings)
    assert len(calls) == 3  # worst, median, best
    assert all(tuple(call["ct_window_hu"]) == WINDOW for call in calls)
    assert all(tuple(call["hu_window"]) == settings.figure_hu_window for call in calls)
