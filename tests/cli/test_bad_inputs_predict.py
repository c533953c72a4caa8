"""x2ct-predict answers every bad input with one line ``x2ct-predict: error: ...`` naming the file or option, a
non-zero exit, no traceback, and no output file (nor its folder) left behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from x2ct.predict import main

COMMAND = "x2ct-predict"
PNG_HEADER_BYTES = 100  # what is left of a truncated PNG
DICOM_HEADER_BYTES = 300  # what is left of a truncated DICOM: the preamble and part of the header


@pytest.fixture(scope="module")
def inputs(
    tiny_checkpoint: Any,
    broken_checkpoints: dict[str, Path],
    write_xray_pair: Callable[..., tuple[Path, Path]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Placeholders of the command lines: a good checkpoint and X-ray pair, broken files, a file in the way."""
    folder = tmp_path_factory.mktemp("predict_inputs")
    ap, lateral = write_xray_pair(folder / "good", "png8")
    dicom_ap, _ = write_xray_pair(folder / "dicom", "dicom")
    (folder / "not_an_image.png").write_text("hello, not an image\n")
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(ap.read_bytes()[:PNG_HEADER_BYTES])
    (folder / "truncated.dcm").write_bytes(dicom_ap.read_bytes()[:DICOM_HEADER_BYTES])
    (folder / "a_file").write_text("a file where a folder should be\n")
    return {
        "ckpt": str(tiny_checkpoint.path),
        "ap": str(ap),
        "lateral": str(lateral),
        "inputs": str(folder),
        **{f"{name}_ckpt": str(path) for name, path in broken_checkpoints.items()},
    }


GOOD = ("ckpt_path={ckpt}", "ap={ap}", "lateral={lateral}", "out={out}")


def _replace(**values: str) -> tuple[str, ...]:
    """The good command line with some options replaced (value None: left out) and others added."""
    args = {arg.split("=")[0]: arg for arg in GOOD}
    for key, value in values.items():
        args[key] = f"{key}={value}"
    return tuple(args.values())


# (id, command line, words the error line must hold); {out} is the requested NIfTI under a folder not yet made.
BAD_INPUTS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("no_out", GOOD[:3], ("missing required argument", "out=...")),
    ("missing_ap", _replace(ap="{inputs}/missing.png"), ("ap:", "missing.png", "does not exist")),
    ("text_as_image", _replace(ap="{inputs}/not_an_image.png"), ("not_an_image.png", "not a readable image")),
    ("empty_image", _replace(lateral="{inputs}/empty.png"), ("empty.png", "is empty (0 bytes)")),
    ("truncated_png", _replace(ap="{inputs}/truncated.png"), ("truncated.png", "not a readable image")),
    ("truncated_dicom", _replace(ap="{inputs}/truncated.dcm"), ("truncated.dcm", "not a readable DICOM image")),
    ("missing_checkpoint", _replace(ckpt_path="{inputs}/none.ckpt"), ("none.ckpt", "does not exist")),
    ("truncated_checkpoint", _replace(ckpt_path="{truncated_ckpt}"), ("truncated.ckpt", "is truncated")),
    ("text_checkpoint", _replace(ckpt_path="{text_ckpt}"), ("text.ckpt", "is not a PyTorch checkpoint")),
    ("state_dict_checkpoint", _replace(ckpt_path="{state_dict_ckpt}"), ("weights.ckpt", "not a Lightning checkpoint")),
    ("image_as_checkpoint", _replace(ckpt_path="{image_ckpt}"), ("picture.ckpt", "is not a PyTorch checkpoint")),
    ("out_not_nifti", _replace(out="{inputs}/new/ct.png"), ("ct.png", "not a NIfTI file name")),
    ("out_under_a_file", _replace(out="{inputs}/a_file/ct.nii.gz"), ("a_file", "is a file")),
    ("mesh_not_stl", (*GOOD, "mesh={inputs}/new/bone.ply"), ("bone.ply", "must end in .stl")),
    ("unknown_preprocess", (*GOOD, "preprocess=sharpen"), ("preprocess", "sharpen")),
    ("unknown_dtype", (*GOOD, "dtype=int8"), ("dtype", "int8")),
    ("unknown_device", (*GOOD, "device=gpu"), ("device=gpu",)),
    ("negative_spacing", (*GOOD, "spacing_mm=-1", "use_training_spacing=false"), ("spacing_mm", "-1")),
    ("negative_sid", (*GOOD, "geometry.sid_mm=-3"), ("geometry.sid_mm", "-3")),
    ("angle_out_of_range", (*GOOD, "geometry.lateral_angle=190"), ("geometry.lateral_angle", "190")),
    ("reversed_window", (*GOOD, "preview_hu_window=[500,-100]"), ("preview_hu_window", "low < high")),
    ("zero_mesh_step", (*GOOD, "mesh_step_size=0"), ("mesh_step_size", "0")),
    ("unknown_option", (*GOOD, "bone_treshold_hu=300"), ("bone_treshold_hu",)),
    ("unparsable_override", (*GOOD, "spacing_mm=[1,"), ("spacing_mm=[1,", "cannot parse")),
    ("no_bone_above_threshold", (*GOOD, "mesh={out}.stl", "bone_threshold_hu=99999"), ("bone threshold 99999",)),
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
    out = tmp_path / "result" / "ct.nii.gz"
    values = inputs | {"out": str(out)}
    run = run_cli(main, *(arg.format(**values) for arg in args))
    expect_one_line_error(run, COMMAND, *(needle.format(**values) for needle in needles))
    assert not out.parent.exists()  # nothing written, not even the output folder
    assert sorted(p.name for p in Path(values["inputs"]).iterdir()) == sorted(
        ["good", "dicom", "not_an_image.png", "empty.png", "truncated.png", "truncated.dcm", "a_file"]
    )


def test_good_input_passes_the_same_checks(inputs: dict[str, str], run_cli: Callable[..., Any], tmp_path: Path) -> None:
    """The baseline of the bad inputs above: the same command line, unchanged, succeeds."""
    out = tmp_path / "result" / "ct.nii.gz"
    run = run_cli(main, *(arg.format(**inputs, out=out) for arg in GOOD))
    assert run.status == 0, run.stderr
    assert out.is_file() and run.stderr == ""
