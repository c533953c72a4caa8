"""X2CTDataset: normalized samples, resizing, lateral angle selection, official files, pickling, workers,
augmentation, errors naming the case, and the projection matrices of the views."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tests.support.marked_cases import ANGLES, CUBE, lateral_value, write_cases
from x2ct.data.augment import AugmentConfig, TripletAugmenter
from x2ct.data.dataset import X2CTDataset
from x2ct.drr import ViewSpec, flip_image_columns, flip_volume_x, projection_matrix
from x2ct.io.hdf5 import TRIPLET_FILENAME, TripletFileError, TripletNotFoundError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_cases(tmp_path / "data", ["case_a", "case_b", "case_c"])


# ---------------------------------------------------------------------------------------------- samples


def test_sample_shapes_types_and_values(root: Path) -> None:
    dataset = X2CTDataset(root, ["case_a", "case_b"], cube=CUBE)
    assert len(dataset) == 2
    sample = dataset[1]
    assert sample["case_id"] == "case_b"
    assert sample["ct"].shape == (1, CUBE, CUBE, CUBE) and sample["ct"].dtype == torch.float32
    assert sample["xray1"].shape == sample["xray2"].shape == (1, CUBE, CUBE)
    ct = sample["ct"][0]
    assert ct[CUBE // 2, CUBE // 2, CUBE // 2].item() == pytest.approx(1024 / 2500)  # HU 0
    assert ct[CUBE // 2, 0, CUBE // 2].item() == pytest.approx(24 / 2500)  # air, HU -1000
    assert ct[5, 5, 0].item() == pytest.approx(2024 / 2500)  # marker, HU 1000
    assert ct[0, 0, 0].item() == pytest.approx(1034 / 2500)  # case index 1 -> HU 10
    assert sample["xray1"][0, 5, 0].item() == pytest.approx(200 / 255)
    assert sample["xray1"][0, 5, 10].item() == pytest.approx(40 / 255)
    assert sample["xray2"][0, 0, 0].item() == pytest.approx(1 / 255)  # case index 1


def test_stored_cube_differs_from_cube_is_resized(tmp_path: Path) -> None:
    root = write_cases(tmp_path, ["big"], cube=32)
    sample = X2CTDataset(root, ["big"], cube=CUBE, xray_size=8)[0]
    assert sample["ct"].shape == (1, CUBE, CUBE, CUBE)
    assert sample["xray1"].shape == sample["xray2"].shape == (1, 8, 8)
    ct = sample["ct"][0]
    assert ct[CUBE // 2, 0, CUBE // 2].item() == pytest.approx(24 / 2500)  # air row kept
    assert ct[CUBE // 2, CUBE // 2, CUBE // 2].item() == pytest.approx(1024 / 2500)  # body kept
    assert ct[5, 5, 0].item() == pytest.approx(2024 / 2500)  # marker column kept (corner-aligned)
    assert sample["xray2"][0, 4, 4].item() == pytest.approx(lateral_value(90) / 255)


def test_xray_size_defaults_to_cube(tmp_path: Path) -> None:
    root = write_cases(tmp_path, ["big"], cube=32)
    sample = X2CTDataset(root, ["big"], cube=CUBE)[0]
    assert sample["xray1"].shape == (1, CUBE, CUBE)


@pytest.mark.parametrize("angle", ANGLES)
def test_lateral_angle_selects_the_view(root: Path, angle: float) -> None:
    sample = X2CTDataset(root, ["case_c"], lateral_angle=angle, cube=CUBE)[0]
    assert sample["xray2"][0, 5, 5].item() == pytest.approx(lateral_value(angle) / 255)


def test_missing_angle_names_case_file_and_available_angles(root: Path) -> None:
    dataset = X2CTDataset(root, ["case_a"], lateral_angle=75, cube=CUBE)
    expected = r"case 'case_a'.*ct_xray_data\.h5.*75.*available angles: \[85\.0, 90\.0\]"
    with pytest.raises(TripletFileError, match=expected):
        dataset[0]


def test_official_format_file_loads(tmp_path: Path) -> None:
    """Files of the official pipeline: keys ct (float64, HU + 1024), xray1, xray2 only, no attributes."""
    folder = tmp_path / "LIDC-0001"
    folder.mkdir()
    ct = np.full((20, 20, 20), 1024.0, dtype=np.float64)
    ct[0] = 3000.0
    with h5py.File(folder / TRIPLET_FILENAME, "w") as h5:
        h5.create_dataset("ct", data=ct)
        h5.create_dataset("xray1", data=np.full((24, 24), 255, dtype=np.uint8))
        h5.create_dataset("xray2", data=np.full((24, 24), 51, dtype=np.uint8))
    sample = X2CTDataset(tmp_path, ["LIDC-0001"], cube=CUBE)[0]
    assert sample["ct"].shape == (1, CUBE, CUBE, CUBE)
    assert sample["ct"][0, 0, 3, 3].item() == pytest.approx(1.0)  # 3000 clipped to 2500
    assert sample["ct"][0, -1, 3, 3].item() == pytest.approx(1024 / 2500)
    assert sample["xray1"].shape == (1, CUBE, CUBE)
    assert torch.allclose(sample["xray1"], torch.ones(1)) and torch.allclose(sample["xray2"], torch.tensor(0.2))


def test_missing_dataset_names_case_and_key(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    with h5py.File(folder / TRIPLET_FILENAME, "w") as h5:
        h5.create_dataset("ct", data=np.zeros((8, 8, 8)))
        h5.create_dataset("xray2", data=np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(TripletFileError, match=r"case 'broken'.*broken/ct_xray_data\.h5.*'xray1' is missing"):
        X2CTDataset(tmp_path, ["broken"], cube=8)[0]


def test_file_removed_after_construction_names_case(root: Path) -> None:
    dataset = X2CTDataset(root, ["case_a"], cube=CUBE)
    (root / "case_a" / TRIPLET_FILENAME).unlink()
    with pytest.raises(TripletNotFoundError, match=r"case 'case_a'.*does not exist"):
        dataset[0]


def test_construction_errors_name_the_path(root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"data root .*nowhere"):
        X2CTDataset(tmp_path / "nowhere", ["case_a"])
    with pytest.raises(FileNotFoundError, match=r"ghost/ct_xray_data\.h5"):
        X2CTDataset(root, ["case_a", "ghost"])
    with pytest.raises(ValueError, match="no cases"):
        X2CTDataset(root, [])
    with pytest.raises(ValueError, match=r"more than once.*case_a"):
        X2CTDataset(root, ["case_a", "case_a"])
    with pytest.raises(ValueError, match="angle"):
        X2CTDataset(root, ["case_a"], lateral_angle=85.5)
    with pytest.raises(ValueError, match="cube"):
        X2CTDataset(root, ["case_a"], cube=0)


# --------------------------------------------------------------------------------- pickling and workers


def test_dataset_pickles_after_reading_an_item(root: Path) -> None:
    dataset = X2CTDataset(root, ["case_a", "case_b"], cube=CUBE, augment=AugmentConfig(xray_noise_std=0.1))
    first = dataset[0]
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy.case_ids == dataset.case_ids
    assert torch.equal(copy[1]["ct"], dataset[1]["ct"])
    assert torch.equal(copy[0]["ct"], first["ct"])


def test_dataloader_with_two_spawn_workers(root: Path) -> None:
    """Spawn workers receive the dataset pickled, as under ddp_spawn or on macOS / Windows."""
    ids = ["case_a", "case_b", "case_c"]
    dataset = X2CTDataset(root, ids, cube=CUBE)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, multiprocessing_context="spawn")
    batches = list(loader)
    assert [c for batch in batches for c in batch["case_id"]] == ids
    assert batches[0]["ct"].shape == (2, 1, CUBE, CUBE, CUBE)
    assert torch.equal(batches[1]["ct"][0], dataset[2]["ct"])


# ------------------------------------------------------------------------------------------ augmentation


def test_flip_mirrors_ct_and_xray1_together_and_leaves_xray2(root: Path) -> None:
    plain = X2CTDataset(root, ["case_b"], cube=CUBE)[0]
    flipped = X2CTDataset(root, ["case_b"], cube=CUBE, augment=AugmentConfig(flip_lr=1.0))[0]
    assert torch.equal(flipped["ct"], plain["ct"].flip(-1))
    assert torch.equal(flipped["xray1"], plain["xray1"].flip(-1))
    assert torch.equal(flipped["xray2"], plain["xray2"])
    # the marker moved from the patient's right (low W / low columns) to the left in both
    assert flipped["ct"][0, 5, 5, -1].item() == pytest.approx(2024 / 2500)
    assert flipped["xray1"][0, 5, -1].item() == pytest.approx(200 / 255)


def test_gamma_and_noise_change_only_the_xrays(root: Path) -> None:
    plain = X2CTDataset(root, ["case_a"], cube=CUBE)[0]
    squared = X2CTDataset(root, ["case_a"], cube=CUBE, augment=AugmentConfig(xray_gamma=(2.0, 2.0)))[0]
    for key in ("xray1", "xray2"):
        assert torch.allclose(squared[key], plain[key] ** 2)
    assert torch.equal(squared["ct"], plain["ct"])
    noisy = X2CTDataset(root, ["case_a"], cube=CUBE, augment=AugmentConfig(xray_noise_std=0.05))[0]
    assert torch.equal(noisy["ct"], plain["ct"])
    difference = (noisy["xray1"] - plain["xray1"]).std().item()
    assert 0.03 < difference < 0.07
    assert noisy["xray1"].min() >= 0.0 and noisy["xray1"].max() <= 1.0


def test_augmentation_is_seeded_and_advances(root: Path) -> None:
    config = AugmentConfig(flip_lr=0.5, xray_gamma=(0.7, 1.4), xray_noise_std=0.02)

    def draw() -> list[torch.Tensor]:
        torch.manual_seed(123)
        dataset = X2CTDataset(root, ["case_a"], cube=CUBE, augment=config)
        return [dataset[0]["xray1"] for _ in range(3)]

    first, second = draw(), draw()
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], first[1])  # the stream advances from item to item


def test_augmenter_does_not_modify_its_input() -> None:
    sample = {"ct": torch.rand(1, 4, 4, 4), "xray1": torch.rand(1, 4, 4), "xray2": torch.rand(1, 4, 4), "case_id": "x"}
    before = {k: v.clone() for k, v in sample.items() if isinstance(v, torch.Tensor)}
    TripletAugmenter(AugmentConfig(flip_lr=1.0, xray_noise_std=0.1))(sample, torch.Generator().manual_seed(0))
    assert all(torch.equal(sample[k], v) for k, v in before.items())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"flip_lr": 1.5}, "flip_lr"),
        ({"xray_gamma": (0.0, 1.0)}, "xray_gamma"),
        ({"xray_gamma": (1.2, 0.8)}, "xray_gamma"),
        ({"xray_noise_std": -0.1}, "xray_noise_std"),
        ({"rotate": 10}, r"unknown augment settings \['rotate'\]"),
    ],
)
def test_bad_augment_settings_raise(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AugmentConfig.from_mapping(settings)


# ----------------------------------------------------------------------------------- projection matrices

AP_VIEW = ViewSpec("xray1", 0.0)
IDENTITY_AP = [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]  # aligned parallel xray1: u = x, v = z
IDENTITY_LATERAL = [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]  # aligned parallel xray2: u = y, v = z
MARKER_TOLERANCE_PX = 1.0


def expected_matrices(folder: Any, case: Any, angle: float) -> dict[str, np.ndarray]:
    """The helper's matrices for a case's stored geometry (independent of the file attributes' parsing)."""
    views = {"proj_xray1": AP_VIEW, "proj_xray2": ViewSpec("xray2", angle, lateral=True)}
    shape = (folder.cube,) * 3
    return {
        key: projection_matrix(
            view, shape, folder.spacing_mm, case.iso_mm, geometry=case.geometry, sod_mm=folder.sod_mm
        )
        for key, view in views.items()
    }


def marker_offset_px(sample: dict, key: str, marker: Sequence[float], cube: int) -> np.ndarray:
    """(row, col) distance between where the matrix ``key`` sends the marker and the brightest pixel of its view."""
    d, h, w = (2.0 * np.asarray(marker) + 1.0) / cube - 1.0
    homogeneous = sample[key].double().numpy() @ np.array([w, h, d, 1.0])
    u, v = homogeneous[:2] / homogeneous[2]
    image = sample[key.removeprefix("proj_")][0].numpy()
    rows, cols = image.shape
    peak = np.unravel_index(int(image.argmax()), image.shape)
    return np.abs(np.array([((v + 1) * rows - 1) / 2, ((u + 1) * cols - 1) / 2]) - np.asarray(peak))


@pytest.mark.parametrize("angle", [90.0, 85.0])
def test_samples_carry_the_recorded_projection_matrices(geometry_folder: Any, angle: float) -> None:
    """Each view's matrix is the helper's for the geometry the case was prepared with, and sends the CT's
    marker onto the marker's pixel in the stored view (cone and parallel cases)."""
    assert {case.geometry for case in geometry_folder.cases} == {"cone", "parallel"}
    for case in geometry_folder.cases:
        sample = X2CTDataset(geometry_folder.root, [case.case_id], lateral_angle=angle, cube=None)[0]
        for key, expected in expected_matrices(geometry_folder, case, angle).items():
            assert sample[key].shape == (3, 4) and sample[key].dtype == torch.float32
            np.testing.assert_allclose(sample[key].numpy(), expected, rtol=1e-5, atol=1e-6, err_msg=key)
            offset = marker_offset_px(sample, key, case.marker, geometry_folder.cube)
            assert offset.max() <= MARKER_TOLERANCE_PX, (case.case_id, key, offset)


def test_resizing_leaves_the_projection_matrices_unchanged(geometry_folder: Any) -> None:
    case = geometry_folder.cases[0]
    stored = X2CTDataset(geometry_folder.root, [case.case_id], cube=None)[0]
    resized = X2CTDataset(geometry_folder.root, [case.case_id], cube=16, xray_size=40)[0]
    assert resized["ct"].shape == (1, 16, 16, 16) and resized["xray1"].shape == (1, 40, 40)
    for key in ("proj_xray1", "proj_xray2"):
        assert torch.equal(resized[key], stored[key])
        scale = 40 / geometry_folder.cube  # a stored pixel in resized pixels
        assert marker_offset_px(resized, key, case.marker, geometry_folder.cube).max() <= scale * MARKER_TOLERANCE_PX


def test_flip_mirrors_the_projection_matrices_with_the_data(geometry_folder: Any) -> None:
    """After a left-right flip the flipped CT's marker still lands on its pixel in the flipped xray1 and in the
    unflipped xray2 (an 85-degree cone view: not mirror-symmetric); matrices that ignore the flip of the image
    (xray1) or of the CT (xray2) miss it."""
    case = next(c for c in geometry_folder.cases if c.geometry == "cone")
    options = {"lateral_angle": 85.0, "cube": None}
    plain = X2CTDataset(geometry_folder.root, [case.case_id], **options)[0]
    flipped = X2CTDataset(geometry_folder.root, [case.case_id], augment=AugmentConfig(flip_lr=1.0), **options)[0]
    assert torch.equal(flipped["proj_xray1"], flip_image_columns(flip_volume_x(plain["proj_xray1"])))
    assert torch.equal(flipped["proj_xray2"], flip_volume_x(plain["proj_xray2"]))
    d, h, w = case.marker
    mirrored_marker = (d, h, geometry_folder.cube - 1 - w)
    stale = {"proj_xray1": flip_volume_x(plain["proj_xray1"]), "proj_xray2": plain["proj_xray2"]}
    for key in ("proj_xray1", "proj_xray2"):
        right = marker_offset_px(flipped, key, mirrored_marker, geometry_folder.cube)
        wrong = marker_offset_px({**flipped, key: stale[key]}, key, mirrored_marker, geometry_folder.cube)
        assert right.max() <= MARKER_TOLERANCE_PX and wrong.max() > 2 * MARKER_TOLERANCE_PX, (key, right, wrong)


def test_files_without_geometry_get_aligned_parallel_matrices(
    root: Path, tmp_path: Path, fresh_projection_log: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Official X2CT-GAN files (and files without ``drr.`` attributes) get the X2CT convention's aligned parallel
    views, whatever their sizes; the log says so once."""
    folder = tmp_path / "LIDC-0001"
    folder.mkdir()
    with h5py.File(folder / TRIPLET_FILENAME, "w") as h5:
        h5.create_dataset("ct", data=np.full((20, 20, 20), 1024.0))
        h5.create_dataset("xray1", data=np.zeros((24, 24), dtype=np.uint8))
        h5.create_dataset("xray2", data=np.zeros((24, 24), dtype=np.uint8))
    with caplog.at_level(logging.WARNING, logger="x2ct.drr.projection"):
        samples = [X2CTDataset(tmp_path, ["LIDC-0001"], cube=CUBE)[0], *X2CTDataset(root, ["case_a", "case_b"])]
    for sample in samples:
        np.testing.assert_allclose(sample["proj_xray1"].numpy(), IDENTITY_AP, atol=1e-6)
        np.testing.assert_allclose(sample["proj_xray2"].numpy(), IDENTITY_LATERAL, atol=1e-6)
    assert len(caplog.records) == 1 and "aligned parallel" in caplog.records[0].getMessage()


# ------------------------------------------------------------------------------------ angle-randomized training


def test_random_lateral_angles_cover_the_range_are_seeded_and_carry_their_matrices(geometry_folder: Any) -> None:
    """Each item draws its lateral view among the stored ones in range; the matrix follows the drawn view; the
    draws repeat for the same seed."""
    case = geometry_folder.cases[0]

    def draws(seed: int) -> list[np.ndarray]:
        torch.manual_seed(seed)
        dataset = X2CTDataset(geometry_folder.root, [case.case_id], cube=None, lateral_angle_range=(80, 95))
        return [dataset[0]["proj_xray2"].numpy() for _ in range(24)]

    expected = (
        expected_matrices(geometry_folder, case, 85.0)["proj_xray2"],
        expected_matrices(geometry_folder, case, 90.0)["proj_xray2"],
    )
    drawn = draws(seed=3)
    seen = {next(i for i, m in enumerate(expected) if np.allclose(d, m, atol=1e-6)) for d in drawn}
    assert seen == {0, 1}  # both stored angles in 80-95 are drawn (2^-23 chance of a false failure)
    assert all(np.array_equal(a, b) for a, b in zip(drawn, draws(seed=3), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(drawn, draws(seed=4), strict=True))
    only_85 = X2CTDataset(geometry_folder.root, [case.case_id], cube=None, lateral_angle_range=(80, 88))[0]
    np.testing.assert_allclose(only_85["proj_xray2"].numpy(), expected[0], rtol=1e-5, atol=1e-6)
    fixed = X2CTDataset(geometry_folder.root, [case.case_id], cube=None, lateral_angle=85)[0]
    assert torch.equal(only_85["xray2"], fixed["xray2"])


def test_random_lateral_angles_need_a_stored_view_in_range(geometry_folder: Any) -> None:
    case = geometry_folder.cases[0]
    with pytest.raises(TripletFileError, match="no lateral view within 60-70"):
        X2CTDataset(geometry_folder.root, [case.case_id], cube=None, lateral_angle_range=(60, 70))[0]
    with pytest.raises(ValueError, match="lateral_angle_range"):
        X2CTDataset(geometry_folder.root, [case.case_id], lateral_angle_range=(95, 80))
