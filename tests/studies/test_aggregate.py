"""The study aggregator: multirun folders -> table, CSV and plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from x2ct.studies.aggregate import aggregate, find_jobs, varying_keys


def write_job(sweep: Path, number: int, overrides: list[str], psnr: float, nested: bool = False) -> None:
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    results = job / "eval" if nested else job
    results.mkdir(exist_ok=True)
    summary = {
        "metrics": {
            "MAE0": {"mean": 0.05, "ci_low": 0.04, "ci_high": 0.06, "n": 3},
            "PSNR-3D": {"mean": psnr, "ci_low": psnr - 1, "ci_high": psnr + 1, "n": 3},
            "Dice-bone": {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 3},
        }
    }
    (results / "summary.json").write_text(json.dumps(summary))


def test_angle_sweep_table_in_numeric_order(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for number, (angle, psnr) in enumerate([(90, 27.4), (75, 26.5), (85, 27.3), (80, 26.9)]):
        write_job(sweep, number, ["ckpt_path=/x/last.ckpt", f"data.lateral_angle={angle}"], psnr)
    out = tmp_path / "out"
    table = aggregate([sweep], ["data.lateral_angle"], out, "angles").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| metric"))
    assert header.index("lateral_angle=75") < header.index("lateral_angle=80") < header.index("lateral_angle=90")
    psnr_row = next(line for line in table.splitlines() if line.startswith("| PSNR-3D"))
    assert psnr_row.split("|")[2].strip().startswith("26.5 [25.5, 27.5]")
    assert table.index("| MAE0") < table.index("| PSNR-3D") < table.index("| Dice-bone")  # legacy first
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 12 and {r["data.lateral_angle"] for r in rows} == {"75", "80", "85", "90"}
    assert (out / "plot.png").stat().st_size > 1000


def test_train_jobs_with_nested_eval_and_two_keys(tmp_path: Path) -> None:
    sweep = tmp_path / "grid"
    grid = [(1, 0), (1, 3.3), (10, 0), (10, 3.3)]
    for number, (rec, proj) in enumerate(grid):
        write_job(
            sweep,
            number,
            [f"model.loss.reconstruction={rec}", f"model.loss.projection={proj}", "experiment=loss_ablation_demo"],
            20 + number,
            nested=True,
        )
    jobs = find_jobs([sweep])
    assert varying_keys(jobs) == ["model.loss.projection", "model.loss.reconstruction"]
    table = aggregate([sweep], None, tmp_path / "out", "grid", metrics=["PSNR-3D"]).read_text()
    assert "projection=3.3, reconstruction=10" in table and "MAE0" not in table


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        aggregate([tmp_path / "missing"], None, tmp_path / "out", "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no job"):
        aggregate([tmp_path / "empty"], None, tmp_path / "out", "x")
    write_job(tmp_path / "same", 0, ["a=1"], 20.0)
    write_job(tmp_path / "same", 1, ["a=1"], 21.0)
    with pytest.raises(ValueError, match="do not differ"):
        aggregate([tmp_path / "same"], None, tmp_path / "out", "x")
