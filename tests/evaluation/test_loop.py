"""The evaluation loop: what reaches the figures (the model's CT window, only the picked cases)."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from x2ct.data.normalization import DEFAULT_CT_WINDOW_HU
from x2ct.evaluation import EvaluationSettings, evaluate_checkpoint, load_checkpoint, loop, writers
from x2ct.io.hdf5 import TripletFileError
from x2ct.models.gan_module import X2CTGANModule
from x2ct.viz import triplanar_figure

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


def test_only_the_figure_cases_are_kept(tiny_checkpoint: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With more cases than figures, the loop holds at most one prediction at a time (none of the metric pass's
    volumes outlive their case), and the best/median/worst figures still show the right cases."""
    case_ids = sorted(path.parent.name for path in tiny_checkpoint.triplets.glob("*/ct_xray_data.h5"))
    assert len(case_ids) > 3
    case_list = tmp_path / "all_cases.txt"
    case_list.write_text("".join(f"{case_id}\n" for case_id in case_ids))
    predictions: list[weakref.ref] = []
    original_reconstruct = X2CTGANModule.reconstruct_batch

    def tracked_reconstruct(self: X2CTGANModule, batch: Any) -> torch.Tensor:
        fake = original_reconstruct(self, batch)
        predictions.append(weakref.ref(fake))
        return fake

    alive_after_metrics: list[int] = []
    original_write_outputs = loop.write_outputs

    def counting_write_outputs(*args: Any, **kwargs: Any) -> None:
        gc.collect()
        alive_after_metrics.append(sum(ref() is not None for ref in predictions))
        original_write_outputs(*args, **kwargs)

    monkeypatch.setattr(X2CTGANModule, "reconstruct_batch", tracked_reconstruct)
    monkeypatch.setattr(loop, "write_outputs", counting_write_outputs)
    settings = EvaluationSettings(n_boot=N_BOOT)
    result = evaluate_checkpoint(tiny_checkpoint.path, {"test_list": str(case_list)}, tmp_path / "eval", settings)
    assert len(result.rows) == len(case_ids)
    assert alive_after_metrics == [1]  # the last case's prediction only, not one per case

    best = writers.figure_picks(result.rows)["best"]["case_id"]
    monkeypatch.undo()
    model, datamodule = load_checkpoint(tiny_checkpoint.path, {"test_list": str(case_list)}, "cpu")
    datamodule.setup("test")
    sample = default_collate([datamodule.test_set[case_ids.index(best)]])
    with torch.no_grad():
        fake = model.reconstruct_batch(sample)[0, 0]
    title = f"best: {best} (PSNR-3D {float(max(r['PSNR-3D'] for r in result.rows)):.2f} dB)"
    expected = triplanar_figure(
        sample["ct"][0, 0], fake, hu_window=settings.figure_hu_window, suptitle=title, ct_window_hu=DEFAULT_CT_WINDOW_HU
    )
    written = Image.open(tmp_path / "eval" / "figures" / f"best_{best}_slices.png").convert("RGB")
    np.testing.assert_array_equal(np.asarray(written), expected)
    assert len(list((tmp_path / "eval" / "figures").glob("*.png"))) == 6


def test_unusable_spacing_is_an_error_naming_the_file(tiny_checkpoint: Any, tmp_path: Path) -> None:
    """The evaluation reads a triplet's spacing with the same checks as the prediction side and the projection
    matrices (:func:`x2ct.io.hdf5.parse_spacing`): a bad ``spacing_mm`` names the file instead of skewing HD95."""
    root = Path(shutil.copytree(tiny_checkpoint.triplets, tmp_path / "triplets"))
    case_id = (root / "test.txt").read_text().split()[0]
    with h5py.File(root / case_id / "ct_xray_data.h5", "a") as h5:
        h5.attrs["spacing_mm"] = np.array([np.inf, 4.0, 4.0])
    with pytest.raises(TripletFileError, match=f"{case_id}.*spacing_mm"):
        evaluate_checkpoint(tiny_checkpoint.path, {"root": str(root)}, tmp_path / "eval", EvaluationSettings())
