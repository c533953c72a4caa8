"""x2ct-train answers every bad input with one line ``x2ct-train: error: ...`` naming the file or option, a
non-zero exit, no traceback, and no checkpoint written."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from x2ct.train import main

COMMAND = "x2ct-train"
TRUNCATED_BYTES = 4096  # what is left of the truncated training triplet


@pytest.fixture(scope="module")
def inputs(
    tiny_triplets: Path, broken_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Placeholders of the command lines: the tiny triplets, a copy with a training case cut short, broken
    checkpoints, an empty folder."""
    folder = tmp_path_factory.mktemp("train_inputs")
    (folder / "empty").mkdir()
    truncated_root = folder / "truncated"
    shutil.copytree(tiny_triplets, truncated_root)
    case_ids = (truncated_root / "train.txt").read_text().split()
    for case_id in case_ids:  # every training case: whichever the shuffled loader reads first is cut short
        file = truncated_root / case_id / "ct_xray_data.h5"
        file.write_bytes(file.read_bytes()[:TRUNCATED_BYTES])
    return {
        "root": str(tiny_triplets),
        "inputs": str(folder),
        **{f"{name}_ckpt": str(path) for name, path in broken_checkpoints.items()},
    }


# (id, command line after data.root={root} and the tiny networks' overrides, words the error line must hold)
BAD_INPUTS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("unknown_experiment", ("experiment=nonexistent",), ("experiment/nonexistent", "available experiment options")),
    ("unknown_trainer", ("trainer=tpu",), ("trainer/tpu", "available trainer options")),
    ("unknown_option", ("data.cub=32",), ("data.cub",)),
    ("unparsable_override", ("data.cube=[32",), ("data.cube=[32", "cannot parse")),
    ("missing_data_root", ("data.root={inputs}/nowhere",), ("data root", "nowhere", "does not exist")),
    ("empty_data_root", ("data.root={inputs}/empty",), ("empty/train.txt", "does not exist")),
    ("zero_cube", ("data.cube=0",), ("cube", "0")),
    ("negative_batch_size", ("data.batch_size=-1",), ("batch_size", "-1")),
    ("negative_workers", ("data.num_workers=-2",), ("num_workers", "-2")),
    ("val_fraction_above_one", ("data.val_fraction=1.5",), ("val_fraction", "1.5")),
    ("angle_out_of_range", ("data.lateral_angle=200",), ("lateral angle", "200")),
    ("reversed_angle_range", ("data.train_lateral_angles=[100,50]",), ("data.train_lateral_angles", "[100, 50]")),
    ("missing_case_list", ("data.train_list=mine.txt",), ("mine.txt", "does not exist")),
    ("evaluation_ci_above_one", ("evaluation.enabled=true", "evaluation.ci=2"), ("ci", "2")),
    ("resume_missing_checkpoint", ("ckpt_path={inputs}/last.ckpt",), ("last.ckpt", "does not exist")),
    ("resume_text_checkpoint", ("ckpt_path={text_ckpt}",), ("text.ckpt", "is not a PyTorch checkpoint")),
    (
        "truncated_triplet",
        ("data.root={inputs}/truncated", "debug=fdr"),
        ("truncated/case", "ct_xray_data.h5", "truncated or corrupt"),
    ),
]


@pytest.mark.parametrize(("args", "needles"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_line(
    args: tuple[str, ...],
    needles: tuple[str, ...],
    inputs: dict[str, str],
    tiny_train_overrides: tuple[str, ...],
    run_cli: Callable[..., Any],
    expect_one_line_error: Callable[..., str],
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    command_line = [
        f"data.root={inputs['root']}",
        *tiny_train_overrides,
        "trainer=cpu",
        "logger=csv",
        *(arg.format(**inputs) for arg in args),
        f"hydra.run.dir={run_dir}",
    ]
    run = run_cli(main, *command_line)
    expect_one_line_error(run, COMMAND, *(needle.format(**inputs) for needle in needles))
    assert not list(run_dir.rglob("*.ckpt"))
    assert sorted(p.name for p in Path(inputs["inputs"]).iterdir()) == ["empty", "truncated"]
