"""From an AP and a lateral X-ray to a CT volume in HU with the grid and orientation of the training data.

Pipeline: read each image (:func:`~x2ct.io.xray_image.read_xray_image`: float [0, 1], bright = dense) ->
preprocess to uint8 (S, S) (``"paper"``: the paper's contour crop / pad / resize, for real X-rays;
``"aligned"``: a plain resize, for our own aligned DRRs) -> ``/ 255`` -> the generator (eval mode, no grad) ->
clamp to [0, 1] -> HU with the checkpoint's CT window (``HU = x * width + low``).

A geometry-aware generator (``uses_geometry``, e.g. the ray-implicit and ray-lifting ones) also gets each view's
projection matrix, built from how the radiographs were taken (DICOM tags, ``geometry`` options, else the training
geometry; see :mod:`x2ct.inference.prediction_geometry`); what was assumed goes into ``volume.meta["geometry"]``.
Other models get the images only, as before.

The result is a canonical :class:`~x2ct.io.volume.Volume` (axes D, H, W = superior -> inferior,
anterior -> posterior, patient's right -> left; nibabel axis codes ("I", "P", "L")) whose affine puts the
centre of the volume at world (0, 0, 0) RAS+ mm: a real X-ray pair carries no patient position, so the
volume is centred on the scanner origin, where 3D Slicer centres its views.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from x2ct.data.normalization import ct_to_hu, normalize_xray
from x2ct.inference.checkpoint import DataSettings, load_x2ct_checkpoint
from x2ct.inference.data_mismatch import prediction_description, training_description, warn_data_mismatches
from x2ct.inference.prediction_geometry import DEFAULT_ANGLE_SOURCE, TRAINING_ANGLE_SOURCE, PredictionGeometry
from x2ct.inference.radiograph_geometry import GeometryOptions, RadiographGeometry, read_dicom_geometry
from x2ct.io.volume import Volume, canonical_affine
from x2ct.io.xray_image import read_xray_image
from x2ct.models.gan_module import X2CTGANModule, uses_geometry
from x2ct.preparation.xray_preprocess import (
    PaperPreprocessConfig,
    XrayPreprocessError,
    paper_crop_window,
    paper_preprocess,
    resize_xray,
)

log = logging.getLogger(__name__)

PreprocessMode = Literal["paper", "aligned"]
PREPROCESS_MODES: tuple[str, ...] = ("paper", "aligned")
# The paper's output grid: 128^3 voxels of 1 mm.
DEFAULT_SPACING_MM: float = 1.0
DEFAULT_CASE_ID = "prediction"


def centered_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """4x4 canonical (I, P, L) voxel -> RAS+ mm affine whose volume centre (voxel ``(n - 1) / 2`` on every axis)
    is at world (0, 0, 0). Voxel (0, 0, 0), the superior-anterior-right corner, lies at +S, +A, +R."""
    if len(shape) != 3 or len(spacing) != 3:
        raise ValueError(f"shape and spacing must have 3 entries (D, H, W), got {shape} and {spacing}")
    linear = canonical_affine(tuple(float(s) for s in spacing))[:3, :3]  # type: ignore[arg-type]
    centre_index = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    origin = -linear @ centre_index
    return canonical_affine(tuple(float(s) for s in spacing), tuple(float(o) for o in origin))  # type: ignore[arg-type]


def spacing_triple(spacing_mm: float | Sequence[float]) -> tuple[float, float, float]:
    """A voxel size given as one number (isotropic) or three (D, H, W), checked positive, as a float triple."""
    values = [float(spacing_mm)] * 3 if np.isscalar(spacing_mm) else [float(s) for s in spacing_mm]  # type: ignore[union-attr]
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing_mm must be a positive number or three positive numbers (D, H, W), got {spacing_mm}")
    return values[0], values[1], values[2]


@dataclass
class Prediction:
    """A reconstruction and the network inputs it came from.

    Attributes:
        volume: float32 (cube, cube, cube) HU in canonical axes, centred affine, ``meta`` with provenance.
        xray1: uint8 (S, S) AP input after preprocessing (rows D, columns W).
        xray2: uint8 (S, S) lateral input after preprocessing (rows D, columns H).
        proj_xray1, proj_xray2: float32 (3, 4) projection matrices of the inputs given to a geometry-aware model
            (None for the others).
    """

    volume: Volume
    xray1: np.ndarray
    xray2: np.ndarray
    proj_xray1: np.ndarray | None = None
    proj_xray2: np.ndarray | None = None


class Predictor:
    """An X2CT-GAN and its training data settings, turning X-ray pairs into CT volumes in HU.

    Args:
        model: the trained module (put in eval mode and moved to ``device`` here).
        data: the training data settings (input size, cube, CT window).
        spacing_mm: voxel size of the output grid in mm (one number or (D, H, W)).
        device: ``"cpu"`` or ``"cuda"``.
        paper_preprocess_options: :class:`PaperPreprocessConfig` fields for ``"paper"`` mode (``output_size`` is
            always the model's input size).
        geometry: how the views' projection matrices are made for a geometry-aware model (None: the default
            :class:`PredictionGeometry`, no options and the aligned fallback); ignored by other models.
    """

    def __init__(
        self,
        model: X2CTGANModule,
        data: DataSettings,
        spacing_mm: float | Sequence[float] = DEFAULT_SPACING_MM,
        device: str | torch.device = "cpu",
        paper_preprocess_options: Mapping[str, Any] | None = None,
        geometry: PredictionGeometry | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.data = data
        self.spacing_mm = spacing_triple(spacing_mm)
        options = dict(paper_preprocess_options or {})
        options.pop("output_size", None)
        self.paper_config = PaperPreprocessConfig(output_size=data.xray_size, **options)
        self.provenance: dict[str, Any] = {}
        self.geometry: PredictionGeometry | None = None
        if uses_geometry(self.model.generator):
            self.geometry = geometry or PredictionGeometry(
                GeometryOptions(), data.cube, self.spacing_mm, data.lateral_angle
            )

    @classmethod
    def from_checkpoint(
        cls,
        ckpt_path: str | Path,
        device: str | torch.device = "cpu",
        spacing_mm: float | Sequence[float] = DEFAULT_SPACING_MM,
        use_training_spacing: bool = True,
        paper_preprocess_options: Mapping[str, Any] | None = None,
        geometry_options: Mapping[str, Any] | GeometryOptions | None = None,
    ) -> Predictor:
        """Load an x2ct-train checkpoint.

        The output voxel size is the training data's (the triplets' ``spacing_mm`` attribute, rescaled to the
        cube) when ``use_training_spacing`` and the training triplets are reachable; otherwise ``spacing_mm``
        (default 1 mm, the paper's grid). Which one was used is logged and kept in :attr:`provenance`.
        ``geometry_options`` (:class:`GeometryOptions` fields) describe the radiographs for a geometry-aware model;
        its fallback geometry is the first reachable training triplet's. Other models ignore them (logged).
        """
        options = (
            geometry_options
            if isinstance(geometry_options, GeometryOptions)
            else GeometryOptions.from_mapping(geometry_options)
        )
        loaded = load_x2ct_checkpoint(ckpt_path, device)
        info = loaded.training_data() if use_training_spacing else None
        if info is not None and info.spacing_mm is not None:
            spacing, source = info.spacing_mm, f"training data ({info.source})"
        else:
            spacing, source = spacing_triple(spacing_mm), "spacing_mm setting"
        log.info("output voxel size %s mm from the %s", tuple(round(s, 4) for s in spacing), source)
        given = prediction_description(
            spacing, "x2ct-predict's settings", options.sid_mm, options.sod_mm, options.lateral_angle
        )
        warn_data_mismatches(training_description(loaded), given)  # once per run, naming both values
        geometry = None
        if uses_geometry(loaded.model.generator):
            if info is None:
                info = loaded.training_data()
            geometry = PredictionGeometry(
                options,
                loaded.data.cube,
                spacing,
                loaded.data.lateral_angle,
                training_file=info.source if info is not None else None,
                lateral_angle_source=TRAINING_ANGLE_SOURCE if loaded.data.from_checkpoint else DEFAULT_ANGLE_SOURCE,
            )
            if loaded.training_geometry is not None:  # an exported model records its training geometry
                geometry.fallback = loaded.training_geometry
        elif options.any_given:
            log.info("%s does not use the view geometry: the geometry options are ignored", loaded.path)
        predictor = cls(loaded.model, loaded.data, spacing, loaded.device, paper_preprocess_options, geometry)
        predictor.provenance = {
            "ckpt_path": str(loaded.path),
            "spacing_source": source,
            "training_xray_mode": info.xray_mode if info is not None else None,
            "lateral_angle": loaded.data.lateral_angle,
        }
        return predictor

    # ------------------------------------------------------------------------------------------ steps
    def preprocess(self, image: np.ndarray, mode: PreprocessMode = "paper") -> np.ndarray:
        """A (rows, cols) X-ray, float [0, 1] or uint8, bright = dense -> uint8 (S, S) network input."""
        if mode == "paper":
            return paper_preprocess(image, self.paper_config)
        if mode == "aligned":
            return resize_xray(image, self.data.xray_size)
        raise ValueError(f"preprocess must be one of {PREPROCESS_MODES}, got {mode!r}")

    def reconstruct_unit(
        self,
        xray1: np.ndarray,
        xray2: np.ndarray,
        proj_xray1: np.ndarray | None = None,
        proj_xray2: np.ndarray | None = None,
    ) -> np.ndarray:
        """uint8 (S, S) AP and lateral inputs -> float32 (cube, cube, cube) volume in [0, 1] (canonical axes).

        ``proj_xray1`` / ``proj_xray2``: the views' (3, 4) projection matrices, required by a geometry-aware model
        (its ValueError says so) and not passed to other models."""
        size = self.data.xray_size
        for name, image in (("xray1", xray1), ("xray2", xray2)):
            if image.shape != (size, size) or image.dtype != np.uint8:
                raise ValueError(f"{name} must be uint8 ({size}, {size}), got {image.dtype} {image.shape}")
        inputs = [normalize_xray(image, None)[None, None].to(self.device) for image in (xray1, xray2)]
        if uses_geometry(self.model.generator) and proj_xray1 is not None and proj_xray2 is not None:
            inputs += [torch.as_tensor(m, dtype=torch.float32)[None].to(self.device) for m in (proj_xray1, proj_xray2)]
        with torch.no_grad():
            volume = self.model.reconstruct(*inputs)
        return volume[0, 0].detach().to("cpu", torch.float32).numpy()

    def to_volume(self, unit: np.ndarray, case_id: str = DEFAULT_CASE_ID) -> Volume:
        """A [0, 1] (D, H, W) model volume -> HU :class:`Volume` with the output spacing and a centred affine."""
        hu = np.asarray(ct_to_hu(np.clip(unit, 0.0, 1.0), self.data.ct_window), dtype=np.float32)
        meta = {
            **self.provenance,
            "ct_window_hu": [self.data.ct_window.low_hu, self.data.ct_window.high_hu],
            "origin": "volume centre at world (0, 0, 0) RAS+ mm",
        }
        return Volume(
            hu=hu,
            labels=None,
            spacing=self.spacing_mm,
            affine=centered_affine(hu.shape, self.spacing_mm),
            case_id=case_id,
            meta=meta,
        )

    def _preprocess_named(self, image: np.ndarray, mode: PreprocessMode, name: str) -> np.ndarray:
        try:
            return self.preprocess(image, mode)
        except XrayPreprocessError as error:
            raise XrayPreprocessError(f"{name}: {error} (preprocess={mode})") from error

    # ------------------------------------------------------------------------------------------ whole
    def predict_images(
        self,
        ap: np.ndarray,
        lateral: np.ndarray,
        preprocess: PreprocessMode = "paper",
        case_id: str = DEFAULT_CASE_ID,
        names: tuple[str, str] = ("AP image", "lateral image"),
        radiographs: tuple[RadiographGeometry, RadiographGeometry] | None = None,
    ) -> Prediction:
        """AP and lateral images (float [0, 1] or uint8, bright = dense) -> :class:`Prediction`.

        ``names`` label the two images in error messages (e.g. their file names). ``radiographs``: what the files
        say about their geometry (:func:`read_dicom_geometry`), for a geometry-aware model; None = nothing."""
        if preprocess not in PREPROCESS_MODES:
            raise ValueError(f"preprocess must be one of {PREPROCESS_MODES}, got {preprocess!r}")
        training_mode = self.provenance.get("training_xray_mode")
        if training_mode is not None and training_mode != preprocess:
            log.warning(
                "the model was trained on %r X-rays but preprocess=%r: expect a domain gap", training_mode, preprocess
            )
        xray1 = self._preprocess_named(ap, preprocess, names[0])
        xray2 = self._preprocess_named(lateral, preprocess, names[1])
        if self.geometry is None:
            unit = self.reconstruct_unit(xray1, xray2)
            volume = self.to_volume(unit, case_id)
            volume.meta["preprocess"] = preprocess
            return Prediction(volume=volume, xray1=xray1, xray2=xray2)
        windows = (None, None)
        if preprocess == "paper":  # the crop moves the image frame: the matrices follow it
            windows = (paper_crop_window(ap, self.paper_config), paper_crop_window(lateral, self.paper_config))
        views = self.geometry.views(
            (ap.shape[:2], lateral.shape[:2]),
            radiographs,
            names,
            crop_windows=windows,  # type: ignore[arg-type]
        )
        matrices = [view.matrix.astype(np.float32) for view in views]
        unit = self.reconstruct_unit(xray1, xray2, *matrices)
        volume = self.to_volume(unit, case_id)
        volume.meta["preprocess"] = preprocess
        volume.meta["geometry"] = self.geometry.record(views)
        for line in volume.meta["geometry"]["summary"]:
            log.info("%s", line)
        return Prediction(volume=volume, xray1=xray1, xray2=xray2, proj_xray1=matrices[0], proj_xray2=matrices[1])

    def predict_files(
        self,
        ap_path: str | Path,
        lateral_path: str | Path,
        preprocess: PreprocessMode = "paper",
        invert: bool = False,
    ) -> Prediction:
        """Read an AP and a lateral image file (PNG/JPEG/TIFF/DICOM) and reconstruct; errors name the file.

        ``invert`` flips both images' polarity (for negatives stored with bone dark)."""
        ap = read_xray_image(ap_path, invert=invert)
        lateral = read_xray_image(lateral_path, invert=invert)
        names = (f"AP X-ray {ap_path}", f"lateral X-ray {lateral_path}")
        radiographs = None
        if self.geometry is not None:  # the DICOM geometry tags, read only for a model that uses them
            radiographs = (read_dicom_geometry(ap_path), read_dicom_geometry(lateral_path))
        prediction = self.predict_images(
            ap, lateral, preprocess, case_id=Path(ap_path).stem, names=names, radiographs=radiographs
        )
        prediction.volume.meta |= {"ap_path": str(ap_path), "lateral_path": str(lateral_path)}
        return prediction
