"""x2ct-predict: config -> NIfTI (HU, canonical orientation, trained spacing), STL and preview; error paths."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from x2ct.export.mesh import MeshError, read_binary_stl
from x2ct.inference.checkpoint import CheckpointError, CheckpointNotFoundError, load_x2ct_checkpoint
from x2ct.io.xray_image import XrayNotFoundError, XrayReadError, read_xray_image
from x2ct.predict import PredictOutputError, PredictResult, format_summary, predict
from x2ct.preparation.xray_preprocess import PaperPreprocessConfig, paper_preprocess

WINDOW_HU = (-1024.0, 1476.0)
AIR_MAX_UINT8 = 20  # the synthetic X-rays' air, after DICOM min-max normalization
SPINE_MIN_UINT8 = 200  # their bright spine


@pytest.fixture(scope="module")
def checkpoint_path(tiny_checkpoint: Any) -> Path:
    return tiny_checkpoint.path


@pytest.fixture(scope="module")
def cube(tiny_checkpoint: Any) -> int:
    return tiny_checkpoint.cube


@pytest.fixture(scope="module")
def xrays(
    tmp_path_factory: pytest.TempPathFactory, write_xray_pair: Callable[..., tuple[Path, Path]]
) -> tuple[Path, Path]:
    return write_xray_pair(tmp_path_factory.mktemp("xrays"), "png8")


@pytest.fixture
def run_predict(compose_config: Callable[..., Any]) -> Callable[..., PredictResult]:
    """``(checkpoint, ap, lateral, out, *overrides) -> PredictResult`` of x2ct-predict's config."""

    def run(checkpoint: Path, ap: Path, lateral: Path, out: Path, *extra: str) -> PredictResult:
        overrides = [f"ckpt_path={checkpoint}", f"ap={ap}", f"lateral={lateral}", f"out={out}", *extra]
        return predict(compose_config("predict", overrides))

    return run


def test_nifti_mesh_and_preview(
    tiny_checkpoint: Any, xrays: tuple[Path, Path], run_predict: Callable, tmp_path: Path
) -> None:
    checkpoint_path, cube, spacing = tiny_checkpoint.path, tiny_checkpoint.cube, tiny_checkpoint.spacing_mm
    out = tmp_path / "result" / "ct.nii.gz"
    mesh, preview = tmp_path / "result" / "bone.stl", tmp_path / "result" / "preview.png"
    result = run_predict(checkpoint_path, *xrays, out, f"mesh={mesh}", f"preview={preview}", "bone_threshold_hu=0")
    image = nib.load(out)
    data = np.asarray(image.dataobj)
    assert data.shape == (cube, cube, cube) and data.dtype == np.float32
    assert WINDOW_HU[0] <= float(data.min()) and float(data.max()) <= WINDOW_HU[1]
    np.testing.assert_array_equal(data, result.prediction.volume.hu)
    assert nib.aff2axcodes(image.affine) == ("I", "P", "L")
    assert image.header.get_zooms() == pytest.approx(spacing)  # from the training triplets
    np.testing.assert_allclose(nib.affines.apply_affine(image.affine, [(cube - 1) / 2] * 3), 0.0, atol=1e-9)

    stl = read_binary_stl(mesh)
    assert len(stl.triangles) == result.mesh_triangles > 0 and b"SPACE=RAS" in stl.header
    corners = stl.triangles.reshape(-1, 3)
    half_extent = (cube - 1) / 2 * spacing[0] + spacing[0]  # + the closing air layer
    assert np.abs(corners).max() <= half_extent + 1e-3  # vertices in the NIfTI's world millimetres

    with Image.open(preview) as png:
        assert png.mode in ("RGB", "RGBA") and png.size[0] > png.size[1] > 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["bone.stl", "ct.nii.gz", "preview.png"]


def test_int16_output_and_configured_spacing(
    checkpoint_path: Path, xrays: tuple[Path, Path], run_predict: Callable, tmp_path: Path
) -> None:
    out = tmp_path / "ct.nii"
    run_predict(checkpoint_path, *xrays, out, "dtype=int16", "use_training_spacing=false", "spacing_mm=[2.0,1.0,1.0]")
    image = nib.load(out)
    assert image.get_data_dtype() == np.int16
    assert image.header.get_zooms() == pytest.approx((2.0, 1.0, 1.0))
    assert nib.aff2axcodes(image.affine) == ("I", "P", "L")


def test_aligned_preprocess_and_dicom_inputs(
    checkpoint_path: Path,
    cube: int,
    write_xray_pair: Callable[..., tuple[Path, Path]],
    run_predict: Callable,
    tmp_path: Path,
) -> None:
    ap, lateral = write_xray_pair(tmp_path, "dicom")
    out = tmp_path / "ct.nii.gz"
    result = run_predict(checkpoint_path, ap, lateral, out, "preprocess=aligned")
    prediction = result.prediction
    assert prediction.volume.meta["preprocess"] == "aligned"
    # aligned = a plain resize of the whole picture: air on the left edge, the bright spine in the middle
    assert prediction.xray1.shape == (cube, cube)
    assert prediction.xray1[:, 0].mean() < AIR_MAX_UINT8 and prediction.xray1[:, cube // 2].mean() > SPINE_MIN_UINT8
    # the NIfTI holds the model's answer to these inputs, in HU through the checkpoint's CT window
    model = load_x2ct_checkpoint(checkpoint_path).model
    inputs = [torch.from_numpy(image / 255.0).float()[None, None] for image in (prediction.xray1, prediction.xray2)]
    with torch.no_grad():
        unit = model.reconstruct(*inputs)[0, 0].numpy()
    expected_hu = unit * (WINDOW_HU[1] - WINDOW_HU[0]) + WINDOW_HU[0]
    np.testing.assert_allclose(np.asarray(nib.load(out).dataobj), expected_hu, atol=1e-3)


def test_paper_preprocess_options_reach_the_predictor(
    checkpoint_path: Path, cube: int, xrays: tuple[Path, Path], run_predict: Callable, tmp_path: Path
) -> None:
    overrides = [
        "paper_preprocess.margin=6",
        "paper_preprocess.threshold_method=fixed",
        "paper_preprocess.pad_value=30",
    ]
    result = run_predict(checkpoint_path, *xrays, tmp_path / "ct.nii.gz", *overrides)
    config = PaperPreprocessConfig(output_size=cube, margin=6, threshold_method="fixed", pad_value=30)
    np.testing.assert_array_equal(result.prediction.xray1, paper_preprocess(read_xray_image(xrays[0]), config))
    np.testing.assert_array_equal(result.prediction.xray2, paper_preprocess(read_xray_image(xrays[1]), config))


# ---------------------------------------------------------------------------------------- view geometry
def _dicom_pair_with_geometry(
    folder: Path, write_xray_pair: Callable[..., tuple[Path, Path]], sid: float, sod: float, pixel: float
) -> tuple[Path, Path]:
    """The synthetic DICOM pair with DistanceSourceToDetector, DistanceSourceToPatient and ImagerPixelSpacing."""
    pair = write_xray_pair(folder, "dicom")
    for path in pair:
        dataset = pydicom.dcmread(path)
        dataset.DistanceSourceToDetector = sid
        dataset.DistanceSourceToPatient = sod
        dataset.ImagerPixelSpacing = [pixel, pixel]
        dataset.save_as(path)
    return pair


def test_ray_lifting_checkpoint_uses_the_radiograph_geometry(
    tiny_ray_lifting_checkpoint: Any,
    write_xray_pair: Callable[..., tuple[Path, Path]],
    run_predict: Callable,
    tmp_path: Path,
) -> None:
    checkpoint = tiny_ray_lifting_checkpoint.path
    ap, lateral = _dicom_pair_with_geometry(tmp_path, write_xray_pair, sid=1000.0, sod=800.0, pixel=2.0)
    from_dicom = run_predict(checkpoint, ap, lateral, tmp_path / "dicom.nii.gz", "preprocess=aligned")
    geometry = from_dicom.prediction.volume.meta["geometry"]
    assert geometry["xray1"]["assumed"] == "radiograph" and geometry["xray1"]["sod_mm"] == 800.0
    assert geometry["xray2"]["sources"]["sid_mm"] == "DICOM DistanceSourceToDetector (0018,1110)"
    assert geometry["xray1"]["iso_pitch_mm"] == pytest.approx([1.6, 1.6])
    summary = format_summary(from_dicom, 250.0)
    assert "geometry: lateral view at 90 degrees from AP [checkpoint: training lateral_angle]" in summary
    assert "SOD 800 mm [DICOM DistanceSourceToPatient (0018,1111)]" in summary

    # an option overrides the files' SOD, and the volume follows the geometry
    closer = run_predict(checkpoint, ap, lateral, tmp_path / "sod.nii.gz", "preprocess=aligned", "geometry.sod_mm=600")
    assert closer.prediction.volume.meta["geometry"]["xray1"]["sources"]["sod_mm"] == "option geometry.sod_mm"
    assert "SOD 600 mm [option geometry.sod_mm]" in format_summary(closer, 250.0)
    difference = np.abs(closer.prediction.volume.hu - from_dicom.prediction.volume.hu)
    assert difference.max() > 1.0  # HU

    # PNG files say nothing: the training data's recorded geometry, and the summary says so
    pngs = write_xray_pair(tmp_path / "png", "png8")
    fallback = run_predict(checkpoint, *pngs, tmp_path / "png.nii.gz", "geometry.lateral_angle=85")
    assert fallback.prediction.volume.meta["geometry"]["xray2"]["assumed"] == "training data"
    assert "lateral view at 85 degrees from AP [option geometry.lateral_angle]" in format_summary(fallback, 250.0)
    assert "the training data's geometry (cone" in format_summary(fallback, 250.0)


def test_paper_checkpoint_ignores_the_geometry(
    checkpoint_path: Path, write_xray_pair: Callable[..., tuple[Path, Path]], run_predict: Callable, tmp_path: Path
) -> None:
    ap, lateral = _dicom_pair_with_geometry(tmp_path, write_xray_pair, sid=1000.0, sod=800.0, pixel=2.0)
    before = run_predict(checkpoint_path, ap, lateral, tmp_path / "before.nii.gz")
    told = run_predict(checkpoint_path, ap, lateral, tmp_path / "told.nii.gz", "geometry.sod_mm=600")
    np.testing.assert_array_equal(told.prediction.volume.hu, before.prediction.volume.hu)
    assert "geometry" not in told.prediction.volume.meta and "geometry" not in format_summary(told, 250.0)


def test_bad_geometry_values_are_one_line_errors(
    tiny_ray_lifting_checkpoint: Any,
    write_xray_pair: Callable[..., tuple[Path, Path]],
    run_predict: Callable,
    tmp_path: Path,
) -> None:
    ap, lateral = _dicom_pair_with_geometry(tmp_path, write_xray_pair, sid=1000.0, sod=1200.0, pixel=2.0)
    out = tmp_path / "ct.nii.gz"
    with pytest.raises(ValueError, match=r"ap_dicom\.dcm: the source-to-patient distance 1200 mm \(DICOM"):
        run_predict(tiny_ray_lifting_checkpoint.path, ap, lateral, out)
    with pytest.raises(ValueError, match=r"geometry\.sid_mm must be a positive number"):
        run_predict(tiny_ray_lifting_checkpoint.path, ap, lateral, out, "geometry.sid_mm=-5")
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ errors
def test_missing_inputs(
    checkpoint_path: Path,
    xrays: tuple[Path, Path],
    run_predict: Callable,
    compose_config: Callable[..., Any],
    tmp_path: Path,
) -> None:
    out = tmp_path / "ct.nii.gz"
    with pytest.raises(XrayNotFoundError, match=r"missing_ap\.png does not exist"):
        run_predict(checkpoint_path, tmp_path / "missing_ap.png", xrays[1], out)
    with pytest.raises(CheckpointNotFoundError, match=r"missing\.ckpt does not exist"):
        run_predict(tmp_path / "missing.ckpt", *xrays, out)
    with pytest.raises(ValueError, match=r"missing required argument\(s\): lateral=\.\.\., out=\.\.\."):
        predict(compose_config("predict", [f"ckpt_path={checkpoint_path}", f"ap={xrays[0]}"]))
    assert not out.exists()


def test_bad_images(checkpoint_path: Path, xrays: tuple[Path, Path], run_predict: Callable, tmp_path: Path) -> None:
    out = tmp_path / "ct.nii.gz"
    text = tmp_path / "report.png"
    text.write_text("not an image")
    with pytest.raises(XrayReadError, match=r"report\.png is not a readable image"):
        run_predict(checkpoint_path, xrays[0], text, out)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((50, 40), np.uint8)).save(blank)
    with pytest.raises(XrayReadError, match=r"blank\.png is blank"):
        run_predict(checkpoint_path, blank, xrays[1], out)
    assert not out.exists()


def test_bad_checkpoints(
    checkpoint_path: Path, xrays: tuple[Path, Path], run_predict: Callable, tmp_path: Path
) -> None:
    out = tmp_path / "ct.nii.gz"
    state_dict = tmp_path / "weights.pt"
    torch.save(torch.load(checkpoint_path, weights_only=True)["state_dict"], state_dict)
    with pytest.raises(CheckpointError, match=r"weights\.pt is not a Lightning checkpoint"):
        run_predict(state_dict, *xrays, out)
    other = tmp_path / "other.ckpt"
    torch.save({"pytorch-lightning_version": "2.6.0", "state_dict": {}, "hyper_parameters": {"lr": 0.1}}, other)
    with pytest.raises(CheckpointError, match=r"other\.ckpt is not an X2CT-GAN checkpoint"):
        run_predict(other, *xrays, out)
    assert not out.exists()


def test_bad_outputs(checkpoint_path: Path, xrays: tuple[Path, Path], run_predict: Callable, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(PredictOutputError, match=r"cannot be created: .* is a file"):
        run_predict(checkpoint_path, *xrays, blocker / "sub" / "ct.nii.gz")
    with pytest.raises(ValueError, match="not a NIfTI file name"):
        run_predict(checkpoint_path, *xrays, tmp_path / "ct.nrrd")
    with pytest.raises(PredictOutputError, match=r"must end in \.stl"):
        run_predict(checkpoint_path, *xrays, tmp_path / "ct.nii.gz", f"mesh={tmp_path / 'bone.ply'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_failing_mesh_writes_nothing(
    checkpoint_path: Path, xrays: tuple[Path, Path], run_predict: Callable, tmp_path: Path
) -> None:
    out, mesh = tmp_path / "ct.nii.gz", tmp_path / "bone.stl"
    with pytest.raises(MeshError, match="no voxel above the bone threshold 5000"):
        run_predict(checkpoint_path, *xrays, out, f"mesh={mesh}", "bone_threshold_hu=5000")
    assert list(tmp_path.iterdir()) == []  # not even the NIfTI: files are written only after everything succeeded
    with pytest.raises(CheckpointError):
        run_predict(xrays[0], *xrays, tmp_path / "new" / "folder" / "ct.nii.gz")
    assert list(tmp_path.iterdir()) == []  # and no empty output folder is left behind


# ------------------------------------------------------------------------------------------ console script
def _console_script() -> list[str]:
    script = Path(sys.executable).parent / "x2ct-predict"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "x2ct.predict"]


@pytest.mark.full  # two console-script starts, about 25 s on 2 CPU cores
def test_console_script_end_to_end(checkpoint_path: Path, cube: int, xrays: tuple[Path, Path], tmp_path: Path) -> None:
    out, mesh = tmp_path / "ct.nii.gz", tmp_path / "bone.stl"
    args = [f"ckpt_path={checkpoint_path}", f"ap={xrays[0]}", f"lateral={xrays[1]}", f"out={out}", f"mesh={mesh}"]
    done = subprocess.run(
        [*_console_script(), *args, "bone_threshold_hu=0"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert nib.load(out).shape == (cube, cube, cube) and read_binary_stl(mesh).triangles.size > 0
    assert f"CT: {out}" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bone.stl", "ct.nii.gz"]  # no Hydra run folder

    failed = subprocess.run(
        [*_console_script(), args[0], f"ap={tmp_path / 'missing.png'}", args[2], f"out={tmp_path / 'again.nii.gz'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode == 2  # a user error (x2ct.cli.EXIT_USER_ERROR)
    assert "x2ct-predict: error:" in failed.stderr and "missing.png does not exist" in failed.stderr
    assert not (tmp_path / "again.nii.gz").exists()
