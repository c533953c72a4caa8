"""X-ray pair -> CT volume in HU: preprocessing, the model call, HU scaling, grid and orientation of the output."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import nibabel as nib
import numpy as np
import pytest
import torch

from x2ct.drr.projection import AP_VIEW, triplet_projection_matrices
from x2ct.inference.prediction_geometry import crop_window_matrix, radiograph_projection_matrix
from x2ct.inference.predictor import Predictor, centered_affine
from x2ct.inference.preview import build_preview_figure, preview_image
from x2ct.inference.radiograph_geometry import RadiographGeometry, SourcedValue
from x2ct.io.hdf5 import read_triplet
from x2ct.io.nifti import save_volume_nifti
from x2ct.io.volume import Volume
from x2ct.io.xray_image import XrayNotFoundError, XrayReadError
from x2ct.preparation.xray_preprocess import PaperPreprocessConfig, paper_crop_window, paper_preprocess

WINDOW_HU = (-1024.0, 1476.0)
CUBE = 32  # the tiny checkpoint's cube (checked by the checkpoint_path fixture)
XrayPair = Callable[..., tuple[Path, Path]]


@pytest.fixture(scope="module")
def checkpoint_path(tiny_checkpoint: Any) -> Path:
    assert tiny_checkpoint.cube == CUBE
    return tiny_checkpoint.path


@pytest.fixture(scope="module")
def training_spacing(tiny_checkpoint: Any) -> tuple[float, float, float]:
    return tiny_checkpoint.spacing_mm


@pytest.fixture(scope="module")
def predictor(checkpoint_path: Path) -> Predictor:
    return Predictor.from_checkpoint(checkpoint_path)


# ------------------------------------------------------------------------------------- orientation (no model)
def test_writer_puts_the_superior_anterior_right_corner_at_positive_ras(tmp_path: Path) -> None:
    shape, spacing = (32, 24, 20), (2.0, 1.5, 1.0)
    hu = np.full(shape, -1000.0, np.float32)
    hu[:4, :4, :4] = 1000.0  # canonical index 0 on every axis: superior, anterior, patient's right
    volume = Volume(hu=hu, labels=None, spacing=spacing, affine=centered_affine(shape, spacing), case_id="marker")
    image = nib.load(save_volume_nifti(volume, tmp_path / "marker.nii.gz"))
    assert nib.aff2axcodes(image.affine) == ("I", "P", "L")
    assert image.header.get_zooms() == pytest.approx(spacing)
    data = np.asarray(image.dataobj)
    marker_index = np.argwhere(data > 0).mean(axis=0)
    x, y, z = nib.affines.apply_affine(image.affine, marker_index)
    assert x > 0 and y > 0 and z > 0  # right (+x), anterior (+y), superior (+z) in RAS
    centre = nib.affines.apply_affine(image.affine, (np.asarray(shape) - 1) / 2)
    np.testing.assert_allclose(centre, 0.0, atol=1e-9)  # the volume centre at world (0, 0, 0)
    # The extent along each world axis is (n - 1) * spacing of the matching array axis.
    np.testing.assert_allclose(
        nib.affines.apply_affine(image.affine, [0, 0, 0]), [(20 - 1) * 1.0 / 2, (24 - 1) * 1.5 / 2, (32 - 1) * 2.0 / 2]
    )


# --------------------------------------------------------------------------------------------- prediction
def test_prediction_shape_dtype_window_and_training_spacing(
    predictor: Predictor, training_spacing: tuple[float, float, float], write_xray_pair: XrayPair, tmp_path: Path
) -> None:
    ap, lateral = write_xray_pair(tmp_path, "png8")
    prediction = predictor.predict_files(ap, lateral)
    volume = prediction.volume
    assert volume.shape == (CUBE, CUBE, CUBE) and volume.hu.dtype == np.float32
    assert WINDOW_HU[0] <= float(volume.hu.min()) and float(volume.hu.max()) <= WINDOW_HU[1]
    assert volume.spacing == training_spacing
    assert "training data" in volume.meta["spacing_source"]
    np.testing.assert_allclose(volume.affine, centered_affine(volume.shape, training_spacing))
    assert prediction.xray1.shape == (CUBE, CUBE) and prediction.xray1.dtype == np.uint8
    assert volume.meta["preprocess"] == "paper" and volume.meta["ap_path"] == str(ap)


def test_hu_is_the_model_output_through_the_checkpoint_window(predictor: Predictor) -> None:
    rng = np.random.default_rng(3)
    xray1, xray2 = (rng.integers(0, 256, (CUBE, CUBE), dtype=np.uint8) for _ in range(2))
    with torch.no_grad():
        expected = predictor.model.reconstruct(
            torch.from_numpy(xray1 / 255.0).float()[None, None], torch.from_numpy(xray2 / 255.0).float()[None, None]
        )[0, 0].numpy()
    unit = predictor.reconstruct_unit(xray1, xray2)
    np.testing.assert_allclose(unit, expected, atol=1e-6)
    volume = predictor.to_volume(unit)
    np.testing.assert_allclose(volume.hu, expected * 2500.0 - 1024.0, atol=1e-3)


def test_8bit_16bit_png_and_dicom_give_the_same_inputs(
    predictor: Predictor, write_xray_pair: XrayPair, tmp_path: Path
) -> None:
    results = {kind: predictor.predict_files(*write_xray_pair(tmp_path / kind, kind)) for kind in ("png8", "png16")}
    np.testing.assert_array_equal(results["png8"].xray1, results["png16"].xray1)
    np.testing.assert_array_equal(results["png8"].xray2, results["png16"].xray2)
    np.testing.assert_array_equal(results["png8"].volume.hu, results["png16"].volume.hu)
    dicom = predictor.predict_files(*write_xray_pair(tmp_path / "dicom", "dicom"))
    # DICOM without a window is min-max normalized on reading, PNG is not: the same picture after the paper
    # crop and stretch, up to uint8 rounding at the crop's edges.
    difference = np.abs(dicom.xray1.astype(int) - results["png8"].xray1.astype(int))
    assert difference.mean() < 2.0
    assert np.corrcoef(dicom.xray1.ravel(), results["png8"].xray1.ravel())[0, 1] > 0.99
    assert dicom.volume.shape == (CUBE, CUBE, CUBE)


def test_aligned_mode_only_resizes_and_paper_mode_crops(predictor: Predictor, synthetic_xray: Callable) -> None:
    image = synthetic_xray(rows=CUBE, cols=CUBE)  # already the model's size
    aligned = predictor.predict_images(image, image, preprocess="aligned")
    np.testing.assert_array_equal(aligned.xray1, image)  # whole field of view, untouched
    paper = predictor.predict_images(image, image, preprocess="paper")
    assert paper.xray1.min() == 0 and paper.xray1.max() == 255  # cropped to the body and min-max stretched
    assert not np.array_equal(paper.xray1, image)


def test_configured_spacing_when_training_data_is_unreachable(checkpoint_path: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved.ckpt"
    shutil.copy(checkpoint_path, moved)
    no_lookup = Predictor.from_checkpoint(moved, spacing_mm=2.5, use_training_spacing=False)
    assert no_lookup.spacing_mm == (2.5, 2.5, 2.5)
    assert no_lookup.provenance["spacing_source"] == "spacing_mm setting"
    anisotropic = Predictor.from_checkpoint(moved, spacing_mm=[1.0, 0.5, 0.5], use_training_spacing=False)
    assert anisotropic.to_volume(np.zeros((CUBE,) * 3, np.float32)).spacing == (1.0, 0.5, 0.5)
    with pytest.raises(ValueError, match="spacing_mm must be a positive number"):
        Predictor.from_checkpoint(moved, spacing_mm=0.0, use_training_spacing=False)


def test_paper_preprocess_options_are_used(checkpoint_path: Path, synthetic_xray: Callable) -> None:
    """Every option reaches the paper preprocessing; the output size is always the model's input size."""
    image = synthetic_xray()
    options = {"margin": 6, "threshold_method": "fixed", "threshold_value": 60, "pad_value": 30, "output_size": 99}
    predictor = Predictor.from_checkpoint(checkpoint_path, paper_preprocess_options=options)
    expected_config = PaperPreprocessConfig(
        output_size=CUBE, margin=6, threshold_method="fixed", threshold_value=60, pad_value=30
    )
    assert predictor.paper_config == expected_config
    np.testing.assert_array_equal(predictor.preprocess(image), paper_preprocess(image, expected_config))
    default = Predictor.from_checkpoint(checkpoint_path).preprocess(image)
    np.testing.assert_array_equal(default, paper_preprocess(image, PaperPreprocessConfig(output_size=CUBE)))
    assert not np.array_equal(default, predictor.preprocess(image))  # the options change the picture


# ------------------------------------------------------------------------------------------------- errors
def test_missing_blank_and_non_image_files_name_the_file(
    predictor: Predictor, write_xray_pair: XrayPair, tmp_path: Path
) -> None:
    ap, lateral = write_xray_pair(tmp_path, "png8")
    with pytest.raises(XrayNotFoundError, match=r"nope\.png does not exist"):
        predictor.predict_files(tmp_path / "nope.png", lateral)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(XrayReadError, match=r"notes\.png is not a readable image"):
        predictor.predict_files(ap, text)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((40, 40), 128, np.uint8))
    with pytest.raises(XrayReadError, match=r"blank\.png is blank"):
        predictor.predict_files(blank, lateral)


def test_unknown_preprocess_mode(predictor: Predictor, synthetic_xray: Callable) -> None:
    image = synthetic_xray()
    with pytest.raises(ValueError, match="preprocess must be one of"):
        predictor.predict_images(image, image, preprocess="crop")  # type: ignore[arg-type]


def test_wrong_input_size_for_the_network(predictor: Predictor) -> None:
    small = np.zeros((CUBE // 2, CUBE // 2), np.uint8)
    with pytest.raises(ValueError, match=rf"xray1 must be uint8 \({CUBE}, {CUBE}\)"):
        predictor.reconstruct_unit(small, small)


# ------------------------------------------------------------------------------------ geometry-aware models
@pytest.fixture(scope="module")
def ray_predictor(tiny_ray_lifting_checkpoint: Any) -> Predictor:
    return Predictor.from_checkpoint(tiny_ray_lifting_checkpoint.path)


def _reconstruct_with(predictor: Predictor, prediction: Any) -> np.ndarray:
    """The model's own answer to a prediction's inputs and matrices."""
    images = [torch.from_numpy(x / 255.0).float()[None, None] for x in (prediction.xray1, prediction.xray2)]
    matrices = [torch.from_numpy(m)[None] for m in (prediction.proj_xray1, prediction.proj_xray2)]
    with torch.no_grad():
        return predictor.model.reconstruct(*images, *matrices)[0, 0].numpy()


def test_ray_lifting_model_gets_the_training_geometry_for_plain_images(
    ray_predictor: Predictor, tiny_ray_lifting_checkpoint: Any, synthetic_xray: Callable
) -> None:
    prediction = ray_predictor.predict_images(synthetic_xray(), synthetic_xray(lateral=True), preprocess="aligned")
    training_file = tiny_ray_lifting_checkpoint.triplets / "case00" / "ct_xray_data.h5"
    triplet = read_triplet(training_file)
    expected = triplet_projection_matrices(triplet.attrs, triplet.ct_hu_plus_1024.shape, 90.0)
    np.testing.assert_allclose(prediction.proj_xray1, expected[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(prediction.proj_xray2, expected[1], rtol=1e-6, atol=1e-6)
    geometry = prediction.volume.meta["geometry"]
    assert geometry["xray1"]["assumed"] == geometry["xray2"]["assumed"] == "training data"
    assert geometry["xray1"]["training_file"] == str(training_file)
    assert geometry["lateral_angle_source"] == "checkpoint: training lateral_angle"
    unit = _reconstruct_with(ray_predictor, prediction)
    np.testing.assert_allclose(prediction.volume.hu, unit * 2500.0 - 1024.0, atol=1e-3)


def test_ray_lifting_matrices_follow_the_paper_crop(ray_predictor: Predictor, synthetic_xray: Callable) -> None:
    ap, lateral = synthetic_xray(), synthetic_xray(lateral=True)
    geometry = RadiographGeometry(SourcedValue(1000.0, "t"), SourcedValue(800.0, "t"), SourcedValue((2.0, 2.0), "t"))
    prediction = ray_predictor.predict_images(ap, lateral, preprocess="paper", radiographs=(geometry, geometry))
    original = radiograph_projection_matrix(AP_VIEW, geometry, ap.shape, CUBE, ray_predictor.spacing_mm)
    window = paper_crop_window(ap, ray_predictor.paper_config)
    expected = crop_window_matrix(original, ap.shape, window)
    np.testing.assert_allclose(prediction.proj_xray1, expected, rtol=1e-6, atol=1e-6)
    assert prediction.volume.meta["geometry"]["xray1"]["crop_window"] == list(window)
    aligned = ray_predictor.predict_images(ap, lateral, preprocess="aligned", radiographs=(geometry, geometry))
    np.testing.assert_allclose(aligned.proj_xray1, original, rtol=1e-6, atol=1e-6)  # a plain resize changes nothing


def test_ray_lifting_model_needs_matrices(ray_predictor: Predictor) -> None:
    image = np.zeros((CUBE, CUBE), np.uint8)
    with pytest.raises(ValueError, match="pass proj_xray1 and proj_xray2"):
        ray_predictor.reconstruct_unit(image, image)


def test_models_without_geometry_ignore_it(
    predictor: Predictor, checkpoint_path: Path, synthetic_xray: Callable
) -> None:
    assert predictor.geometry is None
    ap, lateral = synthetic_xray(), synthetic_xray(lateral=True)
    geometry = RadiographGeometry(SourcedValue(1000.0, "t"), SourcedValue(800.0, "t"), SourcedValue((2.0, 2.0), "t"))
    with_options = Predictor.from_checkpoint(checkpoint_path, geometry_options={"sid_mm": 1200, "lateral_angle": 75})
    plain = predictor.predict_images(ap, lateral)
    told = with_options.predict_images(ap, lateral, radiographs=(geometry, geometry))
    np.testing.assert_array_equal(told.volume.hu, plain.volume.hu)
    assert told.proj_xray1 is None and "geometry" not in told.volume.meta


# ------------------------------------------------------------------------------------------------ preview
def test_preview_shows_inputs_and_hu_slices(predictor: Predictor, synthetic_xray: Callable) -> None:
    prediction = predictor.predict_images(synthetic_xray(), synthetic_xray(lateral=True))
    fig = build_preview_figure(prediction.volume, prediction.xray1, prediction.xray2, hu_window=(-500.0, 1000.0))
    labels = {ax.get_label() for ax in fig.axes}
    assert {"input/ap", "input/lateral", "prediction/axial", "prediction/coronal", "prediction/sagittal"} <= labels
    coronal = next(ax for ax in fig.axes if ax.get_label() == "prediction/coronal").images[0]
    assert coronal.get_clim() == (-500.0, 1000.0)  # slices are shown in HU
    np.testing.assert_array_equal(coronal.get_array(), prediction.volume.hu[:, CUBE // 2, :])
    rgb = preview_image(prediction.volume, prediction.xray1, prediction.xray2)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    with pytest.raises(ValueError, match="low < high"):
        build_preview_figure(prediction.volume, prediction.xray1, prediction.xray2, hu_window=(100.0, 100.0))
