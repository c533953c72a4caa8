"""NIfTI reading with reorientation to canonical (I, P, L) axes, validation errors and atomic writing."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from x2ct.errors import CaseError
from x2ct.io import nifti as nifti_io
from x2ct.io.nifti import load_ct_and_mask, nifti_stem, read_nifti_canonical, save_volume_nifti
from x2ct.io.volume import canonical_affine

# RAS+ unit vector of each nibabel axis code
_DIRECTIONS = {"R": (1, 0, 0), "L": (-1, 0, 0), "A": (0, 1, 0), "P": (0, -1, 0), "S": (0, 0, 1), "I": (0, 0, -1)}
_HU_GRADIENT = np.array([3.0, 5.0, 7.0])  # HU per mm along x (R), y (A), z (S): a unique value per position
_MARKER_LABEL, _BODY_LABEL = 20, 22  # L1 marker in the right-anterior-superior corner, L3 elsewhere
_MARKER_FROM_MM = 6.0  # marker where x, y and z are all > this


def _affine(axcodes: str, spacing: tuple[float, ...], shape: tuple[int, ...], rotation_deg: float = 0.0) -> np.ndarray:
    """Affine with the given voxel-axis directions and spacing, grid centred on the world origin."""
    matrix = np.column_stack([np.array(_DIRECTIONS[c], dtype=float) * s for c, s in zip(axcodes, spacing, strict=True)])
    angle = np.radians(rotation_deg)
    rot_z = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    matrix = rot_z @ matrix
    affine = np.eye(4)
    affine[:3, :3] = matrix
    affine[:3, 3] = -matrix @ ((np.asarray(shape) - 1) / 2.0)
    return affine


def _world(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """World RAS+ mm of every voxel centre, shape (*shape, 3)."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def _write_case(folder: Path, axcodes: str, spacing=(1.0, 1.5, 2.0), shape=(20, 16, 12), rotation_deg=0.0):
    affine = _affine(axcodes, spacing, shape, rotation_deg)
    world = _world(affine, shape)
    hu = (world @ _HU_GRADIENT).astype(np.float32)
    labels = np.where(np.all(world > _MARKER_FROM_MM, axis=-1), _MARKER_LABEL, _BODY_LABEL).astype(np.int16)
    ct_path, mask_path = folder / f"{axcodes}_ct.nii.gz", folder / f"{axcodes}_seg.nii.gz"
    nib.save(nib.Nifti1Image(hu, affine), ct_path)
    nib.save(nib.Nifti1Image(labels, affine), mask_path)
    return ct_path, mask_path, affine


@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "ASL", "PIR", "IPL"])
def test_load_reorients_to_canonical_axes(tmp_path: Path, axcodes: str) -> None:
    ct_path, mask_path, original_affine = _write_case(tmp_path, axcodes)
    vol = load_ct_and_mask(ct_path, mask_path)
    assert nib.aff2axcodes(vol.affine) == ("I", "P", "L")
    assert vol.hu.dtype == np.float32 and vol.labels.dtype == np.int16
    assert vol.case_id == f"{axcodes}_ct"
    # the marker (patient's right, anterior, superior) lands at small D, H and W indices
    marker = np.argwhere(vol.labels == _MARKER_LABEL)
    assert marker.min(axis=0).tolist() == [0, 0, 0]
    assert np.all(marker.max(axis=0) < np.asarray(vol.shape) / 2)
    # every voxel's world position from the new affine is the one it had in the file (HU encodes it)
    expected_hu = _world(vol.affine, vol.shape) @ _HU_GRADIENT
    np.testing.assert_allclose(vol.hu, expected_hu, atol=1e-3)
    # spacing follows the stored axes: canonical D is the S/I axis, H the A/P axis, W the R/L axis
    stored_spacing = dict(
        zip([c.replace("L", "R").replace("P", "A").replace("I", "S") for c in axcodes], (1.0, 1.5, 2.0), strict=True)
    )
    assert vol.spacing == (stored_spacing["S"], stored_spacing["A"], stored_spacing["R"])
    assert vol.meta["original_axcodes"] == axcodes
    assert vol.meta["levels_present"] == ["L1", "L3"]
    assert not vol.meta["oblique"]
    np.testing.assert_allclose(vol.meta["original_affine"], original_affine)


def test_canonical_affine_of_an_already_canonical_file_is_unchanged(tmp_path: Path) -> None:
    affine = canonical_affine((2.0, 1.0, 1.5), (10.0, -4.0, 3.0))
    hu = np.random.default_rng(0).normal(size=(8, 9, 10)).astype(np.float32)
    nib.save(nib.Nifti1Image(hu, affine), tmp_path / "c.nii")
    nib.save(nib.Nifti1Image(np.ones((8, 9, 10), np.uint8), affine), tmp_path / "m.nii")
    vol = load_ct_and_mask(tmp_path / "c.nii", tmp_path / "m.nii", case_id="c1")
    np.testing.assert_allclose(vol.affine, affine)
    np.testing.assert_array_equal(vol.hu, hu)
    assert vol.spacing == (2.0, 1.0, 1.5)


def test_oblique_affine_goes_to_closest_axes_and_is_recorded(tmp_path: Path) -> None:
    ct_path, mask_path, _ = _write_case(tmp_path, "LPS", rotation_deg=12.0)
    vol = load_ct_and_mask(ct_path, mask_path)
    assert vol.meta["oblique"]
    assert vol.meta["obliquity_deg"] == pytest.approx(12.0, abs=1e-6)
    np.testing.assert_allclose(vol.hu, _world(vol.affine, vol.shape) @ _HU_GRADIENT, atol=1e-3)
    assert np.argwhere(vol.labels == _MARKER_LABEL).min(axis=0).tolist() == [0, 0, 0]


def test_trailing_singleton_dimension_is_squeezed(tmp_path: Path) -> None:
    affine = canonical_affine((1.0, 1.0, 1.0))
    nib.save(nib.Nifti1Image(np.zeros((6, 7, 8, 1), np.float32), affine), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((6, 7, 8), np.int16), affine), tmp_path / "seg.nii.gz")
    assert load_ct_and_mask(tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz").shape == (6, 7, 8)


def test_float_mask_with_integer_values_and_totalsegmentator_scheme(tmp_path: Path) -> None:
    affine = canonical_affine((1.0, 1.0, 1.0))
    mask = np.zeros((6, 6, 6), np.float32)
    mask[1:3] = 31.0  # TotalSegmentator L1
    mask[3:5] = 5.0  # an organ -> background
    nib.save(nib.Nifti1Image(np.zeros((6, 6, 6), np.float32), affine), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "seg.nii.gz")
    vol = load_ct_and_mask(tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz", label_scheme="totalsegmentator")
    assert np.unique(vol.labels).tolist() == [0, 20]
    assert np.count_nonzero(vol.labels) == 2 * 36


def _save(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, canonical_affine((1.0, 1.0, 1.0)) if affine is None else affine), path)
    return path


def _good_pair(tmp_path: Path) -> tuple[Path, Path]:
    mask = np.zeros((6, 6, 6), np.int16)
    mask[2:4] = 20
    return _save(tmp_path / "ct.nii.gz", np.zeros((6, 6, 6), np.float32)), _save(tmp_path / "seg.nii.gz", mask)


def test_missing_and_unreadable_files_raise_case_error(tmp_path: Path) -> None:
    ct, mask = _good_pair(tmp_path)
    with pytest.raises(CaseError, match=r"mask file not found: .*nope\.nii\.gz"):
        load_ct_and_mask(ct, tmp_path / "nope.nii.gz")
    garbage = tmp_path / "broken.nii.gz"
    garbage.write_bytes(b"this is not a nifti file at all")
    with pytest.raises(CaseError, match=r"cannot read CT file .*broken\.nii\.gz"):
        load_ct_and_mask(garbage, mask)
    truncated = tmp_path / "truncated.nii.gz"
    _save(truncated, np.random.default_rng(0).normal(size=(30, 30, 30)).astype(np.float32))
    truncated.write_bytes(truncated.read_bytes()[:2000])
    with pytest.raises(CaseError, match=r"truncated\.nii\.gz"):
        load_ct_and_mask(truncated, mask)


def test_geometry_errors_name_the_files(tmp_path: Path) -> None:
    ct, mask = _good_pair(tmp_path)
    four_d = _save(tmp_path / "4d.nii.gz", np.zeros((6, 6, 6, 2), np.float32))
    with pytest.raises(CaseError, match=r"4d\.nii\.gz: expected a 3D image, got shape \(6, 6, 6, 2\)"):
        load_ct_and_mask(four_d, mask)
    small = _save(tmp_path / "small_seg.nii.gz", np.ones((6, 6, 5), np.int16))
    with pytest.raises(CaseError, match=r"small_seg\.nii\.gz has shape"):
        load_ct_and_mask(ct, small)
    shifted_affine = canonical_affine((1.0, 1.0, 1.0), (0.0, 0.0, 0.01))
    shifted = _save(tmp_path / "shift_seg.nii.gz", np.ones((6, 6, 6), np.int16), shifted_affine)
    with pytest.raises(CaseError, match=r"affine of mask .*shift_seg\.nii\.gz differs"):
        load_ct_and_mask(ct, shifted)
    rescaled = _save(tmp_path / "scale_seg.nii.gz", np.ones((6, 6, 6), np.int16), canonical_affine((1.0, 1.0, 1.01)))
    with pytest.raises(CaseError, match="spacing"):
        load_ct_and_mask(ct, rescaled)
    # float32 round-off in the origin is tolerated
    nearly = _save(
        tmp_path / "near_seg.nii.gz", np.ones((6, 6, 6), np.int16), canonical_affine((1.0, 1.0, 1.0), (0.0, 1e-5, 0.0))
    )
    assert load_ct_and_mask(ct, nearly).shape == (6, 6, 6)


def test_mask_stored_flipped_on_the_same_world_grid_is_accepted(tmp_path: Path) -> None:
    ct_path, _, affine = _write_case(tmp_path, "RAS")  # shape (20, 16, 12)
    flipped = np.flip(np.asarray(nib.load(tmp_path / "RAS_seg.nii.gz").dataobj), axis=0)
    flip_affine = affine @ np.array([[-1, 0, 0, 19], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
    mask_path = _save(tmp_path / "flipped_seg.nii.gz", np.ascontiguousarray(flipped), flip_affine)
    vol = load_ct_and_mask(ct_path, mask_path)
    assert np.argwhere(vol.labels == _MARKER_LABEL).min(axis=0).tolist() == [0, 0, 0]


def test_content_errors(tmp_path: Path) -> None:
    ct, mask = _good_pair(tmp_path)
    bad_hu = np.zeros((6, 6, 6), np.float32)
    bad_hu[1, 2, 3] = np.nan
    with pytest.raises(CaseError, match=r"nan_ct\.nii\.gz contains 1 NaN/inf"):
        load_ct_and_mask(_save(tmp_path / "nan_ct.nii.gz", bad_hu), mask)
    with pytest.raises(CaseError, match=r"empty_seg\.nii\.gz contains no vertebra labels"):
        load_ct_and_mask(ct, _save(tmp_path / "empty_seg.nii.gz", np.zeros((6, 6, 6), np.int16)))
    half = np.full((6, 6, 6), 0.5, np.float32)
    with pytest.raises(CaseError, match=r"half_seg\.nii\.gz has non-integer values"):
        load_ct_and_mask(ct, _save(tmp_path / "half_seg.nii.gz", half))
    organs = np.full((6, 6, 6), 90, np.int16)
    with pytest.raises(CaseError, match="outside the CTSpine1K/VerSe numbering"):
        load_ct_and_mask(ct, _save(tmp_path / "organ_seg.nii.gz", organs))
    with pytest.raises(CaseError, match="no vertebra labels"):  # organs only, as TotalSegmentator
        load_ct_and_mask(ct, tmp_path / "organ_seg.nii.gz", label_scheme="totalsegmentator")


def test_save_round_trip_ct_and_labels(tmp_path: Path) -> None:
    ct_path, mask_path, _ = _write_case(tmp_path, "LPS")
    vol = load_ct_and_mask(ct_path, mask_path)
    out = tmp_path / "out"
    save_volume_nifti(vol, out / "ct.nii.gz", what="ct")
    save_volume_nifti(vol, out / "labels.nii.gz", what="labels")
    assert sorted(p.name for p in out.iterdir()) == ["ct.nii.gz", "labels.nii.gz"]  # no temporary left
    image = nib.load(out / "ct.nii.gz")
    assert image.get_data_dtype() == np.float32
    assert nib.aff2axcodes(image.affine) == ("I", "P", "L")
    assert int(image.header["sform_code"]) == 1 and int(image.header["qform_code"]) == 1
    np.testing.assert_allclose(image.affine, vol.affine, atol=1e-5)
    assert nib.load(out / "labels.nii.gz").get_data_dtype() == np.int16
    again = load_ct_and_mask(out / "ct.nii.gz", out / "labels.nii.gz")
    np.testing.assert_array_equal(again.hu, vol.hu)
    np.testing.assert_array_equal(again.labels, vol.labels)


def test_save_int16_ct_rounds_and_clips(tmp_path: Path) -> None:
    ct, mask = _good_pair(tmp_path)
    vol = load_ct_and_mask(ct, mask)
    vol.hu[0, 0, 0], vol.hu[0, 0, 1], vol.hu[0, 0, 2] = 99.6, -1e6, 1e6
    save_volume_nifti(vol, tmp_path / "int.nii", what="ct", ct_dtype="int16")
    data = np.asarray(nib.load(tmp_path / "int.nii").dataobj)
    assert data.dtype == np.int16
    assert data[0, 0, :3].tolist() == [100, -32768, 32767]


def test_save_is_atomic_and_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ct, mask = _good_pair(tmp_path)
    vol = load_ct_and_mask(ct, mask)
    target = tmp_path / "final" / "ct.nii.gz"

    def failing_save(image: nib.Nifti1Image, filename: str) -> None:
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nifti_io.nib, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_volume_nifti(vol, target)
    assert list(target.parent.iterdir()) == []  # neither the final name nor the temporary exists
    monkeypatch.undo()
    with pytest.raises(ValueError, match="not a NIfTI file name"):
        save_volume_nifti(vol, tmp_path / "ct.mha")
    with pytest.raises(ValueError, match="what must be"):
        save_volume_nifti(vol, tmp_path / "x.nii", what="mask")  # type: ignore[arg-type]
    vol.labels = None
    with pytest.raises(ValueError, match="no labels"):
        save_volume_nifti(vol, tmp_path / "x.nii", what="labels")


def test_nifti_stem_and_read_canonical_keeps_dtype(tmp_path: Path) -> None:
    assert nifti_stem("a/1.3.6.1.4.nii.gz") == "1.3.6.1.4"
    assert nifti_stem("B.NII") == "B"
    path = _save(tmp_path / "u8.nii", np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    image = read_nifti_canonical(path)
    assert image.data.dtype == np.uint8
    assert image.original_shape == (2, 3, 4)
    # stored (I, P, L) already: unchanged
    np.testing.assert_array_equal(image.data, np.arange(24).reshape(2, 3, 4))
