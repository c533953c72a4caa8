"""benchmarks/gpu_summary.py reads gpu_check.sh's JSON files and states each figure against its goal."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SUMMARY = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_summary.py"
MODULE_NAME = "gpu_summary"


def load_summary() -> ModuleType:
    if MODULE_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(MODULE_NAME, SUMMARY)
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[MODULE_NAME]


def case(precision: str, compiled: bool, batch: int, samples_per_s: float, peak_gib: float, cube: int = 128) -> dict:
    label = f"biplanar {cube}^3 b{batch} {precision}{' compile' if compiled else ''}"
    ours = {"ok": True, "seconds_per_step_median": batch / samples_per_s, "samples_per_s": samples_per_s}
    ours |= {"peak_gpu_allocated_gib": peak_gib, "phases_median_s": {}}
    fields = {"generator": "biplanar", "cube": cube, "batch": batch, "precision": precision, "compile": compiled}
    return {"label": label, **fields, "ours": ours}


def write(folder: Path, name: str, cases: list[dict]) -> None:
    report = {"machine": {"cuda_device": "GPU", "torch": "2.x", "cpu": "CPU"}, "settings": {"device": "cuda"}}
    (folder / name).write_text(json.dumps(report | {"cases": cases}))


def test_summary_states_goals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = load_summary()
    write(
        tmp_path,
        "train_128_eager.json",
        [case("32-true", False, 4, 2.0, 30.0), case("bf16-mixed", False, 4, 3.0, 20.0)],
    )
    write(tmp_path, "train_128_compile.json", [case("bf16-mixed", True, 4, 5.0, 18.0)])
    write(tmp_path, "train_256.json", [case("bf16-mixed", False, 1, 0.5, 60.0, cube=256)])
    drr = {"cuda": {"joseph": {"drr_per_s_median": 1500.0, "detector": [200, 200]}}}
    (tmp_path / "drr_cuda.json").write_text(json.dumps(drr))
    loader = {"settings": {"cube": 128}, "loader": [{"num_workers": 2, "samples_per_s_per_epoch": [1.0, 10.0]}]}
    (tmp_path / "loader.json").write_text(json.dumps(loader))

    summary.main(tmp_path)
    out = capsys.readouterr().out
    assert "DRR joseph: 1,500 views/s at 200x200 (misses the goal" in out
    assert "over fp32 eager: bf16 1.50x, bf16+compile 2.50x (bf16 meets >= 2.0x)" in out
    gb = 30.0 * 2**30 / 1e9
    assert f"biplanar 128^3 b4 32-true: peak {gb:.1f} GB (misses <= 24 GB)" in out
    assert "biplanar 256^3 b1 bf16-mixed: trains, peak" in out
    assert "loader, 2 workers: 10.0 samples/s (2.00x the fastest training step's 5.0)" in out
