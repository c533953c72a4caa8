"""The triplet HDF5 schema: keys, round trip, attributes, atomic writes, official files, validation errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from x2ct.drr import DRRConfig, DRRRenderer, ViewSpec
from x2ct.errors import CaseError
from x2ct.io import hdf5
from x2ct.io.hdf5 import (
    HU_OFFSET,
    SCHEMA_VERSION,
    TripletFileError,
    TripletNotFoundError,
    angle_from_key,
    flatten_attributes,
    lateral_key,
    parse_spacing,
    read_spacing,
    read_triplet,
    validate_triplet,
    write_triplet,
)

D, H, W = 32, 40, 48  # three different sizes so that any axis mix-up shows


def make_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[float, np.ndarray]]:
    rng = np.random.default_rng(seed)
    ct_hu = rng.integers(-1000, 2000, size=(D, H, W)).astype(np.float32)
    xray1 = rng.integers(0, 256, size=(D, W), dtype=np.uint8)
    laterals = {float(a): rng.integers(0, 256, size=(D, H), dtype=np.uint8) for a in (90, 85, 75)}
    return ct_hu, xray1, laterals


ATTRS = {
    "case_id": "verse_004",
    "spacing_mm": [1.0, 1.0, 1.5],
    "geometry": {"sid_mm": 1000.0, "sad_mm": 850.0, "mode": "cone", "detector": {"pixels": 128}},
    "drr_mode": "physical",
    "window": None,
    "flags": [True, False],
    "affine": np.eye(4),
    "source": Path("/data/ct.nii.gz"),
}


def write_official(path: Path, ct: np.ndarray, xray1: np.ndarray, xray2: np.ndarray) -> Path:
    with h5py.File(path, "w") as h5:
        h5.create_dataset("ct", data=ct)
        h5.create_dataset("xray1", data=xray1)
        h5.create_dataset("xray2", data=xray2)
    return path


# ------------------------------------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    ("angle", "key"),
    [(90, "xray2"), (90.0, "xray2"), (85, "xray2_085"), (75.0, "xray2_075"), (5, "xray2_005"), (120, "xray2_120")],
)
def test_lateral_key(angle: float, key: str) -> None:
    assert lateral_key(angle) == key
    assert angle_from_key(key) == float(angle)


@pytest.mark.parametrize("angle", [85.5, 0, 180, -5, 270, float("nan")])
def test_lateral_key_rejects_bad_angles(angle: float) -> None:
    with pytest.raises(ValueError, match="angle"):
        lateral_key(angle)


def test_angle_from_key_ignores_other_datasets() -> None:
    assert angle_from_key("ct") is None and angle_from_key("xray1") is None and angle_from_key("xray2_85") is None


# ---------------------------------------------------------------------------------------------- writing


def test_round_trip(tmp_path: Path) -> None:
    ct_hu, xray1, laterals = make_case()
    path = write_triplet(tmp_path / "ct_xray_data.h5", ct_hu, xray1, laterals, ATTRS)
    triplet = read_triplet(path)
    assert triplet.ct_hu_plus_1024.dtype == np.float32 and triplet.ct_hu_plus_1024.shape == (D, H, W)
    np.testing.assert_array_equal(triplet.ct_hu_plus_1024, ct_hu + HU_OFFSET)
    np.testing.assert_array_equal(triplet.xray1, xray1)
    np.testing.assert_array_equal(triplet.xray2, laterals[90.0])
    assert triplet.available_angles == [75.0, 85.0, 90.0]
    np.testing.assert_array_equal(read_triplet(path, lateral_angle=85).xray2, laterals[85.0])
    assert read_triplet(path, lateral_angle=75).lateral_angle == 75.0
    with h5py.File(path) as h5:
        assert set(h5) == {"ct", "xray1", "xray2", "xray2_085", "xray2_075"}
        assert h5["ct"].dtype == np.int16 and h5["ct"].attrs["hu_offset"] == HU_OFFSET
        assert h5["xray1"].dtype == np.uint8


def test_attributes_are_flattened_and_converted(tmp_path: Path) -> None:
    ct_hu, xray1, laterals = make_case()
    attrs = read_triplet(write_triplet(tmp_path / "a.h5", ct_hu, xray1, laterals, ATTRS)).attrs
    assert attrs["case_id"] == "verse_004"
    assert attrs["spacing_mm"] == [1.0, 1.0, 1.5]
    assert attrs["geometry.sid_mm"] == 1000.0 and attrs["geometry.mode"] == "cone"
    assert attrs["geometry.detector.pixels"] == 128
    assert attrs["window"] is None
    assert attrs["flags"] == [1, 0]
    assert attrs["affine"] == np.eye(4).tolist()
    assert attrs["source"] == "/data/ct.nii.gz"
    assert attrs["schema_version"] == SCHEMA_VERSION and attrs["hu_offset"] == HU_OFFSET
    assert attrs["lateral_angles"] == [75.0, 85.0, 90.0]
    assert flatten_attributes({"a": {"b": ["x", "y"]}})["a.b"].tolist() == ["x", "y"]


def test_none_has_one_encoding_and_reads_back_as_none(tmp_path: Path) -> None:
    """None is stored one way (also for the renderer's unset DRR options) and the reader returns None."""
    renderer = DRRRenderer(DRRConfig(detector_shape=None, display_window=None))
    renderer.render(torch.zeros(8, 8, 8), (1.0, 1.0, 1.0), views=[ViewSpec("xray1", 0.0, lateral=False)])
    ct_hu, xray1, laterals = make_case()
    path = write_triplet(tmp_path / "n.h5", ct_hu, xray1, laterals, {"drr": renderer.geometry_attrs(), "a": None})
    with h5py.File(path) as h5:
        stored = {name: value for name, value in h5.attrs.items() if name in ("a", "drr.detector_shape")}
    assert stored == {"a": hdf5.NONE_ATTRIBUTE, "drr.detector_shape": hdf5.NONE_ATTRIBUTE}
    attrs = read_triplet(path).attrs
    assert attrs["a"] is None and attrs["drr.detector_shape"] is None and attrs["drr.display_window"] is None
    assert attrs["drr.geometry"] == "cone"  # other strings stay strings


def test_read_spacing_reads_attributes_only_and_checks_them(tmp_path: Path) -> None:
    ct_hu, xray1, laterals = make_case()
    path = write_triplet(tmp_path / "s.h5", ct_hu, xray1, laterals, {"spacing_mm": [1.0, 2.0, 1.5]})
    assert read_spacing(path) == ((1.0, 2.0, 1.5), (D, H, W))
    official = write_official(tmp_path / "o.h5", ct_hu + HU_OFFSET, xray1, laterals[90.0])
    assert read_spacing(official) == (None, (D, H, W))
    for bad in ([1.0, 1.0], [1.0, 0.0, 1.0], [1.0, float("nan"), 1.0], "thin"):
        with h5py.File(path, "a") as h5:
            h5.attrs["spacing_mm"] = bad
        with pytest.raises(TripletFileError, match=r"s\.h5.*spacing_mm"):
            read_spacing(path)
    with pytest.raises(TripletNotFoundError):
        read_spacing(tmp_path / "missing.h5")
    assert parse_spacing(b"None", "x.h5") is None and parse_spacing(np.array([1, 2, 3]), "x.h5") == (1.0, 2.0, 3.0)


def test_int16_rounds_and_clips_while_float32_keeps_fractions(tmp_path: Path) -> None:
    ct_hu, xray1, laterals = make_case()
    ct_hu[0, 0, :3] = (-2048.0, 40.4, 40.6)  # scanner padding below -1024 HU, fractional values
    as_int16 = read_triplet(write_triplet(tmp_path / "i.h5", ct_hu, xray1, laterals)).ct_hu_plus_1024
    assert as_int16[0, 0, :3].tolist() == [0.0, 1064.0, 1065.0]
    as_float = read_triplet(write_triplet(tmp_path / "f.h5", ct_hu, xray1, laterals, ct_dtype="float32"))
    np.testing.assert_allclose(as_float.ct_hu_plus_1024[0, 0, :3], [-1024.0, 1064.4, 1064.6], atol=1e-4)
    assert (tmp_path / "i.h5").stat().st_size < 0.7 * (tmp_path / "f.h5").stat().st_size


def test_compression(tmp_path: Path) -> None:
    ct_hu = np.full((D, H, W), -1000.0, np.float32)
    ct_hu[8:24, 10:30, 12:36] = 400.0  # compressible, like a real CT with air around the body
    _, xray1, laterals = make_case()
    plain = write_triplet(tmp_path / "plain.h5", ct_hu, xray1, laterals)
    packed = write_triplet(tmp_path / "gzip.h5", ct_hu, xray1, laterals, compression="gzip")
    with h5py.File(packed) as h5:
        assert h5["ct"].compression == "gzip"
    assert packed.stat().st_size < plain.stat().st_size / 2
    np.testing.assert_array_equal(read_triplet(packed).ct_hu_plus_1024, read_triplet(plain).ct_hu_plus_1024)


def test_square_paper_mode_xrays_are_accepted(tmp_path: Path) -> None:
    ct_hu, _, _ = make_case()
    square = np.zeros((16, 16), np.uint8)
    triplet = read_triplet(write_triplet(tmp_path / "a.h5", ct_hu, square, {90: square}))
    assert triplet.xray1.shape == (16, 16) and triplet.xray2.shape == (16, 16)


@pytest.mark.parametrize(
    ("xray1", "laterals", "message"),
    [
        (np.zeros((D, H), np.uint8), None, r"'xray1' has shape \(32, 40\)"),  # H where W belongs
        (np.zeros((D, W), np.float32), None, "must be uint8"),
        (np.zeros((D, W, 3), np.uint8), None, "2D"),
        (None, {85: np.zeros((D, H), np.uint8)}, "90-degree"),
        (None, {90: np.zeros((D, H), np.uint8), 85: np.zeros((D, W), np.uint8)}, "'xray2_085' has shape"),
        (None, {90: np.zeros((D, H), np.uint8), 85.5: np.zeros((D, H), np.uint8)}, "whole number"),
        (
            None,
            {90: np.zeros((D, H), np.uint8), 85: np.zeros((D, H), np.uint8), 85.0000001: np.zeros((D, H), np.uint8)},
            "twice",
        ),
    ],
)
def test_write_rejects_bad_images(
    tmp_path: Path, xray1: np.ndarray | None, laterals: dict | None, message: str
) -> None:
    ct_hu, good_xray1, good_laterals = make_case()
    with pytest.raises(ValueError, match=message):
        write_triplet(
            tmp_path / "a.h5",
            ct_hu,
            good_xray1 if xray1 is None else xray1,
            good_laterals if laterals is None else laterals,
        )
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_ct(tmp_path: Path) -> None:
    ct_hu, xray1, laterals = make_case()
    ct_hu[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_triplet(tmp_path / "a.h5", ct_hu, xray1, laterals)
    with pytest.raises(ValueError, match="3D"):
        write_triplet(tmp_path / "a.h5", ct_hu[0], xray1, laterals)
    with pytest.raises(FileNotFoundError, match="missing"):
        write_triplet(tmp_path / "missing" / "a.h5", make_case()[0], xray1, laterals)


def test_failed_attribute_leaves_no_file(tmp_path: Path) -> None:
    ct_hu, xray1, laterals = make_case()
    with pytest.raises(TypeError, match="'bad'"):
        write_triplet(tmp_path / "a.h5", ct_hu, xray1, laterals, {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_leaves_no_final_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ct_hu, xray1, laterals = make_case()
    final = tmp_path / "ct_xray_data.h5"
    write_triplet(final, ct_hu, xray1, laterals)
    before = final.read_bytes()
    original = h5py.Group.create_dataset
    written: list[str] = []

    def failing_create_dataset(self: h5py.Group, name: str, *args: object, **kwargs: object) -> h5py.Dataset:
        if name == "xray2_085":  # ct and xray1 are already in the temporary file
            raise OSError("disk full (simulated)")
        written.append(name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing_create_dataset)
    with pytest.raises(OSError, match="simulated"):
        write_triplet(final, ct_hu + 1, xray1, laterals)
    assert "ct" in written  # the failure really happened half-way
    assert final.read_bytes() == before  # the previous complete file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct_xray_data.h5"]  # no temporary left
    (tmp_path / "ct_xray_data.h5").unlink()
    with pytest.raises(OSError, match="simulated"):
        write_triplet(final, ct_hu, xray1, laterals)
    assert list(tmp_path.iterdir()) == []


def test_failed_replace_cleans_the_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ct_hu, xray1, laterals = make_case()

    def failing_replace(source: object, target: object) -> None:
        raise PermissionError("replace refused (simulated)")

    monkeypatch.setattr(hdf5.os, "replace", failing_replace)
    with pytest.raises(PermissionError):
        write_triplet(tmp_path / "a.h5", ct_hu, xray1, laterals)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------- official files


@pytest.mark.parametrize("dtype", [np.float64, np.uint8, np.uint16, np.int16])
def test_official_files_load(tmp_path: Path, dtype: type) -> None:
    rng = np.random.default_rng(1)
    ct = rng.integers(0, 250, size=(D, H, W)).astype(dtype)
    xray1 = rng.integers(0, 256, size=(128, 128), dtype=np.uint8)
    xray2 = rng.integers(0, 256, size=(128, 128), dtype=np.uint8)
    path = write_official(tmp_path / "ct_xray_data.h5", ct, xray1, xray2)
    triplet = read_triplet(path)
    np.testing.assert_array_equal(triplet.ct_hu_plus_1024, ct.astype(np.float32))
    np.testing.assert_array_equal(triplet.xray2, xray2)
    assert triplet.attrs == {} and triplet.available_angles == [90.0]
    validate_triplet(path)


def test_numeric_non_uint8_xrays_in_range_are_converted(tmp_path: Path) -> None:
    xray = np.linspace(0, 255, 32 * 32).reshape(32, 32)  # float64 0..255
    path = write_official(tmp_path / "a.h5", np.zeros((D, H, W)), xray, xray)
    np.testing.assert_array_equal(read_triplet(path).xray1, np.round(xray).astype(np.uint8))
    write_official(tmp_path / "b.h5", np.zeros((D, H, W)), xray * 2, xray)
    with pytest.raises(TripletFileError, match=r"'xray1'.*outside \[0, 255\]"):
        read_triplet(tmp_path / "b.h5")


# ---------------------------------------------------------------------------------------- read errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TripletNotFoundError, match=r"nope\.h5") as info:
        read_triplet(tmp_path / "nope.h5")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CaseError)


def test_not_hdf5(tmp_path: Path) -> None:
    (tmp_path / "a.h5").write_text("not an hdf5 file")
    with pytest.raises(TripletFileError, match=r"a\.h5 is not an HDF5 file"):
        read_triplet(tmp_path / "a.h5")


def test_missing_dataset_and_missing_angle(tmp_path: Path) -> None:
    ct_hu, xray1, laterals = make_case()
    path = write_triplet(tmp_path / "a.h5", ct_hu, xray1, laterals)
    with pytest.raises(TripletFileError, match=r"no lateral view at 80 degrees.*\[75.0, 85.0, 90.0\]"):
        read_triplet(path, lateral_angle=80)
    with h5py.File(path, "a") as h5:
        del h5["xray1"]
    with pytest.raises(TripletFileError, match=r"a\.h5: dataset 'xray1' is missing"):
        read_triplet(path)


@pytest.mark.parametrize(
    ("ct", "xray", "message"),
    [
        (np.zeros((D, H)), np.zeros((D, W), np.uint8), "'ct' must be a non-empty 3D"),
        (np.full((D, H, W), np.nan), np.zeros((16, 16), np.uint8), "NaN"),
        (np.array([[[b"a"]]]), np.zeros((16, 16), np.uint8), "non-numeric"),
        (np.zeros((D, H, W)), np.zeros((2, 16, 16), np.uint8), "'xray1' must be a non-empty 2D"),
        (np.zeros((D, H, W)), np.zeros((D, H + 1), np.uint8), "'xray1' has shape"),
    ],
)
def test_bad_contents(tmp_path: Path, ct: np.ndarray, xray: np.ndarray, message: str) -> None:
    path = write_official(tmp_path / "bad.h5", ct, xray, xray)
    with pytest.raises(TripletFileError, match=message):
        read_triplet(path)
    with pytest.raises(TripletFileError, match=message):
        validate_triplet(path)


def test_validate_checks_required_angles_and_every_lateral(tmp_path: Path) -> None:
    ct_hu, xray1, laterals = make_case()
    path = write_triplet(tmp_path / "a.h5", ct_hu, xray1, laterals)
    validate_triplet(path)
    validate_triplet(path, required_angles=(90, 85, 75))
    with pytest.raises(TripletFileError, match=r"missing lateral angles \[80.0\]"):
        validate_triplet(path, required_angles=(90, 80))
    with h5py.File(path, "a") as h5:
        del h5["xray2_075"]
        h5.create_dataset("xray2_075", data=np.zeros((3, 5), np.uint8))  # broken, though not requested
    read_triplet(path)  # reading the 90-degree view still works
    with pytest.raises(TripletFileError, match="'xray2_075' has shape"):
        validate_triplet(path)
