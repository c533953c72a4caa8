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
whole prediction (mesh and preview included) succeeded. Every option is checked before the model is loaded; a user
mistake (a bad option value, a missing or unreadable file, a wrong checkpoint) exits with status 2 and one line
``x2ct-predict: error: ...`` naming the option or file (:mod:`x2ct.cli`).
A geometry-aware model also needs how the radiographs were taken (``geometry.*`` options, DICOM tags:
:mod:`x2ct.inference.radiograph_geometry`; else the training geometry; the matrices:
:mod:`x2ct.inference.prediction_geometry`); the summary says what was assumed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from x2ct.cli import report_user_errors, run_console_script
from x2ct.config_dir import CONFIG_DIR
from x2ct.errors import InvalidOptionError
from x2ct.export.mesh import STL_SUFFIX, SurfaceMesh, bone_surface, write_binary_stl
from x2ct.inference.checkpoint import resolve_device
from x2ct.inference.predictor import PREPROCESS_MODES, Prediction, Predictor, spacing_triple
from x2ct.inference.preview import preview_image
from x2ct.inference.radiograph_geometry import GeometryOptions
from x2ct.io.nifti import nifti_stem, save_volume_nifti
from x2ct.io.xray_image import XrayNotFoundError
from x2ct.preparation.xray_preprocess import PaperPreprocessConfig
from x2ct.utils.output_paths import check_output_folder
from x2ct.viz.figures import save_png

log = logging.getLogger(__name__)

COMMAND = "x2ct-predict"
REQUIRED_KEYS: tuple[str, ...] = ("ckpt_path", "ap", "lateral", "out")
PREVIEW_SUFFIX = ".png"
NIFTI_DTYPES: tuple[str, ...] = ("float32", "int16")
MESH_SPACES: tuple[str, ...] = ("RAS", "LPS")
WINDOW_LENGTH = 2  # preview_hu_window: [low, high]


class PredictOutputError(InvalidOptionError):
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
        raise InvalidOptionError(
            f"missing required argument(s): {', '.join(f'{k}=...' for k in missing)} "
            "(usage: x2ct-predict ckpt_path=MODEL.ckpt ap=AP.png lateral=LAT.png out=ct.nii.gz)"
        )


def _output_path(value: Any, suffix: str | None, what: str) -> Path | None:
    """Check an output file name and that its folder can be created; None when the output is not requested."""
    if value in (None, ""):
        return None
    path = Path(str(value))
    if suffix is None:
        try:
            nifti_stem(path)
        except ValueError as error:  # not a NIfTI name; the message names the file
            raise PredictOutputError(f"{what}: {error}") from error
    elif path.suffix.lower() != suffix:
        raise PredictOutputError(f"{what} file {path} must end in {suffix}")
    if path.is_dir():
        raise PredictOutputError(f"{what} path {path} is a folder, expected a file name")
    try:  # creates nothing, so a failed prediction leaves no empty folders behind (the writers create them)
        check_output_folder(path.parent, what, label=f"the folder {path.parent} of {what} {path}")
    except InvalidOptionError as error:
        raise PredictOutputError(str(error)) from error
    return path


def _number(value: Any, option: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidOptionError(f"{option} must be a finite number, got {value!r}")
    return float(value)


def _choice(value: Any, option: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InvalidOptionError(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def check_options(cfg: DictConfig) -> None:
    """Check every option of a composed ``predict`` config before any work starts (no model loaded, nothing
    written): InvalidOptionError naming the option, or XrayNotFoundError naming a missing X-ray file."""
    _check_required(cfg)
    for option in ("ap", "lateral"):
        if not Path(str(cfg[option])).is_file():
            raise XrayNotFoundError(f"{option}: X-ray file {cfg[option]} does not exist (or is not a file)")
    _choice(cfg.preprocess, "preprocess", PREPROCESS_MODES)
    _choice(cfg.dtype, "dtype", NIFTI_DTYPES)
    _choice(cfg.mesh_space, "mesh_space", MESH_SPACES)
    for option in ("invert", "use_training_spacing"):
        if not isinstance(cfg[option], bool):
            raise InvalidOptionError(f"{option} must be true or false, got {cfg[option]!r}")
    _number(cfg.bone_threshold_hu, "bone_threshold_hu")
    step = cfg.mesh_step_size
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise InvalidOptionError(f"mesh_step_size must be a whole number >= 1, got {step!r}")
    window = _plain_mapping(cfg.preview_hu_window)
    if not isinstance(window, list) or len(window) != WINDOW_LENGTH:
        raise InvalidOptionError(f"preview_hu_window must be [low, high] HU, got {window!r}")
    low, high = (_number(v, "preview_hu_window") for v in window)
    if not low < high:
        raise InvalidOptionError(f"preview_hu_window must be [low, high] HU with low < high, got {window!r}")
    try:
        spacing_triple(_plain_mapping(cfg.spacing_mm))  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise InvalidOptionError(_named("spacing_mm", error)) from error
    try:
        resolve_device(cfg.device)
    except (RuntimeError, TypeError, ValueError) as error:  # torch rejects an unknown device string with RuntimeError
        raise InvalidOptionError(_named(f"device={cfg.device}", error)) from error
    try:
        GeometryOptions.from_mapping(_plain_mapping(cfg.get("geometry")))
    except (TypeError, ValueError) as error:
        raise InvalidOptionError(_named("geometry", error)) from error
    try:
        PaperPreprocessConfig(**(_plain_mapping(cfg.paper_preprocess) or {}))
    except (TypeError, ValueError) as error:
        raise InvalidOptionError(_named("paper_preprocess", error)) from error


def _named(option: str, error: BaseException) -> str:
    """``error``'s first line, prefixed by ``option`` unless it already starts with the option's name."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    name = option.split("=")[0]
    return line if line.startswith(name) else f"{option}: {line}"


def _plain_mapping(node: Any) -> dict[str, Any] | None:
    """A config node as a plain dict (None stays None)."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node  # type: ignore[return-value]


def predict(cfg: DictConfig) -> PredictResult:
    """Run the prediction described by a composed ``predict`` config and write its files."""
    check_options(cfg)
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
@report_user_errors(COMMAND)
def _main(cfg: DictConfig) -> None:
    result = predict(cfg)
    print(format_summary(result, cfg.bone_threshold_hu))


def main() -> None:
    """Console-script entry point."""
    run_console_script(COMMAND, _main)


if __name__ == "__main__":
    main()
