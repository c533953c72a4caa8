"""Nothing a folder source cannot read is dropped (symlink loops, unreadable folders, broken links, unpaired
files), and loading guards against plausible-looking wrong data (units, spacing, vertebra size, mask)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from x2ct.errors import CaseError, InvalidOptionError
from x2ct.io.ct_units import CONVERTED_FROM_HU_PLUS_1024, HU_PLUS_1024_OFFSET
from x2ct.io.volume import canonical_affine
from x2ct.sources import CTSpine1KSource, PairsSource

WriteCase = Callable[..., tuple[Path, Path]]


@pytest.fixture
def write_case(tiny_spine_ct: Callable[..., object], write_nifti_pair: WriteCase) -> WriteCase:
    """``(folder, stem, offset=0, spacing_mm=2.0, labels=None) -> (ct, mask)``: the tiny spine CT stored as
    HU + ``offset`` on a grid of ``spacing_mm``."""

    def write(
        folder: Path, stem: str, offset: float = 0.0, spacing_mm: float = 2.0, labels: np.ndarray | None = None
    ) -> tuple[Path, Path]:
        case = tiny_spine_ct()
        mask = case.labels if labels is None else labels
        return write_nifti_pair(folder, stem, np.rint(case.hu) + offset, mask, canonical_affine((spacing_mm,) * 3))

    return write


def _refs(source: PairsSource | CTSpine1KSource) -> dict[str, object]:
    return {ref.case_id: ref for ref in source.list_cases()}


def test_symlink_loops_become_failing_cases(tmp_path: Path, write_case: WriteCase) -> None:
    write_case(tmp_path, "good")
    write_case(tmp_path, "loop")
    (tmp_path / "loop_ct.nii.gz").unlink()
    os.symlink("loop_ct.nii.gz", tmp_path / "loop_ct.nii.gz")  # a file link to itself
    (tmp_path / "sub").mkdir()
    os.symlink("..", tmp_path / "sub" / "up")  # a folder link back to the root
    source = PairsSource(tmp_path)
    refs = _refs(source)
    assert set(refs) == {"good", "loop", "unreadable_sub_up"}
    assert "symlink loop" in refs["unreadable_sub_up"].problem
    with pytest.raises(CaseError, match=r"loop_ct\.nii\.gz is a symlink loop"):
        source.load(refs["loop"])
    with pytest.raises(CaseError, match=r"unreadable_sub_up.*symlink loop: it leads back to"):
        source.load(refs["unreadable_sub_up"])
    assert source.load(refs["good"]).meta["ct_units"] == "hu"


def test_folder_symlinks_are_followed_and_broken_ones_reported(tmp_path: Path, write_case: WriteCase) -> None:
    root = tmp_path / "root"
    write_case(root, "here")
    write_case(tmp_path / "elsewhere", "linked")
    os.symlink(tmp_path / "elsewhere", root / "more")
    os.symlink(tmp_path / "gone", root / "old_scans")
    os.symlink(tmp_path / "gone_ct.nii.gz", root / "dangling_ct.nii.gz")
    refs = _refs(PairsSource(root))
    assert set(refs) == {"here", "more_linked", "unreadable_old_scans", "dangling"}
    assert refs["unreadable_old_scans"].problem == (
        f"cannot read {root / 'old_scans'}: broken symlink (target {tmp_path / 'gone'} does not exist)"
    )
    assert refs["dangling"].problem.startswith("CT without mask")  # its load names the broken link


def test_unlistable_folder_is_a_failing_case(
    tmp_path: Path, write_case: WriteCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder without read permission (simulated: the tests may run as root, who reads everything)."""
    write_case(tmp_path, "good")
    locked = tmp_path / "locked"
    write_case(locked, "hidden")
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    refs = _refs(PairsSource(tmp_path))
    assert set(refs) == {"good", "unreadable_locked"}
    assert refs["unreadable_locked"].problem == f"cannot read {locked}: cannot list the folder (Permission denied)"


def test_unreadable_entries_outside_the_asked_subset_are_not_listed(
    tmp_path: Path, write_case: WriteCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    volumes, labels = tmp_path / "volumes", tmp_path / "labels"
    for subset in ("COLONOG", "MSD"):
        ct, mask = write_case(volumes / subset, "c1")
        (labels / subset).mkdir(parents=True)
        os.replace(mask, labels / subset / "c1_seg.nii.gz")
        os.replace(ct, volumes / subset / "c1.nii.gz")
    os.symlink("..", volumes / "MSD" / "loop")
    assert set(_refs(CTSpine1KSource(tmp_path))) == {"COLONOG_c1", "MSD_c1", "unreadable_volumes_MSD_loop"}
    assert set(_refs(CTSpine1KSource(tmp_path, subset="COLONOG"))) == {"COLONOG_c1"}


def test_unpaired_files_are_listed_with_their_reason(tmp_path: Path, write_case: WriteCase) -> None:
    write_case(tmp_path, "good")
    _, mask = write_case(tmp_path, "ct_only")
    mask.unlink()
    ct, _ = write_case(tmp_path, "mask_only")
    ct.unlink()
    refs = _refs(PairsSource(tmp_path))
    assert refs["ct_only"].problem.startswith("CT without mask")
    assert refs["mask_only"].problem.startswith("mask without CT")


def test_ct_units_option_converts_and_is_part_of_the_settings(tmp_path: Path, write_case: WriteCase) -> None:
    write_case(tmp_path / "hu", "a")
    write_case(tmp_path / "raw", "a", offset=HU_PLUS_1024_OFFSET)
    hu_source = PairsSource(tmp_path / "hu")
    reference = hu_source.load(hu_source.list_cases()[0])
    raw_checked = PairsSource(tmp_path / "raw")
    with pytest.raises(CaseError, match=r"values are not HU.*source\.ct_units=hu_plus_1024"):
        raw_checked.load(raw_checked.list_cases()[0])
    raw = PairsSource(tmp_path / "raw", ct_units="auto")
    vol = raw.load(raw.list_cases()[0])
    assert vol.meta["ct_units"] == CONVERTED_FROM_HU_PLUS_1024
    np.testing.assert_allclose(vol.hu, reference.hu, atol=0.5)
    assert raw.file_settings(raw.list_cases()[0])["ct_units"] == "auto"
    with pytest.raises(InvalidOptionError, match=r"source\.ct_units must be one of"):
        PairsSource(tmp_path, ct_units="HU+1024")


@pytest.mark.parametrize(
    ("spacing_mm", "message"),
    [
        (0.2, r"largest vertebra label \(L1\) covers 0.00346 mL.*spacing in cm\?"),  # 2 mm written as 0.2 cm
        (0.002, r"voxel size 0.002 x 0.002 x 0.002 mm is outside 0.05..20 mm"),  # 2 mm written in metres
        (2000.0, r"voxel size 2000 x 2000 x 2000 mm is outside"),  # 2 mm written in micrometres
    ],
)
def test_spacing_in_the_wrong_unit_fails(
    tmp_path: Path, write_case: WriteCase, spacing_mm: float, message: str
) -> None:
    write_case(tmp_path, "a", spacing_mm=spacing_mm)
    source = PairsSource(tmp_path)
    with pytest.raises(CaseError, match=message):
        source.load(source.list_cases()[0])


def test_binary_whole_spine_mask_fails(
    tmp_path: Path, write_case: WriteCase, tiny_spine_ct: Callable[..., object]
) -> None:
    """One id for the whole (here 5x enlarged: 864 mL) spine: far more than one vertebra."""
    binary = (tiny_spine_ct().labels > 0).astype(np.int16)  # label 1 = C1
    write_case(tmp_path, "a", spacing_mm=10.0, labels=binary)
    source = PairsSource(tmp_path)
    with pytest.raises(CaseError, match=r"vertebra label C1 covers .* mL, more than 500 mL.*binary mask"):
        source.load(source.list_cases()[0])


def test_mask_of_another_scan_fails(
    tmp_path: Path, write_case: WriteCase, tiny_spine_ct: Callable[..., object]
) -> None:
    """Same grid, but the mask lies beside the spine (a mask of another scan): it covers no bone."""
    write_case(tmp_path, "a", labels=np.roll(tiny_spine_ct().labels, 8, axis=2))
    source = PairsSource(tmp_path)
    with pytest.raises(CaseError, match="vertebra mask covers no bone"):
        source.load(source.list_cases()[0])
    assert PairsSource(tmp_path, ct_units="hu_unchecked").load(source.list_cases()[0]).meta["ct_units"] == (
        "hu_unchecked"
    )
