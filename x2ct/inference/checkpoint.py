"""Loading an x2ct-train checkpoint for inference: the X2CT-GAN model and the data settings it was trained with.

A checkpoint written by ``x2ct-train`` (a Lightning checkpoint) holds ``hyper_parameters`` (the network configs of
:class:`~x2ct.models.gan_module.X2CTGANModule`), ``state_dict`` and ``datamodule_hyper_parameters`` (``cube``,
``xray_size``, ``ct_window_hu``, ``lateral_angle``, ``root``, ...). The file is read with ``torch.load(...,
weights_only=True)`` and its network and optimizer configs are checked against the allow-list of
:mod:`x2ct.models.allowed_targets` before anything is built: no code from the file is ever executed. A folder
written by ``x2ct-export`` is loaded instead from its safetensors weights and JSON config
(:mod:`x2ct.inference.exported_model`). The triplet files the model was trained on, when
still reachable under ``root``, tell the voxel size (attribute ``spacing_mm``) and the X-ray mode.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import torch

from x2ct.callbacks.ema import GENERATOR_EMA_KEY
from x2ct.data.datamodule import read_case_list
from x2ct.data.normalization import DEFAULT_CT_WINDOW_HU, CTWindow, resampled_spacing
from x2ct.errors import UserError
from x2ct.io.hdf5 import TRIPLET_FILENAME, TripletFileError, read_spacing
from x2ct.models.allowed_targets import DisallowedTargetError, check_module_hparams, describe_unpickling_refusal
from x2ct.models.gan_module import X2CTGANModule

if TYPE_CHECKING:
    from x2ct.inference.prediction_geometry import TrainingGeometry

log = logging.getLogger(__name__)

LIGHTNING_VERSION_KEY = "pytorch-lightning_version"
REQUIRED_HPARAMS: tuple[str, ...] = ("generator", "discriminator")
GENERATOR_PREFIX = "generator."
DEFAULT_LATERAL_ANGLE = 90.0
DEFAULT_TRAIN_LIST = "train.txt"
XRAY_MODE_ATTRIBUTE = "xray_mode"
# Relative difference above which two training cases count as having different voxel sizes.
SPACING_RELATIVE_TOLERANCE = 1e-3


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used for prediction; the message names the file and what is wrong."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist (also a FileNotFoundError)."""


@dataclass(frozen=True)
class DataSettings:
    """How the model saw its data in training.

    Attributes:
        cube: edge of the predicted volume in voxels (output (cube, cube, cube), axes D, H, W).
        xray_size: edge of the square input X-rays in pixels.
        ct_window: the HU window mapped to the model's [0, 1] (``HU = x * width + low``).
        lateral_angle: degrees between the AP view and the lateral view the model was trained with.
        data_root: the prepared triplet folder of the training run, or None when unknown.
        train_list: the training case list, relative to ``data_root`` (or absolute).
        from_checkpoint: False when the checkpoint had no data settings and defaults were used.
    """

    cube: int
    xray_size: int
    ct_window: CTWindow
    lateral_angle: float = DEFAULT_LATERAL_ANGLE
    data_root: str | None = None
    train_list: str = DEFAULT_TRAIN_LIST
    from_checkpoint: bool = True


@dataclass(frozen=True)
class TrainingDataInfo:
    """What the training triplets record: voxel size of the model grid (mm, D/H/W) and X-ray mode.

    ``spacing_mm`` is the stored spacing rescaled to the ``cube`` grid (corner-aligned resampling) or None when
    the files carry none (official X2CT files); ``xray_mode`` is ``"aligned"`` / ``"paper"`` or None."""

    spacing_mm: tuple[float, float, float] | None
    xray_mode: str | None
    source: Path


@dataclass
class LoadedCheckpoint:
    """An X2CT-GAN model in eval mode on ``device``, its training data settings, and the data module's saved
    constructor arguments (``datamodule_hyper_parameters``; empty when the checkpoint has none).

    ``training`` and ``training_geometry`` are what an exported model folder records about its training data
    (None for a checkpoint, whose training triplets are read when reachable: :meth:`training_data`)."""

    model: X2CTGANModule
    data: DataSettings
    path: Path
    device: torch.device
    datamodule_params: dict[str, Any] = field(default_factory=dict)
    training: TrainingDataInfo | None = None
    training_geometry: TrainingGeometry | None = None

    def training_data(self) -> TrainingDataInfo | None:
        """Spacing and X-ray mode of the training data: recorded (exported model) or read from the reachable
        training triplets (:func:`training_data_info`), else None."""
        return self.training if self.training is not None else training_data_info(self.data)


PICKLE_PROTOCOL_OPCODE = 0x80  # first byte of a pickle (protocol >= 2), torch's legacy non-zip format
ERROR_DETAIL_CHARS = 200  # longest library error text quoted in a one-line message


def unreadable_checkpoint_reason(file: Path, error: BaseException) -> str:
    """One line saying why torch could not read ``file``: not a checkpoint at all (text, an image, ...), a
    truncated or corrupt zip archive, or torch's own (shortened) error."""
    with file.open("rb") as handle:
        head = handle.read(4)
    if not head:
        return f"checkpoint {file} is empty (0 bytes)"
    if zipfile.is_zipfile(file):
        detail = " ".join(str(error).split())[:ERROR_DETAIL_CHARS]
        return f"checkpoint {file} is a corrupt PyTorch archive ({type(error).__name__}: {detail})"
    if head.startswith(b"PK"):
        return f"checkpoint {file} is truncated (an incomplete zip archive; was it copied or written completely?)"
    if head[0] != PICKLE_PROTOCOL_OPCODE:
        return f"{file} is not a PyTorch checkpoint (it starts with {head!r}, not a zip archive or a pickle)"
    detail = " ".join(str(error).split())[:ERROR_DETAIL_CHARS]
    return f"checkpoint {file} cannot be read as a PyTorch checkpoint: {type(error).__name__}: {detail}"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only``) and check that it is an x2ct X2CT-GAN Lightning checkpoint.

    Raises:
        CheckpointNotFoundError: the file does not exist.
        CheckpointError: not loadable by torch, pickled Python objects other than tensors and plain data (refused,
            never run), not a Lightning checkpoint (e.g. a plain state dict), a checkpoint of another model (no
            generator/discriminator configs or weights), or configs naming a callable off the allow-list.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointNotFoundError(f"checkpoint {file} does not exist (or is not a file)")
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # refused globals (UnpicklingError), zip and torch errors of many types
        refusal = describe_unpickling_refusal(file, error)
        if refusal is not None:
            raise CheckpointError(refusal) from error
        raise CheckpointError(unreadable_checkpoint_reason(file, error)) from error
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        kind = "a plain state dict" if _looks_like_state_dict(checkpoint) else f"a {type(checkpoint).__name__}"
        raise CheckpointError(
            f"{file} is not a Lightning checkpoint (it holds {kind}, no 'state_dict'); pass a checkpoint written "
            "by x2ct-train (e.g. checkpoints/last.ckpt)"
        )
    hparams = checkpoint.get("hyper_parameters")
    if LIGHTNING_VERSION_KEY not in checkpoint or not isinstance(hparams, Mapping):
        raise CheckpointError(
            f"{file} is not a Lightning checkpoint written by x2ct-train (no {LIGHTNING_VERSION_KEY!r} or "
            "'hyper_parameters')"
        )
    missing = [key for key in REQUIRED_HPARAMS if key not in hparams]
    has_generator = any(str(key).startswith(GENERATOR_PREFIX) for key in checkpoint["state_dict"])
    if missing or not has_generator:
        raise CheckpointError(
            f"{file} is not an X2CT-GAN checkpoint: hyper-parameters lack {missing or 'nothing'}, generator "
            f"weights {'found' if has_generator else 'missing'} (hyper-parameters: {sorted(hparams)})"
        )
    try:
        check_module_hparams(hparams, source=file)
    except DisallowedTargetError as error:
        raise CheckpointError(str(error)) from error
    return dict(checkpoint)


def _looks_like_state_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def data_settings(checkpoint: Mapping[str, Any], path: str | Path, generator_cube: int | None = None) -> DataSettings:
    """The training data settings of a checkpoint read by :func:`read_checkpoint`.

    Without ``datamodule_hyper_parameters`` (a model fitted with plain dataloaders) the cube comes from the
    generator and the window is the official one; a warning says so.
    """
    params = checkpoint.get("datamodule_hyper_parameters")
    if not isinstance(params, Mapping) or not params:
        if generator_cube is None:
            raise CheckpointError(f"{path}: no data settings and no generator cube size: cannot size the input")
        log.warning(
            "%s has no data-module settings: assuming cube %d, X-rays %d px, CT window %s HU",
            path,
            generator_cube,
            generator_cube,
            DEFAULT_CT_WINDOW_HU,
        )
        return DataSettings(
            cube=generator_cube,
            xray_size=generator_cube,
            ct_window=CTWindow(*DEFAULT_CT_WINDOW_HU),
            from_checkpoint=False,
        )
    try:
        cube = int(params["cube"])
        xray_size = int(params["xray_size"]) if params.get("xray_size") is not None else cube
        window = CTWindow.from_pair(params.get("ct_window_hu", DEFAULT_CT_WINDOW_HU))
        lateral_angle = float(params.get("lateral_angle", DEFAULT_LATERAL_ANGLE))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: unusable data settings {dict(params)}: {error}") from error
    if generator_cube is not None and cube != generator_cube:
        raise CheckpointError(f"{path}: data cube {cube} differs from the generator's cube {generator_cube}")
    root = params.get("root")
    return DataSettings(
        cube=cube,
        xray_size=xray_size,
        ct_window=window,
        lateral_angle=lateral_angle,
        data_root=str(root) if root else None,
        train_list=str(params.get("train_list") or DEFAULT_TRAIN_LIST),
    )


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a torch device; RuntimeError when CUDA is asked for but absent."""
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={device} but no CUDA device is available (use device=cpu)")
    return resolved


def load_x2ct_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the X2CT-GAN of an x2ct-train checkpoint (eval mode, on ``device``) with its data settings; a
    folder is loaded as an x2ct-export folder (:func:`x2ct.inference.exported_model.load_exported_model`, no pickle).

    Raises CheckpointNotFoundError / CheckpointError (see :func:`read_checkpoint`), also when the weights do not
    fit the networks the hyper-parameters describe; RuntimeError for an unavailable CUDA device.
    """
    file = Path(path)
    if file.is_dir():
        from x2ct.inference.exported_model import load_exported_model  # imports this module

        return load_exported_model(file, device)
    target = resolve_device(device)
    checkpoint = read_checkpoint(file)
    try:
        model = X2CTGANModule(**checkpoint["hyper_parameters"])
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except Exception as error:  # wrong configs (TypeError, Hydra errors) or mismatched weights (RuntimeError)
        raise CheckpointError(
            f"{file}: the X2CT-GAN cannot be rebuilt from its hyper-parameters and weights: "
            f"{type(error).__name__}: {error}"
        ) from error
    use_generator_ema(model, checkpoint, file)
    model.eval().to(target)
    generator_cube = getattr(model.generator, "cube", None)
    settings = data_settings(checkpoint, file, int(generator_cube) if generator_cube is not None else None)
    datamodule_params = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    return LoadedCheckpoint(model=model, data=settings, path=file, device=target, datamodule_params=datamodule_params)


# ------------------------------------------------------------------------ EMA of the generator (callbacks=ema)


def use_generator_ema(model: X2CTGANModule, checkpoint: Mapping[str, Any], file: Path) -> bool:
    """Load the checkpoint's ``generator_ema`` (the EMA of the generator's weights, written by
    :class:`x2ct.callbacks.ema.GeneratorEMA`) into ``model.generator`` when there is one, and log that it did;
    returns whether it did. CheckpointError when its keys or shapes do not match the generator."""
    ema = checkpoint.get(GENERATOR_EMA_KEY)
    if not ema:
        return False
    if not _looks_like_state_dict(ema):
        raise CheckpointError(f"{file}: {GENERATOR_EMA_KEY} is not a state dict of tensors")
    try:
        model.generator.load_state_dict(ema, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{file}: {GENERATOR_EMA_KEY} does not fit the generator: {error}") from error
    log.info("%s: using the EMA of the generator's weights (%s)", file, GENERATOR_EMA_KEY)
    return True


def training_data_info(settings: DataSettings) -> TrainingDataInfo | None:
    """Spacing and X-ray mode recorded in the training triplets, or None when they cannot be reached.

    Reads the attributes (not the data) of every case of the training list. Cases that disagree on the
    spacing give a warning and the per-axis median.
    """
    if settings.data_root is None:
        return None
    root = Path(settings.data_root)
    list_path = root / settings.train_list
    if not list_path.is_file():
        log.info("training case list %s is not reachable: the training spacing is unknown", list_path)
        return None
    try:
        case_ids = read_case_list(list_path)
    except ValueError as error:
        log.warning("the training spacing is unknown: %s", error)
        return None
    spacings: list[np.ndarray] = []
    modes: set[str] = set()
    first_file: Path | None = None
    for case_id in case_ids:
        file = root / case_id / TRIPLET_FILENAME
        if not file.is_file():
            continue
        spacing, mode = _triplet_grid_info(file, settings.cube)
        first_file = first_file or file
        if spacing is not None:
            spacings.append(spacing)
        if mode is not None:
            modes.add(mode)
    if first_file is None:
        log.info("no training triplet of %s is reachable: the training spacing is unknown", list_path)
        return None
    spacing_mm: tuple[float, float, float] | None = None
    if spacings:
        stacked = np.stack(spacings)
        median = np.median(stacked, axis=0)
        if np.any(np.abs(stacked - median) > SPACING_RELATIVE_TOLERANCE * median):
            log.warning("training cases of %s differ in voxel size; using the median %s mm", list_path, median)
        spacing_mm = tuple(float(s) for s in median)  # type: ignore[assignment]
    xray_mode = next(iter(modes)) if len(modes) == 1 else None
    if len(modes) > 1:
        log.warning("training cases of %s mix X-ray modes %s", list_path, sorted(modes))
    return TrainingDataInfo(spacing_mm=spacing_mm, xray_mode=xray_mode, source=first_file)


def _triplet_grid_info(file: Path, cube: int) -> tuple[np.ndarray | None, str | None]:
    """(spacing of the stored CT rescaled to the cube grid, xray_mode) from one triplet's attributes."""
    try:
        with h5py.File(file, "r") as h5:
            mode = h5.attrs.get(XRAY_MODE_ATTRIBUTE)
    except OSError as error:
        log.warning("cannot read the attributes of training triplet %s: %s", file, error)
        return None, None
    if isinstance(mode, bytes):
        mode = mode.decode("utf-8")
    try:
        stored, shape = read_spacing(file)
    except TripletFileError as error:
        log.warning("ignoring the spacing of training triplet %s: %s", file, error)
        return None, mode
    if stored is None:
        return None, mode
    return resampled_spacing(stored, shape, cube), mode
