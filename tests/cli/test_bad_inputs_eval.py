"""x2ct-eval answers every bad input with one line ``x2ct-eval: error: ...`` naming the file or option, a non-zero
exit, no traceback, and no result file in its output folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from x2ct.evaluate import main

COMMAND = "x2ct-eval"
RESULT_FILES = ("metrics.json", "summary.json", "per_case.csv", "metrics.md")
FAST = ("figures=false", "n_boot=10")  # the good run below stays short


@pytest.fixture(scope="module")
def inputs(
    tiny_checkpoint: Any,
    broken_checkpoints: dict[str, Path],
    truncated_triplets: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Placeholders of the command lines: a good checkpoint, broken files, an empty folder, a file in the way."""
    folder = tmp_path_factory.mktemp("eval_inputs")
    (folder / "empty").mkdir()
    (folder / "a_file").write_text("a file where a folder should be\n")
    root, truncated = truncated_triplets
    return {
        "ckpt": str(tiny_checkpoint.path),
        "inputs": str(folder),
        "truncated_root": str(root),
        "truncated_file": str(truncated.relative_to(root.parent)),
        **{f"{name}_ckpt": str(path) for name, path in broken_checkpoints.items()},
    }


GOOD = ("ckpt_path={ckpt}", *FAST)

# (id, command line, words the error line must hold)
BAD_INPUTS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("no_checkpoint", FAST, ("missing required option ckpt_path",)),
    ("missing_checkpoint", ("ckpt_path={inputs}/none.ckpt", *FAST), ("none.ckpt", "does not exist")),
    ("truncated_checkpoint", ("ckpt_path={truncated_ckpt}", *FAST), ("truncated.ckpt", "is truncated")),
    ("text_checkpoint", ("ckpt_path={text_ckpt}", *FAST), ("text.ckpt", "is not a PyTorch checkpoint")),
    ("state_dict_checkpoint", ("ckpt_path={state_dict_ckpt}", *FAST), ("weights.ckpt", "not a Lightning checkpoint")),
    ("missing_data_root", (*GOOD, "data.root={inputs}/nowhere"), ("nowhere", "does not exist")),
    ("empty_data_root", (*GOOD, "data.root={inputs}/empty"), ("empty/test.txt", "does not exist")),
    ("truncated_triplet", (*GOOD, "data.root={truncated_root}"), ("{truncated_file}", "truncated or corrupt")),
    ("missing_case_list", (*GOOD, "data.test_list=holdout.txt"), ("holdout.txt", "does not exist")),
    ("angle_out_of_range", (*GOOD, "data.lateral_angle=200"), ("lateral angle", "200")),
    ("angle_not_rendered", (*GOOD, "data.lateral_angle=85"), ("no lateral view at 85 degrees", "ct_xray_data.h5")),
    ("zero_cube", (*GOOD, "data.cube=0"), ("cube", "0")),
    ("unknown_split", (*GOOD, "split=train"), ("split", "train")),
    ("ci_above_one", (*GOOD, "ci=1.5"), ("ci", "1.5")),
    ("zero_bootstrap", ("ckpt_path={ckpt}", "n_boot=0"), ("n_boot", "0")),
    ("unknown_device", (*GOOD, "device=gpu"), ("device", "gpu")),
    ("out_dir_is_a_file", (*GOOD, "out_dir={inputs}/a_file"), ("out_dir", "a_file", "is a file")),
    ("unknown_option", (*GOOD, "data.rot=x"), ("data.rot",)),
    ("unknown_config_name", (*GOOD, "paths=cluster"), ("paths/cluster", "available paths options: default")),
    ("run_dir_under_a_file", (*GOOD, "hydra.run.dir={inputs}/a_file/run"), ("a_file/run", "hydra.run.dir")),
]


@pytest.mark.parametrize(("args", "needles"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_line(
    args: tuple[str, ...],
    needles: tuple[str, ...],
    inputs: dict[str, str],
    run_cli: Callable[..., Any],
    expect_one_line_error: Callable[..., str],
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    command_line = [arg.format(**inputs) for arg in args]
    if not any(arg.startswith("hydra.run.dir=") for arg in command_line):
        command_line.append(f"hydra.run.dir={run_dir}")
    run = run_cli(main, *command_line)
    expect_one_line_error(run, COMMAND, *(needle.format(**inputs) for needle in needles))
    assert not any((run_dir / name).exists() for name in RESULT_FILES)
    assert sorted(p.name for p in Path(inputs["inputs"]).iterdir()) == ["a_file", "empty"]


def test_good_input_passes_the_same_checks(inputs: dict[str, str], run_cli: Callable[..., Any], tmp_path: Path) -> None:
    """The baseline of the bad inputs above: the same command line, unchanged, succeeds."""
    run_dir = tmp_path / "run"
    run = run_cli(main, *(arg.format(**inputs) for arg in GOOD), f"hydra.run.dir={run_dir}")
    assert run.status == 0, run.stderr
    assert all((run_dir / name).is_file() for name in RESULT_FILES)
    assert "error" not in run.stderr
