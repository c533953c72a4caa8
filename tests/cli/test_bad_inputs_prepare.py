"""x2ct-prepare answers every bad option or folder with one line ``x2ct-prepare: error: ...`` naming it, a
non-zero exit and no traceback, before any work (the output folder is not even created); broken cases are
recorded in the manifest while the good ones are prepared, and the run ends with one error line and a non-zero
exit."""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from x2ct.phantom import make_phantom
from x2ct.prepare import EXIT_CASES_FAILED, main

COMMAND = "x2ct-prepare"
TRUNCATED_FRACTION = 0.5  # the truncated CT keeps this part of its compressed bytes
FAST = ("lateral_angles=[90]", "workers=1", "n_previews=0", "volume.cube=32", "volume.spacing_mm=[4.0,4.0,4.0]")


@pytest.fixture(scope="module")
def inputs(
    write_nifti_pair: Callable[..., tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Placeholders of the command lines: a pairs folder with one good case, a CT that is not NIfTI and a truncated
    CT; an empty folder; a file in the way."""
    folder = tmp_path_factory.mktemp("prepare_inputs")
    pairs = folder / "pairs"
    volume = make_phantom(seed=3)
    for stem in ("good", "garbage", "truncated"):
        write_nifti_pair(pairs, stem, volume.hu, volume.labels, volume.affine)
    (pairs / "garbage_ct.nii.gz").write_text("not a NIfTI file\n")
    compressed = (pairs / "truncated_ct.nii.gz").read_bytes()
    (pairs / "truncated_ct.nii.gz").write_bytes(compressed[: int(len(compressed) * TRUNCATED_FRACTION)])
    assert gzip.decompress(compressed)  # the original was a complete gzip stream
    (folder / "empty").mkdir()
    (folder / "a_file").write_text("a file where a folder should be\n")
    return {"inputs": str(folder), "pairs": str(pairs)}


# (id, command line, words the error line must hold)
BAD_INPUTS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("unknown_source", ("source=dicomdir",), ("source/dicomdir", "available source options")),
    ("no_source_root", ("source=pairs",), ("missing required option source.root",)),
    ("missing_source_root", ("source=pairs", "source.root={inputs}/nowhere"), ("nowhere", "not found")),
    ("empty_source_root", ("source=pairs", "source.root={inputs}/empty"), ("empty", "no file matches")),
    ("pattern_without_star", ("source=pairs", "source.root={pairs}", "source.ct_pattern=ct.nii.gz"), ("ct.nii.gz",)),
    ("unknown_case_id", ("source=pairs", "source.root={pairs}", "source.case_ids=[nobody]"), ("nobody",)),
    ("no_cases", ("source.n_cases=0",), ("source.n_cases", "0")),
    ("out_dir_is_a_file", ("out_dir={inputs}/a_file",), ("out_dir", "a_file", "is a file")),
    ("out_dir_under_a_file", ("out_dir={inputs}/a_file/out",), ("a_file/out", "cannot be created")),
    ("no_lateral_angle", ("lateral_angles=[]",), ("lateral_angles is empty",)),
    ("angle_out_of_range", ("lateral_angles=[90,200]",), ("lateral_angles", "200")),
    ("angles_without_90", ("lateral_angles=[85]",), ("lateral_angles must include 90",)),
    ("duplicate_angles", ("lateral_angles=[90,90]",), ("lateral_angles has duplicates",)),
    ("angles_not_a_list", ("lateral_angles=ninety",), ("lateral_angles", "ninety")),
    ("test_fraction_above_one", ("split.test_fraction=1.5",), ("split.test_fraction", "1.5")),
    ("zero_workers", ("workers=0",), ("workers", "0")),
    ("workers_not_a_number", ("workers=many",), ("workers", "many")),
    ("zero_xray_size", ("xray.size=0",), ("xray.size", "0")),
    ("zero_cube", ("volume.cube=0",), ("volume", "cube", "0")),
    ("unknown_drr_geometry", ("drr.geometry=fan",), ("drr", "fan")),
    ("unknown_option", ("volume.cubes=64",), ("volume.cubes",)),
]


@pytest.mark.parametrize(("args", "needles"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_option_is_one_line_before_any_work(
    args: tuple[str, ...],
    needles: tuple[str, ...],
    inputs: dict[str, str],
    run_cli: Callable[..., Any],
    expect_one_line_error: Callable[..., str],
    tmp_path: Path,
) -> None:
    out_dir = tmp_path / "out"
    command_line = [f"out_dir={out_dir}", *FAST, *(arg.format(**inputs) for arg in args)]
    run = run_cli(main, *command_line, f"hydra.run.dir={tmp_path / 'run'}", "hydra.output_subdir=null")
    expect_one_line_error(run, COMMAND, *(needle.format(**inputs) for needle in needles))
    assert not out_dir.exists()
    assert sorted(p.name for p in Path(inputs["inputs"]).iterdir()) == ["a_file", "empty", "pairs"]


def test_broken_cases_are_recorded_and_the_run_fails_in_one_line(
    inputs: dict[str, str], run_cli: Callable[..., Any], expect_one_line_error: Callable[..., str], tmp_path: Path
) -> None:
    """A CT that is not NIfTI and a truncated CT fail their cases (manifest rows naming the file); the good case
    is prepared; the run ends with one error line naming the count and the manifest, exit status 1."""
    out_dir = tmp_path / "out"
    command_line = [f"out_dir={out_dir}", *FAST, "source=pairs", f"source.root={inputs['pairs']}"]
    run = run_cli(main, *command_line, f"hydra.run.dir={tmp_path / 'run'}", "hydra.output_subdir=null")
    line = expect_one_line_error(run, COMMAND, "2 of 3 case(s) failed", "manifest.csv", "allow_failures=true")
    assert run.status == EXIT_CASES_FAILED
    assert "garbage_ct.nii.gz" in line  # the first failed case and its file
    with open(out_dir / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle)}
    assert {case_id: row["status"] for case_id, row in rows.items()} == {
        "good": "ok",
        "garbage": "failed",
        "truncated": "failed",
    }
    assert "garbage_ct.nii.gz" in rows["garbage"]["reason"]
    assert "truncated_ct.nii.gz" in rows["truncated"]["reason"]
    written = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    assert written == ["good/ct_xray_data.h5", "manifest.csv", "test.txt", "train.txt"]  # no half-written leftovers


def test_full_error_and_bugs_keep_the_traceback(
    run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``HYDRA_FULL_ERROR=1`` re-raises a user error (Hydra's own or ours); an unexpected exception is a bug and
    propagates with its traceback; the variable is the user's again after the run."""
    run_dir = f"hydra.run.dir={tmp_path / 'run'}"
    with pytest.raises(Exception, match="source/dicomdir"):
        monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
        run_cli(main, "source=dicomdir", run_dir)
    with pytest.raises(ValueError, match="workers"):
        run_cli(main, "workers=0", f"out_dir={tmp_path / 'out'}", run_dir)
    monkeypatch.delenv("HYDRA_FULL_ERROR")

    def bug(*args: Any, **kwargs: Any) -> int:
        raise KeyError("a bug")

    monkeypatch.setattr("x2ct.prepare.run_prepare", bug)
    with pytest.raises(KeyError, match="a bug"):
        run_cli(main, f"out_dir={tmp_path / 'out'}", *FAST, run_dir)
    assert "HYDRA_FULL_ERROR" not in os.environ
