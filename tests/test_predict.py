"""x2ct-predict: config -> NIfTI (HU, canonical orientation, trained spacing), STL and preview; error paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import compose_config
from tests.inference.helpers import CUBE, TRAINING_SPACING_MM, write_tiny_checkpoint, write_xray_pair
from x2ct.export.mesh import MeshError, read_binary_stl
from x2ct.inference.checkpoint import CheckpointError, CheckpointNotFoundError
from x2ct.io.xray_image import XrayNotFoundError, XrayReadError
from x2ct.predict import PredictOutputError, predict

WINDOW_HU = (-1024.0, 1476.0)


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def xrays(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_xray_pair(tmp_path_factory.mktemp("xrays"), "png8")


def run_predict(checkpoint: Path, ap: Path, lateral: Path, out: Path, *extra: str):
    overrides = [f"ckpt_path={checkpoint}", f"ap={ap}", f"lateral={lateral}", f"out={out}", *extra]
    return predict(compose_config("predict", overrides))


def test_nifti_mesh_and_preview(checkpoint_path: Path, xrays: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "result" / "ct.nii.gz"
    mesh, preview = tmp_path / "result" / "bone.stl", tmp_path / "result" / "preview.png"
    result = run_predict(checkpoint_path, *xrays, out, f"mesh={mesh}", f"preview={preview}", "bone_threshold_hu=0")
    image = nib.load(out)
    data = np.asarray(image.dataobj)
    assert data.shape == (CUBE, CUBE, CUBE) and data.dtype == np.float32
    assert WINDOW_HU[0] <= float(data.min()) and float(data.max()) <= WINDOW_HU[1]
    np.testing.assert_array_equal(data, result.prediction.volume.hu)
    assert nib.aff2axcodes(image.affine) == ("I", "P", "L")
    assert image.header.get_zooms() == pytest.approx(TRAINING_SPACING_MM)  # from the training triplets
    np.testing.assert_allclose(nib.affines.apply_affine(image.affine, [(CUBE - 1) / 2] * 3), 0.0, atol=1e-9)

    stl = read_binary_stl(mesh)
    assert len(stl.triangles) == result.mesh_triangles > 0 and b"SPACE=RAS" in stl.header
    corners = stl.triangles.reshape(-1, 3)
    half_extent = (CUBE - 1) / 2 * TRAINING_SPACING_MM[0] + TRAINING_SPACING_MM[0]  # + the closing air layer
    assert np.abs(corners).max() <= half_extent + 1e-3  # vertices in the NIfTI's world millimetres

    with Image.open(preview) as png:
        assert png.mode in ("RGB", "RGBA") and png.size[0] > png.size[1] > 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["bone.stl", "ct.nii.gz", "preview.png"]


def test_int16_output_and_configured_spacing(checkpoint_path: Path, xrays: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "ct.nii"
    run_predict(checkpoint_path, *xrays, out, "dtype=int16", "use_training_spacing=false", "spacing_mm=[2.0,1.0,1.0]")
    image = nib.load(out)
    assert image.get_data_dtype() == np.int16
    assert image.header.get_zooms() == pytest.approx((2.0, 1.0, 1.0))
    assert nib.aff2axcodes(image.affine) == ("I", "P", "L")


def test_aligned_preprocess_and_dicom_inputs(checkpoint_path: Path, tmp_path: Path) -> None:
    ap, lateral = write_xray_pair(tmp_path, "dicom")
    out = tmp_path / "ct.nii.gz"
    result = run_predict(checkpoint_path, ap, lateral, out, "preprocess=aligned")
    assert result.prediction.volume.meta["preprocess"] == "aligned" and out.is_file()


# ------------------------------------------------------------------------------------------------ errors
def test_missing_inputs(checkpoint_path: Path, xrays: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "ct.nii.gz"
    with pytest.raises(XrayNotFoundError, match=r"missing_ap\.png does not exist"):
        run_predict(checkpoint_path, tmp_path / "missing_ap.png", xrays[1], out)
    with pytest.raises(CheckpointNotFoundError, match=r"missing\.ckpt does not exist"):
        run_predict(tmp_path / "missing.ckpt", *xrays, out)
    with pytest.raises(ValueError, match=r"missing required argument\(s\): lateral=\.\.\., out=\.\.\."):
        predict(compose_config("predict", [f"ckpt_path={checkpoint_path}", f"ap={xrays[0]}"]))
    assert not out.exists()


def test_bad_images(checkpoint_path: Path, xrays: tuple[Path, Path], tmp_path: Path) -> None:
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


def test_bad_checkpoints(checkpoint_path: Path, xrays: tuple[Path, Path], tmp_path: Path) -> None:
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


def test_bad_outputs(checkpoint_path: Path, xrays: tuple[Path, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(PredictOutputError, match="cannot create the output folder"):
        run_predict(checkpoint_path, *xrays, blocker / "sub" / "ct.nii.gz")
    with pytest.raises(ValueError, match="not a NIfTI file name"):
        run_predict(checkpoint_path, *xrays, tmp_path / "ct.nrrd")
    with pytest.raises(PredictOutputError, match=r"must end in \.stl"):
        run_predict(checkpoint_path, *xrays, tmp_path / "ct.nii.gz", f"mesh={tmp_path / 'bone.ply'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_failing_mesh_writes_nothing(checkpoint_path: Path, xrays: tuple[Path, Path], tmp_path: Path) -> None:
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


@pytest.mark.slow
def test_console_script_end_to_end(checkpoint_path: Path, xrays: tuple[Path, Path], tmp_path: Path) -> None:
    out, mesh = tmp_path / "ct.nii.gz", tmp_path / "bone.stl"
    args = [f"ckpt_path={checkpoint_path}", f"ap={xrays[0]}", f"lateral={xrays[1]}", f"out={out}", f"mesh={mesh}"]
    done = subprocess.run(
        [*_console_script(), *args, "bone_threshold_hu=0"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert nib.load(out).shape == (CUBE, CUBE, CUBE) and read_binary_stl(mesh).triangles.size > 0
    assert f"CT: {out}" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bone.stl", "ct.nii.gz"]  # no Hydra run folder

    failed = subprocess.run(
        [*_console_script(), args[0], f"ap={tmp_path / 'missing.png'}", args[2], f"out={tmp_path / 'again.nii.gz'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode == 1
    assert "x2ct-predict: error:" in failed.stderr and "missing.png does not exist" in failed.stderr
    assert not (tmp_path / "again.nii.gz").exists()
