"""x2ct-prepare end to end: a CT stored as 0..4095, unreadable entries and unpaired files each get a manifest row
with their reason while the good case is prepared; ``source.ct_units=auto`` converts the 0..4095 CT."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from x2ct.io.ct_units import CONVERTED_FROM_HU_PLUS_1024, HU_PLUS_1024_OFFSET
from x2ct.io.hdf5 import read_triplet
from x2ct.preparation.pipeline import read_manifest, triplet_path
from x2ct.prepare import prepare_from_config


def _write_root(root: Path, spine: Any, write_nifti_pair: Callable[..., tuple[Path, Path]]) -> None:
    """good (HU), raw (the same CT stored as HU + 1024), loop (CT is a symlink to itself), a folder symlink
    back to the root, a CT without mask and a mask without CT."""
    hu = np.rint(spine.hu)
    write_nifti_pair(root, "good", hu, spine.labels, spine.affine)
    write_nifti_pair(root, "raw", hu + HU_PLUS_1024_OFFSET, spine.labels, spine.affine)
    write_nifti_pair(root, "loop", hu, spine.labels, spine.affine)
    (root / "loop_ct.nii.gz").unlink()
    os.symlink("loop_ct.nii.gz", root / "loop_ct.nii.gz")
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")
    write_nifti_pair(root, "ct_only", hu, spine.labels, spine.affine)[1].unlink()
    write_nifti_pair(root, "mask_only", hu, spine.labels, spine.affine)[0].unlink()


def test_bad_inputs_get_rows_and_ct_units_auto_converts(
    tmp_path: Path,
    compose_config: Callable[..., Any],
    tiny_prepare_overrides: tuple[str, ...],
    tiny_spine_ct: Callable[..., Any],
    write_nifti_pair: Callable[..., tuple[Path, Path]],
) -> None:
    root, out_dir = tmp_path / "pairs", tmp_path / "out"
    _write_root(root, tiny_spine_ct(), write_nifti_pair)

    def prepare(*extra: str) -> dict[str, dict[str, str]]:
        overrides = [*tiny_prepare_overrides, "source=pairs", f"source.root={root}", f"out_dir={out_dir}", *extra]
        assert prepare_from_config(compose_config("prepare", overrides), progress=False) == 1  # failures remain
        return {row["case_id"]: row for row in read_manifest(out_dir / "manifest.csv")}

    rows = prepare()
    assert set(rows) == {"good", "raw", "loop", "unreadable_sub_up", "ct_only", "mask_only"}
    assert rows["good"]["status"] == "ok" and rows["good"]["ct_units"] == "hu"
    expected_reasons = {
        "raw": "values are not HU",
        "loop": "loop_ct.nii.gz is a symlink loop",
        "unreadable_sub_up": "symlink loop",
        "ct_only": "CT without mask",
        "mask_only": "mask without CT",
    }
    for case_id, words in expected_reasons.items():
        assert rows[case_id]["status"] == "failed" and words in rows[case_id]["reason"], rows[case_id]
        assert not triplet_path(out_dir, case_id).exists()
    assert "source.ct_units=hu_plus_1024" in rows["raw"]["reason"]
    assert (out_dir / "train.txt").read_text().split() + (out_dir / "test.txt").read_text().split() == ["good"]

    rows = prepare("source.ct_units=auto")
    assert rows["raw"]["status"] == "ok" and rows["raw"]["ct_units"] == CONVERTED_FROM_HU_PLUS_1024
    assert rows["good"]["reason"] == "rebuilt: settings changed (source.ct_units)"  # part of the fingerprint
    good, raw = (read_triplet(triplet_path(out_dir, case_id)) for case_id in ("good", "raw"))
    np.testing.assert_allclose(raw.ct_hu_plus_1024, good.ct_hu_plus_1024, atol=1.0)
    np.testing.assert_array_equal(raw.xray1, good.xray1)


def test_dataset_split_run_goes_on_past_unreadable_entries(
    tmp_path: Path,
    compose_config: Callable[..., Any],
    tiny_prepare_overrides: tuple[str, ...],
    tiny_spine_ct: Callable[..., Any],
    write_nifti_pair: Callable[..., tuple[Path, Path]],
) -> None:
    """With the dataset's own split, a folder symlink loop (no split of its own) is a failing row, not the end."""
    spine = tiny_spine_ct()
    volumes, labels = tmp_path / "ctspine1k/volumes/COLONOG", tmp_path / "ctspine1k/labels/COLONOG"
    labels.mkdir(parents=True)
    for stem in ("a", "b"):
        ct, mask = write_nifti_pair(volumes, stem, np.rint(spine.hu), spine.labels, spine.affine)
        os.replace(ct, volumes / f"{stem}.nii.gz")
        os.replace(mask, labels / f"{stem}_seg.nii.gz")
    os.symlink("..", volumes / "loop")
    (tmp_path / "ctspine1k/data_split.txt").write_text("trainset:\na.nii.gz\ntest_public:\nb.nii.gz\n")
    out_dir = tmp_path / "out"
    overrides = [
        *tiny_prepare_overrides,
        "source=ctspine1k",
        f"source.root={tmp_path / 'ctspine1k'}",
        "split.use_dataset_split=true",
        f"out_dir={out_dir}",
    ]
    assert prepare_from_config(compose_config("prepare", overrides), progress=False) == 1
    rows = {row["case_id"]: row for row in read_manifest(out_dir / "manifest.csv")}
    assert {case_id: (row["status"], row["split"]) for case_id, row in rows.items()} == {
        "COLONOG_a": ("ok", "train"),
        "COLONOG_b": ("ok", "test"),
        "unreadable_volumes_COLONOG_loop": ("failed", ""),
    }
