"""Dataset layouts: CTSpine1K, VerSe, generic pairs (discovery, ids, splits, filters, incomplete cases)."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from x2ct.errors import CaseError
from x2ct.io.volume import canonical_affine
from x2ct.sources import (
    CaseRef,
    CTSpine1KSource,
    PairsSource,
    VerseSource,
    parse_ctspine1k_split,
    safe_case_id,
    verse_split_from_folder,
)

_SHAPE = (8, 8, 8)
_SPACING_MM = (8.0, 8.0, 8.0)  # the 16 mask voxels make an 8 mL vertebra, as real ones are
_VERTEBRA = (slice(2, 6), slice(3, 5), slice(3, 5))
_AIR_HU, _BONE_HU = -1000.0, 500.0


def _write_ct(path: Path, value: float = 0.0) -> None:
    """Air at ``value - 1000`` HU with bone where ``_write_mask`` puts the vertebra."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hu = np.full(_SHAPE, _AIR_HU + value, np.float32)
    hu[_VERTEBRA] = _BONE_HU
    nib.save(nib.Nifti1Image(hu, canonical_affine(_SPACING_MM)), path)


def _write_mask(path: Path, label: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(_SHAPE, np.int16)
    mask[_VERTEBRA] = label
    nib.save(nib.Nifti1Image(mask, canonical_affine(_SPACING_MM)), path)


def _ctspine1k(root: Path, top: str = "raw_data", vol_dir: str = "volumes", lbl_dir: str = "labels") -> Path:
    cases = {
        "COLONOG": ["1.3.6.1.4.1.9328.50.4.0001", "1.3.6.1.4.1.9328.50.4.0002", "1.3.6.1.4.1.9328.50.4.0003"],
        "HNSCC-3DCT-RT": ["HN_P001"],
        "COVID-19": ["volume-covid19-A-0003_ct"],
    }
    base = root / top if top else root
    for subset, stems in cases.items():
        for i, stem in enumerate(stems):
            _write_ct(base / vol_dir / subset / f"{stem}.nii.gz", value=float(i))
            _write_mask(base / lbl_dir / subset / f"{stem}_seg.nii.gz")
    return base


def test_ctspine1k_lists_sorted_unique_ids(tmp_path: Path) -> None:
    _ctspine1k(tmp_path)
    refs = CTSpine1KSource(tmp_path).list_cases()
    assert [r.case_id for r in refs] == [
        "COLONOG_1.3.6.1.4.1.9328.50.4.0001",
        "COLONOG_1.3.6.1.4.1.9328.50.4.0002",
        "COLONOG_1.3.6.1.4.1.9328.50.4.0003",
        "COVID-19_volume-covid19-A-0003_ct",
        "HNSCC-3DCT-RT_HN_P001",
    ]
    first = refs[0]
    assert first.ct_path == tmp_path / "raw_data/volumes/COLONOG/1.3.6.1.4.1.9328.50.4.0001.nii.gz"
    assert first.mask_path == tmp_path / "raw_data/labels/COLONOG/1.3.6.1.4.1.9328.50.4.0001_seg.nii.gz"
    assert all(r.split is None and r.problem is None for r in refs)


@pytest.mark.parametrize(("top", "vol_dir", "lbl_dir"), [("rawdata", "volumes", "labels"), ("", "data", "label")])
def test_ctspine1k_alternative_folders(tmp_path: Path, top: str, vol_dir: str, lbl_dir: str) -> None:
    _ctspine1k(tmp_path, top, vol_dir, lbl_dir)
    refs = CTSpine1KSource(tmp_path).list_cases()
    assert len(refs) == 5 and all(r.problem is None for r in refs)


def test_ctspine1k_subset_and_case_id_filters(tmp_path: Path) -> None:
    _ctspine1k(tmp_path)
    colonog = CTSpine1KSource(tmp_path, subset="colonog").list_cases()
    assert [r.case_id.split("_")[0] for r in colonog] == ["COLONOG"] * 3
    two = CTSpine1KSource(tmp_path, subset=["COLONOG", "COVID-19"]).list_cases()
    assert len(two) == 4
    picked = CTSpine1KSource(tmp_path, case_ids=["HNSCC-3DCT-RT_HN_P001"]).list_cases()
    assert [r.case_id for r in picked] == ["HNSCC-3DCT-RT_HN_P001"]
    with pytest.raises(ValueError, match=r"subset\(s\) \['msd-t10'\] not found.*available"):
        CTSpine1KSource(tmp_path, subset="MSD-T10").list_cases()
    with pytest.raises(ValueError, match=r"requested case ids not found.*nope"):
        CTSpine1KSource(tmp_path, case_ids=["nope"]).list_cases()


def test_ctspine1k_split_file(tmp_path: Path) -> None:
    base = _ctspine1k(tmp_path)
    (tmp_path / "data_split.txt").write_text(
        "trainset:\n1.3.6.1.4.1.9328.50.4.0001.nii.gz\nHN_P001\n\n"
        "test_public:\nCOLONOG/1.3.6.1.4.1.9328.50.4.0002.nii.gz\n"
        "test_private:\nvolume-covid19-A-0003_ct.nii.gzvolume-covid19-A-0003_ct.nii.gz\nliver_999.nii.gz\n"
    )
    refs = {r.case_id: r.split for r in CTSpine1KSource(tmp_path, use_split=True).list_cases()}
    assert refs == {
        "COLONOG_1.3.6.1.4.1.9328.50.4.0001": "train",
        "COLONOG_1.3.6.1.4.1.9328.50.4.0002": "test",
        "COLONOG_1.3.6.1.4.1.9328.50.4.0003": None,  # not listed: left to the caller
        "COVID-19_volume-covid19-A-0003_ct": "test",
        "HNSCC-3DCT-RT_HN_P001": "train",
    }
    # the split file may also sit next to the volume folder
    (tmp_path / "data_split.txt").rename(base / "data_split.txt")
    assert CTSpine1KSource(tmp_path, use_split=True).list_cases()[0].split == "train"
    (base / "data_split.txt").unlink()
    with pytest.raises(FileNotFoundError, match="no split file found; looked for"):
        CTSpine1KSource(tmp_path, use_split=True).list_cases()


def test_parse_split_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "split.txt"
    path.write_text("a.nii.gz\n")
    with pytest.raises(ValueError, match="before any section header"):
        parse_ctspine1k_split(path)
    path.write_text("holdout:\na.nii.gz\n")
    with pytest.raises(ValueError, match="unknown split section"):
        parse_ctspine1k_split(path)
    path.write_text("trainset:\na.nii.gz\ntest_public:\na_seg.nii.gz\n")
    with pytest.raises(ValueError, match="listed in both train and test"):
        parse_ctspine1k_split(path)


def test_ctspine1k_incomplete_cases_become_failing_refs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base = _ctspine1k(tmp_path)
    (base / "labels/COLONOG/1.3.6.1.4.1.9328.50.4.0003_seg.nii.gz").unlink()
    _write_mask(base / "labels/COLONOG/orphan_seg.nii.gz")
    source = CTSpine1KSource(tmp_path)
    with caplog.at_level(logging.WARNING):
        refs = {r.case_id: r for r in source.list_cases()}
    assert "2 incomplete case(s)" in caplog.text
    no_mask = refs["COLONOG_1.3.6.1.4.1.9328.50.4.0003"]
    assert no_mask.problem.startswith("CT without mask")
    assert no_mask.mask_path == base / "labels/COLONOG/1.3.6.1.4.1.9328.50.4.0003_seg.nii.gz"
    assert refs["COLONOG_orphan"].problem.startswith("mask without CT")
    with pytest.raises(CaseError, match=r"COLONOG_orphan.*mask without CT"):
        source.load(refs["COLONOG_orphan"])
    vol = source.load(refs["COLONOG_1.3.6.1.4.1.9328.50.4.0002"])
    assert vol.case_id == "COLONOG_1.3.6.1.4.1.9328.50.4.0002"
    assert float(vol.hu[0, 0, 0]) == _AIR_HU + 1.0  # the second COLONOG CT was written with value 1
    assert vol.meta["source"] == "ctspine1k" and vol.meta["levels_present"] == ["L1"]


def test_ctspine1k_missing_root_or_data(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="root folder not found"):
        CTSpine1KSource(tmp_path / "absent").list_cases()
    with pytest.raises(FileNotFoundError, match=r"no volume folder found; looked for .*raw_data/volumes"):
        CTSpine1KSource(tmp_path).list_cases()
    _write_ct(tmp_path / "raw_data/volumes/COLONOG/a.nii.gz")
    with pytest.raises(FileNotFoundError, match="no CT \\+ mask pair found"):
        CTSpine1KSource(tmp_path).list_cases()


def _verse(root: Path, keys: list[str]) -> None:
    for key in keys:
        subject = key.split("_")[0]
        _write_ct(root / "rawdata" / subject / f"{key}_ct.nii.gz")
        _write_mask(root / "derivatives" / subject / f"{key}_seg-vert_msk.nii.gz", label=28)


def test_verse_flat_root(tmp_path: Path) -> None:
    _verse(tmp_path, ["sub-verse004", "sub-gl003_dir-ax"])
    (tmp_path / "derivatives/sub-verse004/sub-verse004_seg-subreg_ctd.json").write_text("[]")
    source = VerseSource(tmp_path)
    refs = source.list_cases()
    assert [(r.case_id, r.split) for r in refs] == [("sub-gl003_dir-ax", None), ("sub-verse004", None)]
    assert refs[0].mask_path.name == "sub-gl003_dir-ax_seg-vert_msk.nii.gz"
    vol = source.load(refs[1])
    assert vol.meta["levels_present"] == ["T13"]


def test_verse_split_folders(tmp_path: Path) -> None:
    _verse(tmp_path / "01_training", ["sub-gl003_dir-ax"])
    _verse(tmp_path / "02_validation", ["sub-gl016_dir-ax"])
    _verse(tmp_path / "dataset-verse19test", ["sub-verse012"])
    _write_ct(tmp_path / "01_training/rawdata/sub-gl090/sub-gl090_dir-sag_ct.nii.gz")  # CT without mask
    refs = {r.case_id: r for r in VerseSource(tmp_path).list_cases()}
    assert {k: r.split for k, r in refs.items()} == {
        "sub-gl003_dir-ax": "train",
        "sub-gl016_dir-ax": "test",
        "sub-gl090_dir-sag": "train",
        "sub-verse012": "test",
    }
    assert refs["sub-gl090_dir-sag"].problem.startswith("CT without mask")
    assert verse_split_from_folder("03_test") == "test" and verse_split_from_folder("extra") is None
    with pytest.raises(FileNotFoundError, match="no rawdata/ or derivatives/"):
        VerseSource(tmp_path / "01_training" / "rawdata").list_cases()


def test_pairs_by_file_name_glob(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_ct(tmp_path / "a_ct.nii.gz")
    _write_mask(tmp_path / "a_seg.nii.gz")
    _write_ct(tmp_path / "p2" / "b_ct.nii")
    _write_mask(tmp_path / "p2" / "b_seg.nii.gz")
    _write_ct(tmp_path / "lonely_ct.nii.gz")
    _write_mask(tmp_path / "p2" / "a_seg.nii.gz")  # same stem as a, other folder: does not pair with ./a_ct
    (tmp_path / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING):
        refs = {r.case_id: r for r in PairsSource(tmp_path).list_cases()}
    assert sorted(refs) == ["a", "lonely", "p2_a", "p2_b"]
    assert refs["a"].problem is None and refs["p2_b"].problem is None
    assert refs["p2_b"].ct_path.name == "b_ct.nii"
    assert refs["lonely"].problem.startswith("CT without mask")
    assert refs["lonely"].mask_path == tmp_path / "lonely_seg.nii.gz"
    assert refs["p2_a"].problem.startswith("mask without CT")
    assert "lonely" in caplog.text


def test_pairs_by_folder_glob_and_overlapping_patterns(tmp_path: Path) -> None:
    for name in ("case1", "case2"):
        _write_ct(tmp_path / "imagesTr" / f"{name}.nii.gz")
        _write_mask(tmp_path / "labelsTr" / f"{name}.nii.gz")
    refs = PairsSource(tmp_path, ct_pattern="imagesTr/*.nii.gz", mask_pattern="labelsTr/*.nii.gz").list_cases()
    assert [(r.case_id, r.ct_path.parent.name, r.mask_path.parent.name) for r in refs] == [
        ("case1", "imagesTr", "labelsTr"),
        ("case2", "imagesTr", "labelsTr"),
    ]
    # "*.nii.gz" also matches the masks; the more specific mask pattern wins
    flat = tmp_path / "flat"
    _write_ct(flat / "x.nii.gz")
    _write_mask(flat / "x_seg.nii.gz")
    refs = PairsSource(flat, ct_pattern="*.nii.gz", mask_pattern="*_seg.nii.gz").list_cases()
    assert [(r.case_id, r.ct_path.name, r.mask_path.name) for r in refs] == [("x", "x.nii.gz", "x_seg.nii.gz")]


def test_pairs_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        PairsSource(tmp_path, ct_pattern="*_*_ct.nii.gz")
    _write_ct(tmp_path / "only_ct.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"no CT \+ mask pair found.*only \(CT without mask"):
        PairsSource(tmp_path).list_cases()
    with pytest.raises(FileNotFoundError, match="no file matches the patterns"):
        PairsSource(tmp_path, ct_pattern="*_image.nii.gz", mask_pattern="*_label.nii.gz").list_cases()
    with pytest.raises(ValueError, match="unknown label_scheme"):
        PairsSource(tmp_path, label_scheme="nnunet")


def test_pairs_load_with_totalsegmentator_scheme(tmp_path: Path) -> None:
    _write_ct(tmp_path / "s_ct.nii.gz")
    _write_mask(tmp_path / "s_seg.nii.gz", label=31)  # TotalSegmentator L1
    source = PairsSource(tmp_path, label_scheme="totalsegmentator")
    vol = source.load(source.list_cases()[0])
    assert np.unique(vol.labels).tolist() == [0, 20]
    assert vol.meta["source"] == "pairs" and vol.meta["split"] is None


def test_case_id_helpers() -> None:
    assert safe_case_id("COVID 19", "a/b:c") == "COVID_19_a_b_c"
    with pytest.raises(ValueError):
        safe_case_id("///")
    ref = CaseRef("x", Path("a.nii"), Path("b.nii"))
    assert ref.split is None and ref.problem is None
