"""``x2ct-predict``: a real (or synthetic) AP + lateral X-ray pair -> a CT volume in HU that opens in 3D Slicer.

    x2ct-predict ckpt_path=outputs/train/runs/<run>/checkpoints/last.ckpt ap=AP.png lateral=LAT.png out=ct.nii.gz
    x2ct-predict ckpt_path=... ap=AP.dcm lateral=LAT.dcm out=ct.nii.gz mesh=bone.stl preview=preview.png
    x2ct-predict ckpt_path=... ap=drr_ap.png lateral=drr_lat.png out=ct.nii.gz preprocess=aligned device=cuda
    x2ct-predict ckpt_path=ray_lifting.ckpt ap=AP.png lateral=LAT.png out=ct.nii.gz \
        geometry.sid_mm=1000 geometry.sod_mm=850 'geometry.pixel_spacing_mm=[0.2,0.2]' geometry.lateral_angle=90

The NIfTI holds the canonical array (D, H, W) = superior->inferior, anterior->posterior, right->left with its
affine (axis codes I, P, L): 3D Slicer shows it head up, anterior in front, the patient's right on the viewer's
left of the coronal view. The volume centre is at world (0, 0, 0) mm. The optional STL is the bone surface
(``bone_threshold_hu``) in the same world millimetres. Every file is written atomically and only after the
whole prediction (mesh and preview included) succeeded; any error exits with status 1 and a message.
A geometry-aware model also needs how the radiographs were taken (``geometry.*`` options, DICOM tags:
:mod:`x2ct.inference.radiograph_geometry`; else the training geometry; the matrices:
:mod:`x2ct.inference.prediction_geometry`); the summary says what was assumed.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from x2ct.config_dir import CONFIG_DIR
from x2ct.export.mesh import STL_SUFFIX, SurfaceMesh, bone_surface, write_binary_stl
from x2ct.inference.predictor import Prediction, Predictor
from x2ct.inference.preview import preview_image
from x2ct.io.nifti import nifti_stem, save_volume_nifti
from x2ct.viz.figures import save_png

log = logging.getLogger(__name__)

REQUIRED_KEYS: tuple[str, ...] = ("ckpt_path", "ap", "lateral", "out")
PREVIEW_SUFFIX = ".png"
EXIT_FAILURE = 1


class PredictOutputError(ValueError):
    """An output path that cannot be used (wrong suffix, folder that cannot be created)."""


@dataclass
class PredictResult:
    """What x2ct-predict produced: the prediction and the files written (None when not requested)."""

    prediction: Prediction
    nifti: Path
    mesh: Path | None
    preview: Path | None
    mesh_triangles: int | None


def _check_required(cfg: DictConfig) -> None:
    missing = [key for key in REQUIRED_KEYS if OmegaConf.is_missing(cfg, key) or cfg.get(key) in (None, "")]
    if missing:
        raise ValueError(
            f"missing required argument(s): {', '.join(f'{k}=...' for k in missing)} "
            "(usage: x2ct-predict ckpt_path=MODEL.ckpt ap=AP.png lateral=LAT.png out=ct.nii.gz)"
        )


def _output_path(value: Any, suffix: str | None, what: str) -> Path | None:
    """Check an output file name and that its folder can be created; None when the output is not requested."""
    if value in (None, ""):
        return None
    path = Path(str(value))
    if suffix is None:
        nifti_stem(path)  # raises ValueError naming the file for a non-NIfTI name
    elif path.suffix.lower() != suffix:
        raise PredictOutputError(f"{what} file {path} must end in {suffix}")
    if path.is_dir():
        raise PredictOutputError(f"{what} path {path} is a folder, expected a file name")
    _check_folder_can_be_created(path.parent, f"{what} {path}")
    return path


def _check_folder_can_be_created(folder: Path, purpose: str) -> None:
    """Fail early (before the model runs) when ``folder`` can neither be found nor created; creates nothing, so
    a failed prediction leaves no empty folders behind (the writers create them)."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise PredictOutputError(f"cannot create the output folder {folder} for {purpose}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PredictOutputError(f"cannot create the output folder {folder} for {purpose}: {existing} is not writable")


def _plain_mapping(node: Any) -> dict[str, Any] | None:
    """A config node as a plain dict (None stays None)."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node  # type: ignore[return-value]


def predict(cfg: DictConfig) -> PredictResult:
    """Run the prediction described by a composed ``predict`` config and write its files."""
    _check_required(cfg)
    nifti_path = Path(str(cfg.out))
    _output_path(nifti_path, None, "NIfTI output")
    mesh_path = _output_path(cfg.get("mesh"), STL_SUFFIX, "mesh")
    preview_path = _output_path(cfg.get("preview"), PREVIEW_SUFFIX, "preview")
    spacing = OmegaConf.to_container(cfg.spacing_mm) if OmegaConf.is_config(cfg.spacing_mm) else cfg.spacing_mm

    predictor = Predictor.from_checkpoint(
        cfg.ckpt_path,
        device=cfg.device,
        spacing_mm=spacing,  # type: ignore[arg-type]
        use_training_spacing=cfg.use_training_spacing,
        paper_preprocess_options=OmegaConf.to_container(cfg.paper_preprocess),  # type: ignore[arg-type]
        geometry_options=_plain_mapping(cfg.get("geometry")),
    )
    prediction = predictor.predict_files(cfg.ap, cfg.lateral, preprocess=cfg.preprocess, invert=cfg.invert)
    volume = prediction.volume

    mesh: SurfaceMesh | None = None
    if mesh_path is not None:
        mesh = bone_surface(volume.hu, volume.affine, cfg.bone_threshold_hu, step_size=cfg.mesh_step_size)
    preview = None
    if preview_path is not None:
        title = f"{Path(cfg.ap).name} + {Path(cfg.lateral).name} (preprocess={cfg.preprocess})"
        preview = preview_image(volume, prediction.xray1, prediction.xray2, tuple(cfg.preview_hu_window), title)

    save_volume_nifti(volume, nifti_path, what="ct", ct_dtype=cfg.dtype)
    if mesh is not None and mesh_path is not None:
        write_binary_stl(mesh, mesh_path, coordinate_system=cfg.mesh_space)
    if preview is not None and preview_path is not None:
        save_png(preview, preview_path)
    return PredictResult(
        prediction=prediction,
        nifti=nifti_path,
        mesh=mesh_path,
        preview=preview_path,
        mesh_triangles=mesh.n_triangles if mesh is not None else None,
    )


def format_summary(result: PredictResult, bone_threshold_hu: float) -> str:
    """A few lines for the console: files, grid, HU range, bone fraction and (geometry-aware models) the geometry
    assumed for each view."""
    volume = result.prediction.volume
    hu = volume.hu
    bone_fraction = float(np.mean(hu > bone_threshold_hu))
    lines = [
        f"CT: {result.nifti} shape {volume.shape} voxel {tuple(round(s, 4) for s in volume.spacing)} mm "
        f"({volume.meta.get('spacing_source')}), HU [{float(hu.min()):.0f}, {float(hu.max()):.0f}], "
        f"{100 * bone_fraction:.1f}% of voxels above {bone_threshold_hu:g} HU",
    ]
    geometry = volume.meta.get("geometry")
    if geometry is not None:
        lines += list(geometry["summary"])
    if result.mesh is not None:
        lines.append(f"mesh: {result.mesh} ({result.mesh_triangles} triangles, bone > {bone_threshold_hu:g} HU)")
    if result.preview is not None:
        lines.append(f"preview: {result.preview}")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def _main(cfg: DictConfig) -> None:
    try:
        result = predict(cfg)
    except (ValueError, OSError, RuntimeError) as error:  # project errors are ValueError / FileNotFoundError
        print(f"x2ct-predict: error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_FAILURE) from error
    print(format_summary(result, cfg.bone_threshold_hu))


def main() -> None:
    """Console-script entry point."""
    _main()


if __name__ == "__main__":
    main()
